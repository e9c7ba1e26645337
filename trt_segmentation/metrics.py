"""Segmentation scores from a confusion matrix: per-class IoU, mIoU and pixel accuracy (numpy only).

Rows are ground truth, columns predictions. Every target >= ``num_classes`` is ignored (255 in Cityscapes
labelTrainIds, 19 in the original SwiftNet code). The definitions match the official ``cityscapesscripts``
pixel-level evaluation: IoU = TP / (TP + FP + FN) over non-ignored pixels, a class whose TP + FP + FN is zero
has no IoU and is left out of the mean, pixel accuracy = correct / non-ignored pixels (a test checks agreement
with cityscapesscripts). A few lines of ``np.bincount`` serve here because cityscapesscripts works on labelId
PNG files and exits the process on errors, which a library or a training loop cannot afford.

:func:`confusion_matrix` is the only one in the package: evaluation passes numpy arrays, the trainer torch tensors
on its GPU (counted there, without a copy to the host per image); the module itself imports no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(target: Any, prediction: Any, num_classes: int = 19) -> Any:
    """(num_classes, num_classes) int64 counts, rows = ``target`` (ground truth), columns = ``prediction``; pixels
    whose target is >= num_classes are ignored. Both numpy arrays (-> numpy), or both torch tensors on one device
    (-> a tensor on that device: the same operations, through the tensor's own methods)."""
    if tuple(target.shape) != tuple(prediction.shape):
        raise ValueError(f"target {tuple(target.shape)} and prediction {tuple(prediction.shape)} differ in shape")
    numpy = isinstance(target, np.ndarray)
    t, p = target.reshape(-1), prediction.reshape(-1)
    t, p = (t.astype(np.int64, copy=False), p.astype(np.int64, copy=False)) if numpy else (t.long(), p.long())
    valid = (t >= 0) & (t < num_classes)
    t, p = t[valid], p[valid]
    if p.shape[0] and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predictions must be class ids in 0..{num_classes - 1}, got values up to {int(p.max())}")
    flat = t * num_classes + p
    counts = np.bincount(flat, minlength=num_classes**2) if numpy else flat.bincount(minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def per_class_iou(confusion: np.ndarray) -> np.ndarray:
    """float64 IoU per class; NaN where the class is neither in the ground truth nor predicted."""
    conf = confusion.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes that occur (in ground truth or prediction); NaN when nothing was scored."""
    iou = per_class_iou(confusion)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total > 0 else float("nan")


def scores_from_confusion(confusion: np.ndarray) -> dict[str, Any]:
    """``{'miou', 'iou' (list, None where absent), 'pixel_accuracy', 'pixels'}`` (fractions, not percent)."""
    iou = per_class_iou(confusion)
    return {
        "miou": mean_iou(confusion),
        "iou": [None if np.isnan(v) else float(v) for v in iou],
        "pixel_accuracy": pixel_accuracy(confusion),
        "pixels": int(confusion.sum()),
    }


class ConfusionMatrix:
    """Accumulates frames: ``cm.update(target, prediction)`` ... ``cm.miou``."""

    def __init__(self, num_classes: int = 19) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, target: np.ndarray, prediction: np.ndarray) -> None:
        self.matrix += confusion_matrix(target, prediction, self.num_classes)

    @property
    def iou(self) -> np.ndarray:
        return per_class_iou(self.matrix)

    @property
    def miou(self) -> float:
        return mean_iou(self.matrix)

    @property
    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)


def format_iou_table(iou: np.ndarray | list[float | None], class_names: tuple[str, ...] | None = None) -> str:
    """Plain-text per-class IoU table in percent ('-' for classes that did not occur)."""
    if class_names is None:
        from .palette import CLASS_NAMES

        class_names = CLASS_NAMES if len(iou) == len(CLASS_NAMES) else tuple(str(i) for i in range(len(iou)))
    lines = []
    for name, value in zip(class_names, iou):
        text = "-" if value is None or not np.isfinite(value) else f"{100.0 * float(value):6.2f}"
        lines.append(f"  {name:<14s} {text:>6s}")
    return "\n".join(lines)
