"""Confusion-matrix metrics: hand-checked cases, ignore rules, and agreement with cityscapesscripts."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest
from PIL import Image

from trt_segmentation.metrics import (
    ConfusionMatrix,
    confusion_matrix,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    scores_from_confusion,
)


def test_hand_computed_case():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 19]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]], dtype=np.uint8)
    cm = confusion_matrix(target, pred, 19)
    assert cm.sum() == 6  # 255 and 19 ignored
    iou = per_class_iou(cm)
    # class 0: tp 1, fp 1 (a 2 predicted as 0), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(iou[3:]).all()
    assert mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert pixel_accuracy(cm) == pytest.approx(4 / 6)
    s = scores_from_confusion(cm)
    assert s["iou"][3] is None and s["miou"] == pytest.approx(mean_iou(cm))


def test_every_target_at_or_above_num_classes_is_ignored():
    target = np.array([19, 20, 254, 255, 3], dtype=np.uint8)
    pred = np.array([1, 2, 3, 4, 3], dtype=np.uint8)
    cm = ConfusionMatrix(19)
    cm.update(target, pred)
    assert cm.matrix.sum() == 1 and cm.miou == 1.0 and cm.pixel_accuracy == 1.0


def test_bad_predictions_and_shapes_raise():
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(np.zeros(3, np.uint8), np.full(3, 19, np.uint8), 19)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros(3, np.uint8), np.zeros(4, np.uint8), 19)


def test_torch_tensors_count_the_same_matrix_on_their_device():
    """The trainer's validation passes torch tensors (on its GPU): the same function, the same counts."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    target = rng.integers(0, 21, (2, 16, 32)).astype(np.uint8)
    target[0, 0, :5] = 255
    pred = rng.integers(0, 19, (2, 16, 32)).astype(np.int64)
    expected = confusion_matrix(target, pred, 19)
    counted = confusion_matrix(torch.from_numpy(target), torch.from_numpy(pred), 19)
    assert isinstance(counted, torch.Tensor) and counted.dtype == torch.int64
    np.testing.assert_array_equal(counted.numpy(), expected)
    with pytest.raises(ValueError, match="class ids"):
        confusion_matrix(torch.zeros(3, dtype=torch.uint8), torch.full((3,), 19), 19)


def test_absent_class_predicted_counts_as_zero():
    cm = confusion_matrix(np.array([0, 0]), np.array([0, 5]), 19)
    iou = per_class_iou(cm)
    assert iou[5] == 0.0 and iou[0] == 0.5
    assert mean_iou(cm) == pytest.approx(0.25)


def test_agrees_with_cityscapesscripts(tmp_path, monkeypatch):
    """Official pixel-level evaluation on a small generated dataset with noisy predictions: same mIoU, per-class
    IoU and pixel accuracy to 0.01 percentage points."""
    from trt_segmentation.data.street_scenes import render_scene, train_to_label_ids

    root = tmp_path / "cs"
    results = tmp_path / "results"
    gt_dir = root / "gtFine" / "val" / "synthcity"
    gt_dir.mkdir(parents=True)
    results.mkdir()
    lut = train_to_label_ids()
    rng = np.random.default_rng(0)
    ours = ConfusionMatrix(19)
    gts, preds = [], []
    for i in range(3):
        _, labels = render_scene(100 + i, 96, 192)
        pred = labels.copy()
        pred[pred == 255] = 0  # a model never predicts void
        noise = rng.random(pred.shape) < 0.25
        pred[noise] = rng.integers(0, 19, int(noise.sum()))
        pred[:10] = 13  # a block of one class (also predicted where it does not occur)
        name = f"synthcity_{i:06d}_000019"
        Image.fromarray(lut[labels]).save(gt_dir / f"{name}_gtFine_labelIds.png")
        Image.fromarray(lut[pred]).save(results / f"{name}_pred.png")
        gts.append(str(gt_dir / f"{name}_gtFine_labelIds.png"))
        ours.update(labels, pred)

    monkeypatch.setenv("CITYSCAPES_DATASET", str(root))
    monkeypatch.setenv("CITYSCAPES_RESULTS", str(results))
    sys.modules.pop("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling", None)
    ev = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    args = ev.args
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False  # needs np.in1d (gone in numpy 2.4); see below
    args.quiet = True
    args.JSONOutput = False
    args.exportFile = str(tmp_path / "eval.json")
    args.predictionPath = str(results)
    for gt in gts:
        preds.append(ev.getPrediction(args, gt))
    res = ev.evaluateImgLists(preds, gts, args)

    assert 100 * abs(res["averageScoreClasses"] - ours.miou) < 0.01
    from cityscapesscripts.helpers.labels import trainId2label

    for train_id, value in enumerate(ours.iou):
        official = res["classScores"][trainId2label[train_id].name]
        if np.isnan(value):
            assert np.isnan(official)
        else:
            assert 100 * abs(official - value) < 0.01
    # pixel accuracy: the script's own per-image accuracy counters are inverted (np.in1d(..., invert=True)), so
    # use the definition on its confusion matrix (labelId rows/columns): correct / pixels of the 19 eval classes
    conf = np.asarray(res["confMatrix"], dtype=np.float64)
    eval_ids = [trainId2label[t].id for t in range(19)]
    official_acc = sum(conf[i, i] for i in eval_ids) / conf[eval_ids, :].sum()
    assert 100 * abs(official_acc - ours.pixel_accuracy) < 0.01
