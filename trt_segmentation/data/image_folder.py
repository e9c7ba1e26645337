"""Unlabelled images from a folder (calibration sets, bag sources): sorted by name, decoded to RGB uint8."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import MissingFile

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Sorted .png/.jpg/.jpeg files in ``folder`` (and below it when ``recursive``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFile(f"image folder {folder} does not exist")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def iter_image_folder(folder: str | Path, limit: int | None = None, recursive: bool = False) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(file name, RGB uint8 HxWx3)`` for the sorted images in ``folder``, at most ``limit`` of them."""
    paths = list_images(folder, recursive)
    if not paths:
        raise MissingFile(f"no .png/.jpg images in {folder}")
    for path in paths[:limit] if limit is not None else paths:
        yield str(path.relative_to(folder)) if recursive else path.name, read_rgb(path)
