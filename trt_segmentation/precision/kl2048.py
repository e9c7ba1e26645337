"""TensorRT's entropy calibration (2048-bin KL divergence), as an explicit-path method: ``int8-kl2048``.

The algorithm is NVIDIA's published one (S. Migacz, "8-bit Inference with TensorRT", GTC 2017), the one the
implicit path's IInt8EntropyCalibrator2 runs: a histogram of |x| with 2048 bins over [0, max |x|]; for each
candidate i in 128..2047 the reference distribution P is the first i bins with every outlier (bins i..2047)
folded into bin i-1; the candidate Q is those i bins (without the outliers) merged into 128 levels and expanded
back, each level's mass spread evenly over the bins that are non-zero in P; both are normalised and the i with the
smallest KL(P || Q) wins; threshold = (i + 0.5) * bin width, scale = threshold / 127.

**The zero bin is dropped before the search** (:func:`drop_zero_bin`). The 2017 pseudocode leaves this step out,
but NVIDIA's implementations have it: TensorRT's calibrator discards the first histogram bin once the histogram is
built (NVIDIA's MLPerf Inference write-up of its INT8 calibration), and NVIDIA's open entropy calibrators
(pytorch-quantization's and ModelOpt's ``_compute_amax_entropy``) replace it by its neighbour (``bins[0] =
bins[1]``). Without it the exact zeros of a ReLU output (half of all values in a typical SwiftNet tensor, up to
98 % in layer4) sit in bin 0, and merging that spike into wider levels adds about (zero share) x ln(bins per
level) to every wide candidate's divergence, a term unrelated to clipping: the search then stops at the narrowest
candidate and clips a quarter of the non-zero values (-34 to -38 mIoU on every model before the fix). This module
follows TensorRT's form (the bin is emptied); on the four SwiftNets both forms gave the same mIoU (issue 32).

The publication leaves one more case open: P's last bin holds the folded outliers while every original bin of Q's
last level is empty, so Q is 0 where P is not and the divergence is infinite for every wide candidate. Such Q bins
get probability :data:`SMOOTHING` (taken evenly from Q's non-zero bins), the smoothing the open implementations of
this algorithm use; without it a single far outlier would make the calibrator keep the full range.

Hand-written because no library computes it in a form this package can call: ModelOpt's and ONNX Runtime's ONNX
"entropy" calibrators use 128 bins (docs/accuracy.md), ModelOpt's 2048-bin search lives in its torch quantizer
(a per-bin Python loop over torch modules' histograms, and importing ModelOpt patches ONNX Runtime's calibrators
in the importing process: precision/int8.py), and TensorRT's own calibrator only runs inside a TensorRT build.
test_precision_kl2048.py checks the thresholds against ModelOpt's torch implementation. The histograms are
collected in two passes over the calibration frames with ONNX Runtime (pass 1: max |x| per tensor; pass 2: the
histogram over [0, max]), on its CUDA provider when installed. The Q/DQ placement is ModelOpt's (as for every int8
method), so ``int8``, ``int8-max``, ``int8-percentile`` and ``int8-kl2048`` differ in their scales only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration_data import model_runs, onnxruntime_providers

NUM_BINS = 2048
NUM_QUANTIZED_BINS = 128
SMOOTHING = 1e-4  # probability given to bins where Q is 0 but P is not (see the module docstring)


def kl_divergence_curve(hist: np.ndarray, num_quantized_bins: int = NUM_QUANTIZED_BINS) -> np.ndarray:
    """KL(P || Q) for every candidate bin count i (index i; ``inf`` below ``num_quantized_bins``) of ``hist`` as
    given: :func:`kl_threshold` drops its zero bin first."""
    hist = np.asarray(hist, dtype=np.float64)
    n = hist.size
    suffix = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # suffix[i] = sum(hist[i:])
    divergence = np.full(n, np.inf)
    for i in range(num_quantized_bins, n):
        p = hist[:i].copy()
        p[i - 1] += suffix[i]
        total_p = p.sum()
        if total_p <= 0:
            continue
        nonzero = p > 0
        # merge the i bins into num_quantized_bins groups of i // num_quantized_bins bins (the last takes the rest)
        per_group = i // num_quantized_bins
        starts = np.arange(num_quantized_bins) * per_group
        group_sum = np.add.reduceat(hist[:i], starts)
        group_nonzero = np.add.reduceat(nonzero.astype(np.float64), starts)
        group_of_bin = np.minimum(np.arange(i) // per_group, num_quantized_bins - 1)
        spread = np.divide(group_sum, group_nonzero, out=np.zeros_like(group_sum), where=group_nonzero > 0)
        q = np.where(nonzero, spread[group_of_bin], 0.0)
        total_q = q.sum()
        if total_q <= 0:
            continue
        pn = p[nonzero] / total_p
        qn = q[nonzero] / total_q
        empty = qn == 0
        if empty.any():
            qn = np.where(empty, SMOOTHING, qn - SMOOTHING * empty.sum() / (qn.size - empty.sum()))
            if np.any(qn <= 0):
                continue
        divergence[i] = float(np.sum(pn * np.log(pn / qn)))
    return divergence


def drop_zero_bin(hist: np.ndarray) -> np.ndarray:
    """A copy of ``hist`` with bin 0 (the exact zeros of a ReLU output, and values within one bin width of 0)
    emptied, as TensorRT's calibrator discards it before the search (see the module docstring)."""
    out = np.array(hist, copy=True)
    out[0] = 0
    return out


def kl_threshold(hist: np.ndarray, max_abs: float, num_quantized_bins: int = NUM_QUANTIZED_BINS) -> float:
    """The |x| threshold TensorRT's entropy calibration picks for ``hist`` (counts of |x| over [0, max_abs]):
    the zero bin dropped, then the smallest KL divergence over the candidates."""
    hist = drop_zero_bin(np.asarray(hist))
    if max_abs <= 0 or hist.sum() == 0:
        return float(max_abs)
    width = max_abs / hist.size
    divergence = kl_divergence_curve(hist, num_quantized_bins)
    if not np.isfinite(divergence).any():  # fewer non-zero bins than levels everywhere: nothing to clip
        return float(max_abs)
    best = int(np.argmin(divergence))  # the first minimum, as a strict '<' scan finds it
    return float((best + 0.5) * width)


def collect_abs_histograms(
    fp32_onnx: str | Path, tensors: Sequence[str], frames: np.ndarray, batch: int, bins: int = NUM_BINS,
    progress: bool = True,
) -> dict[str, tuple[np.ndarray, float]]:
    """{tensor: (counts of |x| in ``bins`` bins over [0, max |x|], max |x|)} over ``frames`` (two ONNX Runtime
    passes over the FP32 graph with the tensors as extra outputs)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(fp32_onnx))
    outputs = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in outputs:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.x64quantprecision", "1")  # the exact-kernel option (runtime/)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=onnxruntime_providers())
    input_name = session.get_inputs()[0].name
    names = list(tensors)

    def passes(desc: str) -> Any:
        runs = list(model_runs(frames, batch))
        if progress:
            from tqdm import tqdm

            return tqdm(runs, desc=desc, unit="run", leave=False)
        return runs

    amax = dict.fromkeys(names, 0.0)
    for run in passes("kl2048 calibration: ranges"):
        for name, value in zip(names, session.run(names, {input_name: run})):
            amax[name] = max(amax[name], float(np.max(np.abs(value))))
    hists = {name: np.zeros(bins, dtype=np.int64) for name in names}
    for run in passes("kl2048 calibration: histograms"):
        for name, value in zip(names, session.run(names, {input_name: run})):
            if amax[name] > 0:
                counts, _ = np.histogram(np.abs(value), bins=bins, range=(0.0, amax[name]))
                hists[name] += counts
    return {name: (hists[name], amax[name]) for name in names}


def kl2048_amax(fp32_onnx: str | Path, tensors: Sequence[str], frames: np.ndarray, batch: int,
                progress: bool = True) -> dict[str, float]:
    """{tensor: TensorRT entropy threshold} for ``tensors`` of ``fp32_onnx`` over ``frames``."""
    histograms = collect_abs_histograms(fp32_onnx, tensors, frames, batch, progress=progress)
    return {name: kl_threshold(hist, amax) for name, (hist, amax) in histograms.items()}
