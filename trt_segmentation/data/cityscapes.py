"""Reader for a Cityscapes-layout split: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with fine labels.

Labels come from ``gtFine/<split>/<city>/<name>_gtFine_labelTrainIds.png`` when present (255 = void), else from
``..._gtFine_labelIds.png`` mapped to trainIds with the official table of ``cityscapesscripts``. Works for the real
dataset, for your own data in its layout, and for ``trt_seg_make_street_scenes`` output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SegmentationError

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAIN_IDS_SUFFIX = "_gtFine_labelTrainIds.png"
LABEL_IDS_SUFFIX = "_gtFine_labelIds.png"


class DatasetError(SegmentationError):
    """A dataset root, split or file is missing or inconsistent; the message says which file and what to do."""


@dataclass
class Sample:
    name: str  # e.g. 'frankfurt_000000_000294'
    image: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8 trainIds, 255 = void
    image_path: Path
    label_path: Path


@lru_cache(maxsize=1)
def label_ids_to_train_ids() -> np.ndarray:
    """(256,) uint8 lookup table: official Cityscapes labelId -> trainId (255 for void and unknown ids)."""
    from cityscapesscripts.helpers.labels import labels

    lut = np.full(256, 255, dtype=np.uint8)
    for label in labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
    return lut


def _read_png(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if mode == "L":  # label image: keep the stored integer values (palette indices for mode P)
                if im.mode not in ("L", "P", "I", "I;16"):
                    raise DatasetError(f"{path}: expected a single-channel label image, got mode {im.mode}")
                return np.asarray(im)
            return np.asarray(im.convert(mode))
    except DatasetError:
        raise
    except OSError as exc:  # unreadable or truncated file
        raise DatasetError(f"cannot read {path}: {exc}") from exc


class CityscapesSplit:
    """``split[i]`` -> :class:`Sample`; files are sorted by name, read lazily."""

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise DatasetError(f"dataset root {self.root} does not exist")
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            found = sorted(p.name for p in (self.root / "leftImg8bit").glob("*")) if (self.root / "leftImg8bit").is_dir() else []
            hint = f"; splits found: {', '.join(found)}" if found else " (expected <root>/leftImg8bit/<split>/<city>/*_leftImg8bit.png)"
            raise DatasetError(f"no split {split!r} under {self.root}: {image_dir} is missing{hint}")
        self.image_paths = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
        if not self.image_paths:
            raise DatasetError(f"{image_dir} holds no <city>/*{IMAGE_SUFFIX} files")
        self.label_paths = [self._label_path(p) for p in self.image_paths]

    def _label_path(self, image_path: Path) -> Path:
        name = image_path.name[: -len(IMAGE_SUFFIX)]
        gt_dir = self.root / "gtFine" / self.split / image_path.parent.name
        for suffix in (TRAIN_IDS_SUFFIX, LABEL_IDS_SUFFIX):
            if (gt_dir / f"{name}{suffix}").is_file():
                return gt_dir / f"{name}{suffix}"
        raise DatasetError(f"no label file for {image_path}: expected {gt_dir / (name + TRAIN_IDS_SUFFIX)} "
                           f"or {gt_dir / (name + LABEL_IDS_SUFFIX)}")

    def __len__(self) -> int:
        return len(self.image_paths)

    def name(self, index: int) -> str:
        return self.image_paths[index].name[: -len(IMAGE_SUFFIX)]

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = _read_png(image_path, "RGB")
        raw = _read_png(label_path, "L")
        if raw.dtype != np.uint8:
            raw = np.clip(raw, 0, 255).astype(np.uint8)
        labels = raw if label_path.name.endswith(TRAIN_IDS_SUFFIX) else label_ids_to_train_ids()[raw]
        if image.shape[:2] != labels.shape:
            raise DatasetError(f"size mismatch: image {image_path} is {image.shape[0]}x{image.shape[1]} but labels "
                               f"{label_path} are {labels.shape[0]}x{labels.shape[1]}")
        return Sample(self.name(index), image, labels, image_path, label_path)

    def __iter__(self):  # noqa: ANN204 - Iterator[Sample]
        for i in range(len(self)):
            yield self[i]
