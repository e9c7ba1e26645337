"""mypy of the TensorRT-facing engine code (implicit calibrator, adapter) against ``tensorrt-stubs`` 10.13.

The implicit INT8 path only runs on a Jetson; the type check keeps it honest about the TensorRT API here. A
deliberately wrong call proves the stubs are really in effect (see tensorrt_stubs.py for how they are prepared).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorrt_stubs import repaired_stubs, run_mypy

CHECKED = ["trt_segmentation/engine/implicit_calibrator.py", "trt_segmentation/engine/calibration_feeder.py",
           "trt_segmentation/engine/tensorrt_adapter.py", "trt_segmentation/engine/builder.py",
           "trt_segmentation/engine/calibrator_core.py", "trt_segmentation/engine/calibration_table.py",
           "trt_segmentation/engine/on_target.py"]
MYPY_INI = """[mypy]
python_version = 3.10
ignore_missing_imports = True
follow_imports = silent
cache_dir = {cache}
[mypy-tensorrt_bindings.*]
ignore_errors = True
[mypy-tensorrt.*]
ignore_errors = True
[mypy-tensorrt_libs]
ignore_errors = True
"""


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:  # noqa: ANN001
    return repaired_stubs(tmp_path_factory.mktemp("engine-stubs") / "stubs")


def test_engine_code_type_checks_against_tensorrt_stubs(stubs: Path, tmp_path: Path) -> None:
    proc = run_mypy(stubs, MYPY_INI, CHECKED, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_stubs_catch_a_misuse(stubs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_calibrator.py"
    bad.write_text(
        "import tensorrt as trt\n\n"
        "class C(trt.IInt8EntropyCalibrator2):\n"
        "    def get_batch(self, names: list[str]) -> str:\n"
        "        return 'no'\n\n"
        "def f(b: trt.Builder) -> None:\n"
        "    b.build_serialized_network(1)\n"
    )
    proc = run_mypy(stubs, MYPY_INI, [str(bad)], tmp_path)
    assert proc.returncode == 1
    assert "get_batch" in proc.stdout and "build_serialized_network" in proc.stdout, proc.stdout
