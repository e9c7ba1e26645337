"""Cityscapes-layout reader and image-folder reader on small generated roots."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trt_segmentation.data.cityscapes import CityscapesSplit, DatasetError, label_ids_to_train_ids
from trt_segmentation.data.image_folder import iter_image_folder
from trt_segmentation.data.street_scenes import render_scene, scene_seed, write_street_split


@pytest.fixture()
def root(tmp_path):
    write_street_split(tmp_path, "val", 3, seed=4, height=48, width=96, progress=False)
    return tmp_path


def test_reads_samples_in_order(root):
    split = CityscapesSplit(root, "val")
    assert len(split) == 3
    sample = split[1]
    assert sample.name == "synthcity_000001_000019"
    image, labels = render_scene(scene_seed(4, "val", 1), 48, 96)
    np.testing.assert_array_equal(sample.image, image)
    np.testing.assert_array_equal(sample.labels, labels)
    assert sample.image.dtype == np.uint8 and sample.labels.dtype == np.uint8
    assert sample.label_path.name.endswith("_gtFine_labelTrainIds.png")
    assert [s.name for s in split] == [f"synthcity_{i:06d}_000019" for i in range(3)]
    with pytest.raises(IndexError):
        split[3]


def test_falls_back_to_label_ids_with_the_official_table(root):
    gt = root / "gtFine" / "val" / "synthcity"
    expected = CityscapesSplit(root, "val")[0].labels
    for p in gt.glob("*_labelTrainIds.png"):
        p.unlink()
    sample = CityscapesSplit(root, "val")[0]
    assert sample.label_path.name.endswith("_gtFine_labelIds.png")
    np.testing.assert_array_equal(sample.labels, expected)
    lut = label_ids_to_train_ids()
    assert lut[7] == 0 and lut[26] == 13 and lut[0] == 255 and lut[1] == 255 and lut[33] == 18


def test_clear_errors(root, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        CityscapesSplit(tmp_path / "nowhere", "val")
    with pytest.raises(DatasetError, match="splits found: val"):
        CityscapesSplit(root, "train")
    gt = root / "gtFine" / "val" / "synthcity"
    for p in gt.glob("synthcity_000002_*"):
        p.unlink()
    with pytest.raises(DatasetError, match="no label file for .*synthcity_000002_000019"):
        CityscapesSplit(root, "val")


def test_size_mismatch(root):
    gt = root / "gtFine" / "val" / "synthcity" / "synthcity_000000_000019_gtFine_labelTrainIds.png"
    Image.fromarray(np.zeros((24, 48), np.uint8)).save(gt)
    split = CityscapesSplit(root, "val")
    with pytest.raises(DatasetError, match="size mismatch.*48x96.*24x48"):
        split[0]
    assert split[1].labels.shape == (48, 96)  # other samples still load


def test_image_folder(tmp_path):
    Image.fromarray(np.full((4, 6, 3), 10, np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.full((4, 6), 20, np.uint8)).save(tmp_path / "a.jpg")  # grey -> RGB
    (tmp_path / "notes.txt").write_text("not an image")
    items = list(iter_image_folder(tmp_path))
    assert [n for n, _ in items] == ["a.jpg", "b.png"]
    assert all(img.shape == (4, 6, 3) and img.dtype == np.uint8 for _, img in items)
    assert len(list(iter_image_folder(tmp_path, limit=1))) == 1
    with pytest.raises(FileNotFoundError):
        list(iter_image_folder(tmp_path / "missing"))
