"""Calibration frames are chosen over the whole source: every k-th image of a folder, each Cityscapes city its
share, a bag's whole time span; ``random`` is a seeded sample and ``first`` the old first-N behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trt_segmentation.onnx_metadata import ModelContract
from trt_segmentation.precision.calibration_data import CalibrationDataError, load_calibration_set, select_indices

H, W = 64, 128


def _contract() -> ModelContract:
    return ModelContract(model="swiftnet_ss_rn18", num_classes=19, height=H, width=W, input_format="uint8_rgb",
                         output="labels_uint8", input_name="image", output_name="labels",
                         mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _frame(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)  # the frame's index is its pixel value


def test_spread_takes_every_kth_item_from_the_middle_of_each_share() -> None:
    assert select_indices(100, 4) == [12, 37, 62, 87]
    assert select_indices(10, 10) == list(range(10)) and select_indices(3, 8) == [0, 1, 2]
    assert select_indices(100, 4, "first") == [0, 1, 2, 3]


def test_spread_over_times_follows_the_clock_not_the_message_count() -> None:
    times = [0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 103, 200]  # a burst at the start, a gap, a few late frames
    picked = select_indices(times, 3)
    assert [times[i] for i in picked] == [7, 100, 200]  # the frames nearest to t = 33.3, 100 and 166.7


def test_random_is_seeded_sorted_and_unique() -> None:
    a = select_indices(1000, 16, "random", seed=3)
    assert a == select_indices(1000, 16, "random", seed=3) and a != select_indices(1000, 16, "random", seed=4)
    assert a == sorted(set(a)) and len(a) == 16
    with pytest.raises(CalibrationDataError, match="unknown calibration selection"):
        select_indices(10, 2, "middle")


def test_cityscapes_split_gives_every_city_its_share(tmp_path: Path) -> None:
    value = 0
    for city, count in (("aachen", 8), ("bochum", 8), ("zurich", 8)):
        folder = tmp_path / "leftImg8bit" / "train" / city
        labels = tmp_path / "gtFine" / "train" / city
        folder.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_frame(value)).save(folder / f"{city}_000000_{i:06d}_leftImg8bit.png")
            Image.fromarray(np.zeros((H, W), np.uint8)).save(labels / f"{city}_000000_{i:06d}_gtFine_labelTrainIds.png")
            value += 1
    first = load_calibration_set(f"cityscapes:{tmp_path}@train", _contract(), count=6, batch_size=2,
                                 selection="first")
    spread = load_calibration_set(f"cityscapes:{tmp_path}@train", _contract(), count=6, batch_size=2)
    assert [int(f[0, 0, 0]) for f in first.frames] == [0, 1, 2, 3, 4, 5]  # all from aachen
    assert [int(f[0, 0, 0]) for f in spread.frames] == [2, 6, 10, 14, 18, 22]  # two from each city
    assert spread.sha256 != first.sha256  # the selection changes the cache key


def test_bag_selection_spans_the_recording(tmp_path: Path) -> None:
    from trt_segmentation.data.bags import write_image_bag

    write_image_bag(tmp_path / "bag", [_frame(i) for i in range(30)], fps=30.0)
    spread = load_calibration_set(f"bag:{tmp_path / 'bag'}", _contract(), count=4, batch_size=2)
    values = [int(f[0, 0, 0]) for f in spread.frames]
    assert values == [4, 11, 18, 25]  # nearest to frames 3.6, 10.9, 18.1, 25.4 of the 29-frame span, not 0-3
    first = load_calibration_set(f"bag:{tmp_path / 'bag'}", _contract(), count=4, batch_size=2, selection="first")
    assert [int(f[0, 0, 0]) for f in first.frames] == [0, 1, 2, 3]
