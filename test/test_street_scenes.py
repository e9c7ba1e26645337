"""Procedural street scenes: determinism, label validity, resolution independence, the Cityscapes layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trt_segmentation.data.street_scenes import (
    VOID_LABEL_ID,
    render_scene,
    scene_seed,
    train_to_label_ids,
    write_street_split,
)

ROOT = Path(__file__).resolve().parents[1]


def test_deterministic_per_seed_and_seeds_differ():
    a_img, a_lab = render_scene(7, 96, 192)
    b_img, b_lab = render_scene(7, 96, 192)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    c_img, c_lab = render_scene(8, 96, 192)
    assert (c_lab != a_lab).mean() > 0.05 and not np.array_equal(c_img, a_img)


def test_labels_are_valid_and_cover_all_19_classes():
    seen: set[int] = set()
    for seed in range(8):
        image, labels = render_scene(seed, 128, 256)
        assert image.shape == (128, 256, 3) and image.dtype == np.uint8
        assert labels.shape == (128, 256) and labels.dtype == np.uint8
        values = set(np.unique(labels).tolist())
        assert values <= set(range(19)) | {255}
        assert {0, 1, 2, 10} <= values  # road, sidewalk, building, sky in every scene
        seen |= values
    assert seen == set(range(19)) | {255}


def test_same_scene_at_every_resolution():
    small = render_scene(5, 128, 256)[1]
    large = render_scene(5, 256, 512)[1]
    assert (large[::2, ::2] == small).mean() > 0.95  # only edges move by a pixel
    tall = render_scene(5, 200, 200)[1]  # any aspect ratio works
    assert tall.shape == (200, 200)


def test_labels_follow_the_picture():
    """Exact labels: every labelled region is drawn in the picture with its own look, so the mean colour of each
    class differs clearly from the classes it borders most (road vs sidewalk, building vs sky, car vs road)."""
    image, labels = render_scene(11, 256, 512)
    assert {0, 1, 2, 10, 13} <= set(np.unique(labels).tolist())  # this scene has all five classes
    mean = {c: image[labels == c].reshape(-1, 3).mean(0) for c in (0, 1, 2, 10, 13)}
    for a, b in ((0, 1), (2, 10), (0, 13), (1, 2)):
        assert np.abs(mean[a] - mean[b]).max() > 15, (a, b, mean[a], mean[b])


def test_rejects_tiny_sizes():
    with pytest.raises(ValueError, match="too small"):
        render_scene(0, 4, 4)


def test_split_layout_label_ids_and_disjoint_splits(tmp_path):
    paths = write_street_split(tmp_path, "train", 2, seed=1, height=64, width=128, progress=False)
    write_street_split(tmp_path, "val", 2, seed=1, height=64, width=128, progress=False)
    assert [p.name for p in paths] == ["synthcity_000000_000019_leftImg8bit.png", "synthcity_000001_000019_leftImg8bit.png"]
    assert all(p.parent == tmp_path / "leftImg8bit" / "train" / "synthcity" for p in paths)
    gt = tmp_path / "gtFine" / "train" / "synthcity"
    train_ids = np.asarray(Image.open(gt / "synthcity_000000_000019_gtFine_labelTrainIds.png"))
    label_ids = np.asarray(Image.open(gt / "synthcity_000000_000019_gtFine_labelIds.png"))
    from cityscapesscripts.helpers.labels import id2label

    mapped = np.vectorize(lambda i: id2label[int(i)].trainId)(label_ids)
    np.testing.assert_array_equal(np.where(mapped < 0, 255, mapped), train_ids)  # official table, both ways
    assert set(np.unique(label_ids[train_ids == 255]).tolist()) <= {VOID_LABEL_ID}
    assert train_to_label_ids()[13] == 26  # car
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), render_scene(scene_seed(1, "train", 0), 64, 128)[0])
    assert scene_seed(1, "train", 0) != scene_seed(1, "val", 0) != scene_seed(2, "val", 0)


def test_workers_give_the_same_files(tmp_path):
    one = write_street_split(tmp_path / "a", "val", 3, height=32, width=64, progress=False)
    two = write_street_split(tmp_path / "b", "val", 3, height=32, width=64, workers=2, progress=False)
    for p, q in zip(one, two):
        np.testing.assert_array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(q)))


def test_tool(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "make_street_scenes.py"), str(tmp_path), "--val", "2",
                             "--size", "32x64", "--quiet"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "gtFine" / "val" / "synthcity").glob("*_labelTrainIds.png"))) == 2
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "make_street_scenes.py"), str(tmp_path), "--val", "1",
                          "--size", "big"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "HEIGHTxWIDTH" in bad.stderr
