"""trt_seg_build_engine on a machine without torch (issue 32, item 2): fp16 from an FP32 ONNX goes on to TensorRT
(the implicit FP16 build from the FP32 ONNX, no FP16 variant); int8 is one line naming the build machine's command,
exit code 2. Runs the command in a subprocess whose imports of torch and ModelOpt raise, so it means the same on
every leg (the Python 3.8 leg has no torch at all). Without TensorRT the pipeline asks for it (``--builder
tensorrt``) and says it is not installed; with the recording TensorRT stand-in (test/trt_standin, as
test/vehicle_standin.py puts it on the path) the fp16 build reaches it: an implicit engine built with the FP16 flag,
and a TensorRT >= 11 (strongly typed only) refuses in one line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import onnx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import tiny_model  # noqa: E402
from vehicle_standin import run_standin  # noqa: E402

FP32 = "swiftnet_ss_rn18_32x64_fp32.onnx"
NO_TORCH = """import importlib.abc, runpy, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'torchvision', 'modelopt'):
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, NoTorch())
sys.argv = ['tools/build_engine.py'] + sys.argv[1:]
runpy.run_path('tools/build_engine.py', run_name='__main__')
"""


def _build_engine(tmp_path: Path, *args: str, standin: str = "",
                  model: str = "swiftnet_ss_rn18") -> "subprocess.CompletedProcess[str]":
    """tools/build_engine.py with torch blocked, on ``model``'s FP32 ONNX (32x64); ``standin``: the TensorRT
    stand-in's version on the path."""
    fp32 = tmp_path / f"{model}_32x64_fp32.onnx"
    onnx.save(tiny_model(32, 64, model=model), str(fp32))
    argv: List[str] = ["--onnx", str(fp32), "--out", str(tmp_path / "out"), *args]
    if standin:
        return run_standin(["-X", "importtime", "-c", NO_TORCH, *argv], version=standin)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-X", "importtime", "-c", NO_TORCH, *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _imported(stderr: str) -> set:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_fp32_and_fp16_from_an_fp32_onnx_go_on_to_tensorrt_without_torch(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "fp32", "fp16", "--builder", "tensorrt")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr  # engines asked for explicitly, and no TensorRT here
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "[1/2] fp32" in out and "[2/2] fp16" in out, out
    assert "TensorRT builds fp16 from the FP32 ONNX with its FP16 flag" in out, out
    assert "No .engine written: real TensorRT is not installed here" in out, out
    assert "build_on_target" in out and "--precision fp32 fp16" in out, out  # what to run where TensorRT is
    assert (tmp_path / "out" / FP32).is_file()  # the folder the target builds from holds the FP32 ONNX
    assert not {m for m in _imported(proc.stderr) if m.split(".")[0] in ("torch", "modelopt")}


def test_fp16_without_torch_reaches_tensorrt_as_an_implicit_fp16_build(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "fp16", "--builder", "tensorrt", standin="8.5.2")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert not {m for m in _imported(proc.stderr) if m.split(".")[0] in ("torch", "modelopt")}
    engine = tmp_path / "out" / "swiftnet_ss_rn18_32x64_fp16.engine"
    record = json.loads(engine.read_bytes())  # what the stand-in's builder was given
    assert record["standin"] == "8.5.2" and not record["strongly_typed"], record
    assert record["flags"] == ["FP16"], record["flags"]  # the FP16 builder flag, and no INT8
    assert "HALF" in {layer["precision"] for layer in record["layers"]}, record["layers"]
    meta = json.loads(engine.with_suffix(".json").read_text())
    assert meta["typing"] == "implicit" and meta["precision"] == "fp16", meta
    assert meta["onnx_sha256"] == hashlib.sha256((tmp_path / FP32).read_bytes()).hexdigest()  # from the FP32 ONNX
    assert not (tmp_path / "out" / "swiftnet_ss_rn18_32x64_fp16.onnx").exists()  # no FP16 variant was made


def test_fp16_without_torch_on_tensorrt_11_is_one_line(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "fp16", "--builder", "tensorrt", standin="11.0.0")
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout + "\n".join(lines)
    line = lines[0]
    assert line.startswith("error: tensorrt 11.0.0 builds strongly typed networks only: fp16 needs its FP16 "
                           "variant, made where torch is installed"), line
    assert "build_engine" in line and f"--onnx {tmp_path / FP32} --precision fp16" in line, line
    assert not list((tmp_path / "out").glob("*.engine"))


def test_int8_without_torch_is_one_line_naming_the_build_machine_command(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "int8")
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and proc.stdout == "", proc.stdout + "\n".join(lines)
    line = lines[0]
    assert line.startswith("error: int8 needs the build machine's variant tools (torch, ModelOpt)"), line
    assert "build_engine" in line and f"--onnx {tmp_path / FP32} --precision int8 --calibration" in line, line
    assert "build_on_target" in line and f"--engine-dir {tmp_path / 'out'}" in line, line


def test_the_build_machine_line_names_the_model_and_the_dla_core(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "int8", "--dla-core", "0", model="swiftnet_pyr_rn18")
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout + "\n".join(lines)
    # the on-target command as the target runs it: a pyr model (not the default), on DLA core 0 (.dla0 engines)
    assert (f"build_on_target.py --engine-dir {tmp_path / 'out'} --model swiftnet_pyr_rn18 --size 32x64 "
            "--precision int8 --dla-core 0`") in lines[0], lines[0]


def test_an_fp16_onnx_variant_alone_without_torch_is_one_line(tmp_path: Path) -> None:
    proc = _build_engine(tmp_path, "--precision", "fp16", "--builder", "none")  # variants only: fp16 is made by ModelOpt
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert proc.returncode == 2 and proc.stdout == "" and len(lines) == 1, proc.stdout + "\n".join(lines)
    assert lines[0].startswith("error: fp16 needs the build machine's variant tools"), lines[0]
