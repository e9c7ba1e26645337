"""tools/benchmark.py times the precision variants it finds and prints ratios from the same run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trt_segmentation.artifacts import artifact_path
from trt_segmentation.export import ExportOptions, export_onnx

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_onnx_variants(tmp_path: Path, random_model_factory) -> None:  # noqa: ANN001
    export_onnx(random_model_factory(), artifact_path(tmp_path, "swiftnet_ss_rn18", 128, 256, "fp32", ".onnx"),
                ExportOptions(128, 256))
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--onnx-dir", str(tmp_path), "--size", "128x256",
         "--precisions", "fp32", "int8", "--repeats", "3", "--warmup", "1", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "| fp32 |" in run.stdout and "1.00x |" in run.stdout
    assert "skipping int8" in run.stderr


def test_benchmark_refuses_torch_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        return
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "--torch"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "CUDA" in run.stderr
