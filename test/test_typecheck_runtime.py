"""mypy --strict of the runtime (the TensorRT adapter against the tensorrt-stubs package) and of the node.

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

ROOT = Path(__file__).resolve().parents[1]
# the vehicle side: every runtime module, the node and the modules it is wired from
FILES = sorted(str(p.relative_to(ROOT)) for folder in ("runtime", "node")
               for p in (ROOT / "trt_segmentation" / folder).rglob("*.py")) + [
    f"trt_segmentation/{name}.py" for name in ("cuda_driver", "image_codec", "image_cdr", "onnx_metadata",
                                               "artifacts", "errors", "build_request")]
CONFIG = """[mypy]
strict = True
follow_imports = silent
cache_dir = {cache}
[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs]
ignore_errors = True
# no type information published: rclpy's message packages and ONNX Runtime
[mypy-sensor_msgs.*,diagnostic_msgs.*,std_msgs.*,rcl_interfaces.*,builtin_interfaces.*,onnxruntime.*]
ignore_missing_imports = True
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
