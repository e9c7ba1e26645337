"""--batch N on the command line: tools/export_onnx.py writes a static batch-N graph named _b<N>_, and
tools/build_engine.py makes its variants with the same name part; a batch that does not match the ONNX is a clear
error. (Random weights with a seeded init: torch's default init uses its global RNG.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trt_segmentation.onnx_metadata import read_contract_dict

REPO = Path(__file__).resolve().parents[1]
SEEDED = "import torch, runpy, sys; torch.manual_seed(0); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], " \
         "run_name='__main__')"


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SEEDED, str(REPO / "tools" / f"{tool}.py"), *args],
                          capture_output=True, text=True, timeout=600)


def test_export_and_build_with_a_batch(tmp_path: Path) -> None:
    export = run("export_onnx", "--random-weights", "--size", "64x128", "--batch", "2", "--out", str(tmp_path))
    assert export.returncode == 0, export.stderr
    fp32 = tmp_path / "swiftnet_ss_rn18_64x128_b2_fp32.onnx"
    assert f"wrote {fp32}" in export.stdout and "batch 2" in export.stdout
    contract = read_contract_dict(fp32)
    assert (contract["height"], contract["width"], contract["batch"]) == (64, 128, 2)

    build = run("build_engine", "--onnx", str(fp32), "--batch", "2", "--precision", "fp16", "--builder", "none",
                "--out", str(tmp_path))
    assert build.returncode == 0, build.stdout + build.stderr
    fp16 = tmp_path / "swiftnet_ss_rn18_64x128_b2_fp16.onnx"
    assert fp16.is_file() and read_contract_dict(fp16)["batch"] == 2

    wrong = run("build_engine", "--onnx", str(fp32), "--precision", "fp16", "--builder", "none", "--out",
                str(tmp_path / "other"))
    assert wrong.returncode == 2 and "batch 2, not 1" in wrong.stderr and "Traceback" not in wrong.stderr


def test_batch_must_be_a_positive_whole_number(tmp_path: Path) -> None:
    for bad in ("0", "two"):
        out = subprocess.run([sys.executable, str(REPO / "tools" / "export_onnx.py"), "--random-weights", "--batch",
                              bad, "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "argument --batch" in out.stderr, out.stderr
