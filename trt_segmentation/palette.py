"""Cityscapes trainId class names and colours (no dependencies, so the node can use it on a Jetson).

The table is the 19 evaluated classes of ``cityscapesscripts.helpers.labels`` in trainId order; a test checks
it against that package, which the build tools use directly. Copied here only to keep the runtime light.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

CLASS_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)

CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

IGNORE_LABEL = 255


def palette_lut() -> np.ndarray:
    """(256, 3) uint8 lookup table: trainId -> RGB colour; ids outside 0..18 are black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(CLASS_COLORS)] = np.asarray(CLASS_COLORS, dtype=np.uint8)
    return lut


_LUT = palette_lut()


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W) uint8 trainIds -> (H, W, 3) uint8 RGB colour mask (one table lookup, no Python loops)."""
    if labels.dtype != np.uint8:
        labels = labels.astype(np.uint8)
    return _LUT[labels]


def overlay(image_rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over an (H, W, 3) uint8 RGB image; ``alpha`` is the mask's weight (0..1)."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"overlay alpha must be in [0, 1], got {alpha}")
    if image_rgb.shape[:2] != labels.shape[:2]:
        raise ValueError(f"image {image_rgb.shape[:2]} and labels {labels.shape[:2]} differ in size")
    mixed = image_rgb.astype(np.float32) * (1.0 - alpha) + colorize(labels).astype(np.float32) * alpha
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
