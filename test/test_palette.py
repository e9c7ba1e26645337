"""The node's dependency-free class table equals cityscapesscripts' official one; colour helpers."""

from __future__ import annotations

import numpy as np
import pytest

from trt_segmentation.palette import CLASS_COLORS, CLASS_NAMES, colorize, overlay


def test_table_matches_cityscapesscripts() -> None:
    from cityscapesscripts.helpers.labels import trainId2label

    official = [trainId2label[i] for i in range(19)]
    assert CLASS_NAMES == tuple(label.name for label in official)
    assert CLASS_COLORS == tuple(tuple(label.color) for label in official)


def test_colorize_and_overlay() -> None:
    labels = np.array([[0, 13], [255, 18]], np.uint8)
    colours = colorize(labels)
    assert colours.shape == (2, 2, 3) and tuple(colours[0, 1]) == (0, 0, 142) and tuple(colours[1, 0]) == (0, 0, 0)
    image = np.full((2, 2, 3), 100, np.uint8)
    assert np.array_equal(overlay(image, labels, 0.0), image)
    assert np.array_equal(overlay(image, labels, 1.0), colours)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, labels, 1.5)
    with pytest.raises(ValueError, match="differ in size"):
        overlay(image, labels[:1], 0.5)
