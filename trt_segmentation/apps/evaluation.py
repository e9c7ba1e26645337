"""Score a backend on a labelled Cityscapes-layout split, and compare two backends (e.g. INT8 against FP32).

Frames whose size differs from the model input are resized (bilinear) to the model size; the predicted labels
are resized back (nearest) to the label size and scored there, so scores are always at label resolution. Frames
are given to the backend in ``backend.contract.channel_order``. A PyTorch checkpoint is evaluated through
runtime's checkpoint backend (torch imported only there), so all three model kinds share one scoring path.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import BackendKind, Precision, artifact_path
from ..errors import InputError
from ..image_codec import reorder_channels, resize_image, resize_nearest
from ..metrics import ConfusionMatrix, confusion_matrix, mean_iou, per_class_iou
from ..runtime import create_backend, open_model_file
from ..runtime.backend import Backend, BackendError


@dataclass
class EvalResult:
    """Scores are fractions (0..1); ``iou`` has NaN for classes that occur neither in labels nor predictions."""

    miou: float
    iou: np.ndarray
    pixel_accuracy: float
    confusion: np.ndarray
    frames: int
    seconds: float  # wall time of backend.infer over all frames (resizing for scoring excluded)
    resized_frames: int = 0  # frames whose size differed from the model input
    agreement: dict[str, Any] | None = None  # against a reference backend's predictions, when given
    predictions: list[np.ndarray] | None = field(default=None, repr=False)

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / self.frames if self.frames else float("nan")

    def to_dict(self) -> dict[str, Any]:
        from ..palette import CLASS_NAMES

        names = CLASS_NAMES if len(self.iou) == len(CLASS_NAMES) else tuple(str(i) for i in range(len(self.iou)))
        out: dict[str, Any] = {
            "miou": self.miou, "pixel_accuracy": self.pixel_accuracy, "frames": self.frames,
            "ms_per_frame": self.ms_per_frame, "resized_frames": self.resized_frames,
            "iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, self.iou)},
        }
        if self.agreement is not None:
            out["agreement"] = {k: v for k, v in self.agreement.items() if k != "iou"}
        return out

    def summary(self) -> str:
        from ..metrics import format_iou_table

        text = (f"mIoU {100 * self.miou:.2f} %   pixel accuracy {100 * self.pixel_accuracy:.2f} %   "
                f"{self.frames} frames, {self.ms_per_frame:.1f} ms/frame\n" + format_iou_table(self.iou))
        if self.resized_frames:
            text += f"\n({self.resized_frames} frames resized to the model input and labels back to label size)"
        return text


def _as_image(item: Any) -> np.ndarray:
    """Accept an RGB array, a Sample-like object with ``.image``, or a ``(name, array)`` pair."""
    if isinstance(item, np.ndarray):
        return item
    if hasattr(item, "image"):
        return item.image
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], np.ndarray):
        return item[1]
    raise TypeError(f"expected an RGB image array, a Sample or a (name, image) pair, got {type(item).__name__}")


def _model_frame(backend: Backend, image_rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """One RGB frame as the model takes it (model size, ``contract.channel_order``); also whether it was resized."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"frames must be (H, W, 3) uint8 RGB, got {image_rgb.shape} {image_rgb.dtype}")
    model_h, model_w = backend.input_size
    resized = model_h > 0 and model_w > 0 and (model_h, model_w) != image_rgb.shape[:2]
    frame = image_rgb
    if resized:
        frame = resize_image(image_rgb, model_h, model_w)
    return np.ascontiguousarray(reorder_channels(frame, backend.contract.channel_order)), resized


def _run_labels(backend: Backend, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Labels of model-ready ``frames``: one ``infer`` each on a batch-1 model; on a batch-N model ``infer_batch``
    over runs of N frames, the last run padded with ``None`` rows whose labels are dropped."""
    if backend.batch == 1:
        return [backend.infer(frame).labels for frame in frames]
    out: list[np.ndarray] = []
    for start in range(0, len(frames), backend.batch):
        run: list[np.ndarray | None] = list(frames[start : start + backend.batch])
        real = len(run)
        run += [None] * (backend.batch - real)
        labels = backend.infer_batch(run).labels
        out.extend(labels[row] for row in range(real))
    return out


def predict_many(backend: Backend, images_rgb: Sequence[np.ndarray],
                 out_sizes: Sequence[tuple[int, int] | None] | None = None,
                 infer_seconds: list[float] | None = None) -> list[tuple[np.ndarray, bool]]:
    """:func:`predict` for several frames at once (batches of ``backend.batch`` on a batch-N model); the wall time
    of the backend calls alone is appended to ``infer_seconds`` as one entry."""
    prepared = [_model_frame(backend, image) for image in images_rgb]
    t0 = time.perf_counter()
    labels_list = _run_labels(backend, [frame for frame, _ in prepared])
    if infer_seconds is not None:
        infer_seconds.append(time.perf_counter() - t0)
    results = []
    for i, (labels, (_, resized)) in enumerate(zip(labels_list, prepared)):
        size = out_sizes[i] if out_sizes is not None else None
        out_h, out_w = size if size is not None else images_rgb[i].shape[:2]
        if labels.shape != (out_h, out_w):
            labels = resize_nearest(labels, out_h, out_w)
            resized = True
        results.append((labels, resized))
    return results


def predict(backend: Backend, image_rgb: np.ndarray, out_size: tuple[int, int] | None = None,
            infer_seconds: list[float] | None = None) -> tuple[np.ndarray, bool]:
    """Labels for one RGB frame at ``out_size`` (default: the frame's size); also says whether it was resized.

    The wall time of ``backend.infer`` alone (without the resizing done here) is appended to ``infer_seconds``.
    On a batch-N model the frame runs as one row of a padded batch (use :func:`predict_many` for whole batches)."""
    return predict_many(backend, [image_rgb], [out_size], infer_seconds)[0]


def _progress(iterable: Iterable[Any], total: int | None, desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="frame")


def evaluate_backend(backend: Backend, split: Sequence[Any], limit: int | None = None, progress: bool = True,
                     reference: Sequence[np.ndarray] | None = None, keep_predictions: bool = False,
                     desc: str | None = None) -> EvalResult:
    """Score ``backend`` on a labelled split (e.g. :class:`~trt_segmentation.data.cityscapes.CityscapesSplit`).

    With ``reference`` (predictions of another backend for the same frames, e.g. FP32), also report agreement.
    ``keep_predictions`` keeps this backend's label maps (to serve as a reference for other variants)."""
    num_classes = backend.contract.num_classes
    count = len(split) if limit is None else min(limit, len(split))
    if count == 0:
        raise InputError("the split is empty")
    if reference is not None and len(reference) < count:
        raise ValueError(f"reference has {len(reference)} predictions for {count} frames")
    cm = ConfusionMatrix(num_classes)
    agree_cm = ConfusionMatrix(num_classes) if reference is not None else None
    equal = total = 0
    seconds = 0.0
    resized_frames = 0
    kept: list[np.ndarray] = []
    step = backend.batch  # a batch-N model scores N frames per run, the last run padded
    runs = range(0, count, step)
    for start in _progress(runs, len(runs), desc or backend.contract.precision, progress):
        indices = range(start, min(start + step, count))
        samples = [split[i] for i in indices]
        clock: list[float] = []
        predicted = predict_many(backend, [s.image for s in samples], [s.labels.shape for s in samples], clock)
        seconds += sum(clock)
        for i, sample, (labels, resized) in zip(indices, samples, predicted):
            resized_frames += int(resized)
            cm.update(sample.labels, labels)
            if agree_cm is not None and reference is not None:
                ref = reference[i]
                agree_cm.update(ref, labels)
                equal += int(np.count_nonzero(ref == labels))
                total += ref.size
            if keep_predictions:
                kept.append(labels)
    agreement = None
    if agree_cm is not None:
        agreement = {"pixel_agreement": equal / total if total else float("nan"), "miou_vs_reference": agree_cm.miou,
                     "iou": agree_cm.iou}
    return EvalResult(cm.miou, cm.iou, cm.pixel_accuracy, cm.matrix, count, seconds, resized_frames, agreement,
                      kept if keep_predictions else None)


def agreement(backend_a: Backend, backend_b: Backend, images: Iterable[Any], progress: bool = False) -> dict[str, Any]:
    """How far ``backend_b`` follows ``backend_a`` on unlabelled frames (``a`` is the reference).

    Returns ``pixel_agreement`` (fraction of equal labels), ``miou_vs_reference`` (mIoU of b's labels scored
    against a's as ground truth), per-class ``iou``, ``frames`` and ``ms_per_frame_a``/``_b``."""
    num_classes = backend_a.contract.num_classes
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    equal = total = frames = 0
    time_a = time_b = 0.0
    step = max(backend_a.batch, backend_b.batch)  # whole runs of either model (a batch-N one runs N at once)
    items = iter(_progress(images, None, "agreement", progress))
    while True:
        chunk = [_as_image(item) for item in itertools.islice(items, step)]
        if not chunk:
            break
        clock_a: list[float] = []
        clock_b: list[float] = []
        predicted_a = predict_many(backend_a, chunk, None, clock_a)
        predicted_b = predict_many(backend_b, chunk, None, clock_b)
        time_a += sum(clock_a)
        time_b += sum(clock_b)
        for (labels_a, _), (labels_b, _) in zip(predicted_a, predicted_b):
            cm += confusion_matrix(labels_a, labels_b, num_classes)
            equal += int(np.count_nonzero(labels_a == labels_b))
            total += labels_a.size
            frames += 1
    if frames == 0:
        raise InputError("no frames to compare")
    return {"pixel_agreement": equal / total, "miou_vs_reference": mean_iou(cm), "iou": per_class_iou(cm),
            "frames": frames, "ms_per_frame_a": 1e3 * time_a / frames, "ms_per_frame_b": 1e3 * time_b / frames}


def label_agreement(reference_onnx: str | Path, candidate_onnx: str | Path, frames: np.ndarray) -> float:
    """Fraction of pixels where ``candidate`` predicts the same label as ``reference`` on ``frames`` (network-size
    camera frames, e.g. calibration frames), both run by ONNX Runtime on the CPU. Batch-N models run N frames per
    run, a last partial run padded with rows that are not compared."""
    ref = create_backend(BackendKind.ONNXRUNTIME, reference_onnx, providers=["CPUExecutionProvider"])
    cand = create_backend(BackendKind.ONNXRUNTIME, candidate_onnx, providers=["CPUExecutionProvider"])
    same = total = 0
    try:
        for a, b in zip(_run_labels(ref, list(frames)), _run_labels(cand, list(frames))):
            same += int(np.count_nonzero(a == b))
            total += a.size
    finally:
        ref.close()
        cand.close()
    return same / max(total, 1)


# ------------------------------------------------------------------------------------ precision-variant table
@dataclass
class VariantRow:
    variant: str
    path: Path
    result: EvalResult | None = None
    error: str | None = None  # why it was skipped (missing file, backend unavailable)


def evaluate_variants(directory: str | Path, model: str, height: int, width: int, variants: Sequence[Precision],
                      split: Sequence[Any], limit: int | None = None,
                      backend: BackendKind = BackendKind.ONNXRUNTIME, suffix: str = ".onnx", progress: bool = True,
                      reference: Precision = Precision.FP32, **options: Any) -> list[VariantRow]:
    """Evaluate each precision variant ``<model>_<H>x<W>_<variant><suffix>`` in ``directory`` on ``split``, with
    agreement against ``reference`` (evaluated first). Missing or unloadable files become rows with ``error``."""
    order = sorted(variants, key=lambda v: v != reference)  # reference first, others in the given order
    rows = {v: VariantRow(v, artifact_path(directory, model, height, width, v, suffix)) for v in order}
    ref_predictions: list[np.ndarray] | None = None
    for variant in order:
        row = rows[variant]
        if not row.path.is_file():
            row.error = f"missing: {row.path}"
            continue
        try:
            be = open_model_file(row.path, backend, **options)
        except BackendError as exc:
            row.error = str(exc)
            continue
        try:
            is_ref = variant == reference
            row.result = evaluate_backend(be, split, limit, progress, reference=None if is_ref else ref_predictions,
                                          keep_predictions=is_ref, desc=variant)
            if is_ref:
                ref_predictions, row.result.predictions = row.result.predictions, None
        finally:
            be.close()
    return [rows[v] for v in variants]


def _pct(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{100.0 * value:.2f}"


def variants_markdown(rows: Sequence[VariantRow], dataset: str, reference: str = "fp32", backend: str = "onnxruntime",
                      notes: Sequence[str] = ()) -> str:
    """Markdown table: mIoU, pixel accuracy, agreement with the reference variant, ms/frame; footnotes below."""
    lines = [f"| variant | mIoU % | pixel acc. % | label agreement vs {reference.upper()} % | "
             f"mIoU vs {reference.upper()} % | ms/frame |", "|---|---:|---:|---:|---:|---:|"]
    resized = False
    frames = 0
    for row in rows:
        r = row.result
        if r is None:
            lines.append(f"| {row.variant} | — | — | — | — | — |")
            continue
        frames = max(frames, r.frames)
        resized = resized or r.resized_frames > 0
        if row.variant == reference:
            agree, agree_miou = "100.00 (reference)", "100.00"
        elif r.agreement is not None:
            agree, agree_miou = _pct(r.agreement["pixel_agreement"]), _pct(r.agreement["miou_vs_reference"])
        else:
            agree = agree_miou = "—"
        lines.append(f"| {row.variant} | {_pct(r.miou)} | {_pct(r.pixel_accuracy)} | {agree} | {agree_miou} | "
                     f"{r.ms_per_frame:.1f} |")
    import os
    import platform

    foot = [f"Scores on {dataset}, {frames} frames, scored at label resolution against ground truth "
            f"(every target >= num_classes ignored). Agreement: fraction of pixels with the same label as "
            f"{reference.upper()}, and mIoU taking {reference.upper()}'s labels as ground truth.",
            f"ms/frame: mean wall time of one `infer` call (the backend's pre- and post-processing included, resizing "
            f"for scoring excluded), {backend} "
            f"backend, one process, on {platform.machine()} with {os.cpu_count()} CPUs ({platform.processor() or 'cpu'}); "
            "compare rows only with each other."]
    if resized:
        foot.append("Frames whose size differs from the model input were resized (bilinear) to the model size and "
                    "the predicted labels resized back (nearest) to the label size before scoring.")
    for row in rows:
        if row.error:
            foot.append(f"{row.variant}: not evaluated ({row.error}).")
    foot.extend(notes)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {f}" for f in foot) + "\n"
