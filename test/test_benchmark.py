"""tools/benchmark.py times the precision variants it finds and prints ratios from the same run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from trt_segmentation.artifacts import Precision, artifact_path
from trt_segmentation.export import ExportOptions, export_onnx
from trt_segmentation.precision import make_variant

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_onnx_variants(tmp_path: Path, random_model_factory) -> None:  # noqa: ANN001
    fp32 = artifact_path(tmp_path, "swiftnet_ss_rn18", 128, 256, "fp32", ".onnx")
    export_onnx(random_model_factory(), fp32, ExportOptions(128, 256))
    make_variant(fp32, Precision.FP16, artifact_path(tmp_path, "swiftnet_ss_rn18", 128, 256, "fp16", ".onnx"))
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--onnx-dir", str(tmp_path), "--size", "128x256",
         "--precision", "fp32", "int8", "fp16", "--repeats", "3", "--warmup", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "skipping int8" in run.stderr
    # rows in the order asked for, the missing one left out; no speed is asserted, only the table's arithmetic:
    # the ratio is the row's median over the first row's, fps is 1000 / median
    rows = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", run.stdout, re.M)
    assert [r[0] for r in rows] == ["fp32", "fp16"], run.stdout
    (_, base, _, _, _), (_, median, p95, fps, ratio) = rows
    assert float(ratio) == pytest.approx(float(median) / float(base), abs=0.006)
    assert float(fps) == pytest.approx(1000 / float(median), rel=0.01) and float(p95) >= float(median)


def test_benchmark_refuses_torch_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this PyTorch sees a CUDA GPU")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "--torch"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "CUDA" in run.stderr


def test_benchmark_parts_onnxruntime() -> None:
    """--parts onnxruntime: one table per model, the four parts, their sum and the whole frame, from one run."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--parts", "onnxruntime", "--model", "swiftnet_ss_rn18",
         "swiftnet_pyr_rn18", "--size", "128x256", "--repeats", "2", "--warmup", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    for model in ("swiftnet_ss_rn18", "swiftnet_pyr_rn18"):
        rows = dict(re.findall(rf"^\| {model} fp32 ([\w ]+) \| ([\d.]+) \|", run.stdout, re.M))
        assert list(rows) == ["encoder", "context", "upsampling", "resize_argmax", "whole frame"], run.stdout
    sums = [float(v) for v in re.findall(r"^\| sum of the parts \| ([\d.]+) \|", run.stdout, re.M)]
    assert len(sums) == 2


def test_benchmark_parts_refuses_a_size_the_pyramid_cannot_run() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "--parts", "onnxruntime", "--model",
                          "swiftnet_pyr_rn18", "--size", "97x193"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "pyramid SwiftNet cannot fuse" in run.stderr
