"""int8-kl2048: TensorRT's 2048-bin entropy calibration (precision/kl2048.py) against a reference implementation.

The reference below is a straightforward transcription of the published pseudocode (GTC 2017, "8-bit Inference
with TensorRT"), written independently of the module's vectorised code: plain Python lists and loops, one
explicit quantize-into-128-levels and one expand step per candidate. Both run on recorded histograms
(test/data/kl2048_histograms.npz: |x| of four activations of the demo checkpoint, 4 generated scenes at 128x256,
recorded with collect_abs_histograms) and on seeded synthetic ones; thresholds must agree to 1e-6.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from trt_segmentation.artifacts import CalibrationMethod, Precision
from trt_segmentation.precision.kl2048 import SMOOTHING, kl_divergence_curve, kl_threshold

RECORDED = Path(__file__).resolve().parent / "data" / "kl2048_histograms.npz"


def reference_threshold(bins: list[int], max_abs: float, levels: int = 128) -> float:
    """The published pseudocode, line by line."""
    n = len(bins)
    best_i, best_kl = None, math.inf
    for i in range(levels, n):
        reference = [float(b) for b in bins[:i]]
        reference[i - 1] += float(sum(bins[i:]))  # outliers folded into the last bin
        # quantize bins[0..i-1] (without the outliers) into `levels` groups; the last group takes the remainder
        size = i // levels
        candidate = [0.0] * i
        for level in range(levels):
            start = level * size
            stop = i if level == levels - 1 else start + size
            mass = float(sum(bins[start:stop]))
            used = [j for j in range(start, stop) if reference[j] != 0]
            for j in used:  # expand: the level's mass spread over the bins that are non-zero in P
                candidate[j] = mass / len(used)
        total_p, total_q = sum(reference), sum(candidate)
        if total_p == 0 or total_q == 0:
            continue
        pairs = [(p / total_p, q / total_q) for p, q in zip(reference, candidate) if p != 0]
        empty = sum(1 for _, q in pairs if q == 0)
        if empty:  # smoothing: empty Q bins get SMOOTHING, taken evenly from the others
            take = SMOOTHING * empty / (len(pairs) - empty)
            pairs = [(p, SMOOTHING if q == 0 else q - take) for p, q in pairs]
            if any(q <= 0 for _, q in pairs):
                continue
        kl = sum(p * math.log(p / q) for p, q in pairs)
        if kl < best_kl:
            best_i, best_kl = i, kl
    if best_i is None:
        return max_abs
    return (best_i + 0.5) * (max_abs / n)


def _histograms() -> list[tuple[str, np.ndarray, float]]:
    data = np.load(RECORDED)
    out = [(str(name), hist, float(amax)) for name, hist, amax in zip(data["names"], data["hist"], data["amax"])]
    rng = np.random.default_rng(17)
    for label, sample in (("gaussian", np.abs(rng.normal(0, 1, 200_000))),
                          ("laplace+outliers", np.concatenate([np.abs(rng.laplace(0, 0.3, 200_000)), [40.0, 55.0]])),
                          ("relu-sparse", np.maximum(rng.normal(-1, 1, 100_000), 0))):
        hist, _ = np.histogram(sample, bins=2048, range=(0.0, float(sample.max())))
        out.append((label, hist, float(sample.max())))
    return out


@pytest.mark.parametrize("name,hist,amax", _histograms(), ids=[h[0] for h in _histograms()])
def test_thresholds_match_the_reference(name: str, hist: np.ndarray, amax: float) -> None:
    ours = kl_threshold(hist, amax)
    reference = reference_threshold([int(b) for b in hist], amax)
    assert ours == pytest.approx(reference, rel=1e-6, abs=1e-9), name
    assert 0 < ours <= amax * (1 + 1 / 2048)


def test_divergence_curve_starts_at_128_and_clips_a_long_tail() -> None:
    rng = np.random.default_rng(0)
    sample = np.concatenate([np.abs(rng.normal(0, 1, 100_000)), [100.0]])  # one outlier 25x beyond the bulk
    hist, _ = np.histogram(sample, bins=2048, range=(0.0, 100.0))
    curve = kl_divergence_curve(hist)
    assert np.all(np.isinf(curve[:128])) and np.isfinite(curve[128:]).any()
    assert kl_threshold(hist, 100.0) < 10.0  # the outlier is clipped, the bulk kept


def test_degenerate_histograms_keep_the_maximum() -> None:
    assert kl_threshold(np.zeros(2048, dtype=np.int64), 3.0) == 3.0
    assert kl_threshold(np.ones(2048, dtype=np.int64), 0.0) == 0.0


def test_the_method_has_a_precision_name() -> None:
    assert Precision.parse("int8-kl2048").calibration is CalibrationMethod.KL2048
    assert Precision.INT8_KL2048.tensorrt and not Precision.INT8_KL2048.implicit_ok
