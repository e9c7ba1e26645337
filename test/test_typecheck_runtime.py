"""mypy --strict of the TensorRT adapter (tensorrt_backend.py, cuda_slots.py) against the tensorrt-stubs package.

TensorRT cannot run here, so the type check is what keeps the thin adapter honest about the TensorRT API
(name-based I/O, execute_async_v3, Dims, DataType). The stubs live in .venv/typecheck-stubs (scripts/setup_venv.sh),
never in site-packages. tensorrt-stubs 10.13.0.35.1 is machine-generated and not valid Python in a few places
(a parameter named ``in``, parameters without defaults after defaulted ones, an import of ``tensorrt_libs``);
test/tensorrt_stubs.py fixes exactly those in a temporary copy. pycuda has no stubs: its import is marked for mypy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tensorrt_stubs import repaired_stubs, run_mypy

FILES = ["trt_segmentation/runtime/tensorrt_backend.py", "trt_segmentation/runtime/cuda_slots.py",
         "trt_segmentation/cuda_driver.py"]
CONFIG = """[mypy]
strict = True
follow_imports = silent
cache_dir = {cache}
[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs]
ignore_errors = True
"""


def check(tmp_path: Path, files: list[str]) -> subprocess.CompletedProcess[str]:
    return run_mypy(repaired_stubs(tmp_path / "stubs"), CONFIG, files, tmp_path)


def test_tensorrt_adapter_type_checks_strictly(tmp_path) -> None:
    result = check(tmp_path, FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Success: no issues found in {len(FILES)} source files" in result.stdout


def test_the_stubs_are_really_consulted(tmp_path) -> None:
    """A misuse of the TensorRT API must fail the check (guards against everything silently being Any)."""
    bad = tmp_path / "bad_use.py"
    bad.write_text(
        "import tensorrt as trt\n\n\n"
        "def run(context: trt.IExecutionContext) -> None:\n"
        "    context.execute_async_v3('not a stream handle')\n"
        "    context.set_tensor_address(0, 1)\n"
    )
    result = check(tmp_path, [str(bad)])
    assert result.returncode == 1
    assert 'Argument 1 to "execute_async_v3"' in result.stdout
    assert 'Argument 1 to "set_tensor_address"' in result.stdout
