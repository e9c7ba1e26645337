"""Procedural street scenes with exact Cityscapes trainId labels: a test and demo domain, not Cityscapes.

A pinhole camera looks down a (possibly curving) street; road, sidewalks, grass, buildings, walls, fences, trees,
poles, traffic lights and signs, people, riders on bicycles and motorcycles, cars, trucks, buses and trams are built
in metres, projected, and drawn far to near (painter's order, so occlusion is right). Every shape is filled into the
RGB picture and the label map by the same PIL call with the same vertices, so labels are exact; textures,
lighting, shadows and sensor noise then change only the picture. All randomness comes from one
``numpy.random.Generator`` seeded by ``seed`` (the layout is drawn before anything resolution-dependent, so one
seed gives the same scene at every resolution). Numbers measured on these scenes say nothing about Cityscapes.

The parts: street_layout.py (geometry), street_render.py (rendering, :func:`render_scene`), this module (scene seeds
and writing a Cityscapes-layout split).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from .street_layout import VOID_LABEL_ID
from .street_render import render_scene


# ------------------------------------------------------------------------------------------- dataset writer
def scene_seed(seed: int, split: str, index: int) -> int:
    """Seed of scene ``index`` in ``split``: different splits never share a scene."""
    ss = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def train_to_label_ids() -> np.ndarray:
    """(256,) uint8 lookup table trainId -> official Cityscapes labelId (void -> 'ego vehicle')."""
    from cityscapesscripts.helpers.labels import trainId2label

    lut = np.full(256, VOID_LABEL_ID, dtype=np.uint8)
    for train_id in range(19):
        lut[train_id] = trainId2label[train_id].id
    return lut


def scene_name(city: str, index: int) -> str:
    return f"{city}_{index:06d}_000019"


def _write_one(job: tuple[Path, str, str, int, int, int, int]) -> Path:
    root, split, city, index, seed, height, width = job
    image, labels = render_scene(scene_seed(seed, split, index), height, width)
    name = scene_name(city, index)
    img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    image_path = img_dir / f"{name}_leftImg8bit.png"
    Image.fromarray(image).save(image_path, compress_level=1)
    Image.fromarray(train_to_label_ids()[labels]).save(gt_dir / f"{name}_gtFine_labelIds.png", compress_level=6)
    Image.fromarray(labels).save(gt_dir / f"{name}_gtFine_labelTrainIds.png", compress_level=6)
    return image_path


def write_street_split(root: str | Path, split: str, count: int, seed: int = 0, height: int = 1024, width: int = 2048,
                       city: str = "synthcity", workers: int = 1, progress: bool = True) -> list[Path]:
    """Write ``count`` scenes in the Cityscapes layout under ``root``; returns the image paths in order.

    Files: ``leftImg8bit/<split>/<city>/<city>_<index:06d>_000019_leftImg8bit.png`` plus ``gtFine/...`` with
    ``_gtFine_labelIds.png`` (official ids) and ``_gtFine_labelTrainIds.png``."""
    if count < 0:
        raise InputError("count must be >= 0")
    root = Path(root)
    jobs = [(root, split, city, i, seed, height, width) for i in range(count)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=count, desc=f"{split} scenes", unit="img")
    paths: list[Path] = []
    try:
        if workers > 1 and count > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(workers) as pool:
                for path in pool.imap(_write_one, jobs, chunksize=2):
                    paths.append(path)
                    if bar is not None:
                        bar.update()
        else:
            for job in jobs:
                paths.append(_write_one(job))
                if bar is not None:
                    bar.update()
    finally:
        if bar is not None:
            bar.close()
    return paths
