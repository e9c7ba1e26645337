"""tools/check_on_target.py here (no TensorRT): runs the ONNX Runtime reference and the TensorRT-RTX parse check,
then says exactly that TensorRT is needed (exit code 2); a missing precision names the command that makes it.
It imports neither torch nor onnx (it must run on a Jetson without them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from node_harness import REPO, small_model_dir


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory, random_model_factory):
    return small_model_dir(tmp_path_factory, random_model_factory, "target_models")


def test_runs_up_to_tensorrt_and_says_so(engine_dir) -> None:
    tool = REPO / "tools" / "check_on_target.py"
    result = subprocess.run(
        [sys.executable, "-c",
         "import runpy, sys; sys.argv = sys.argv[1:]; code = 0\n"
         "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
         "except SystemExit as exc:\n    code = exc.code\n"
         "heavy = sorted({'torch', 'onnx', 'modelopt', 'rclpy'} & set(sys.modules))\n"
         "print('HEAVY', heavy); sys.exit(code)",
         str(tool), "--engine-dir", str(engine_dir), "--size", "256x512", "--precisions", "fp32", "int8",
         "--images", "2"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    out = result.stdout
    assert result.returncode == 2, out + result.stderr
    assert "tensorrt missing" in out
    assert "fp32      | NEEDS-TENSORRT" in out
    assert "ONNX Runtime reference ran" in out and "TensorRT-RTX parse+build here: ok" in out
    assert "int8      | MISSING" in out and "--precision int8" in out
    assert "Stopped where TensorRT is needed" in out and "result: INCOMPLETE" in out
    assert "HEAVY []" in out


def test_help_explains_the_tool() -> None:
    result = subprocess.run([sys.executable, str(REPO / "tools" / "check_on_target.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "pass/fail table" in result.stdout and "--precisions" in result.stdout
