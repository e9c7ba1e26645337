"""mypy --strict of the TensorRT adapter (tensorrt_backend.py, cuda_slots.py) against the tensorrt-stubs package.

TensorRT cannot run here, so the type check is what keeps the thin adapter honest about the TensorRT API
(name-based I/O, execute_async_v3, Dims, DataType). The stubs live in .venv/typecheck-stubs (scripts/setup_venv.sh),
never in site-packages. tensorrt-stubs 10.13.0.35.1 is machine-generated and not valid Python in a few places
(a parameter named ``in``, parameters without defaults after defaulted ones, an import of ``tensorrt_libs``);
``repaired_stubs`` fixes exactly those in a temporary copy. pycuda has no stubs: its import is marked for mypy.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / ".venv" / "typecheck-stubs"
FILES = ["trt_segmentation/runtime/tensorrt_backend.py", "trt_segmentation/runtime/cuda_slots.py"]
CONFIG = """[mypy]
strict = True
follow_imports = silent
cache_dir = {cache}
[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs]
ignore_errors = True
"""


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def _repair_def(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*(?:->.*)?:\s*)$", line)
    if not match:
        return line
    params, seen_default = [], False
    for param in _split_top_level(match.group(2)):
        name = param.strip()
        if name.startswith("in:"):  # a keyword as a parameter name
            param = param.replace("in:", "in_:", 1)
        if "=" in name:
            seen_default = True
        elif seen_default and not name.startswith("*"):
            param += " = ..."
        params.append(param)
    return match.group(1) + ",".join(params) + match.group(3)


def repaired_stubs(destination: Path) -> Path:
    shutil.copytree(STUBS, destination)
    for stub in destination.rglob("*.pyi"):
        lines = stub.read_text().split("\n")
        stub.write_text("\n".join(_repair_def(line) for line in lines))
    (destination / "tensorrt_libs.pyi").write_text("")
    return destination


def run_mypy(tmp_path: Path, files: list[str]) -> subprocess.CompletedProcess:
    if not (STUBS / "tensorrt_bindings").is_dir():
        pytest.fail(f"tensorrt-stubs are missing from {STUBS}; run scripts/setup_venv.sh")
    stubs = repaired_stubs(tmp_path / "stubs")
    config = tmp_path / "mypy.ini"
    config.write_text(CONFIG.format(cache=tmp_path / "cache"))
    env = {"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(config), *files], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_tensorrt_adapter_type_checks_strictly(tmp_path) -> None:
    result = run_mypy(tmp_path, FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 2 source files" in result.stdout


def test_the_stubs_are_really_consulted(tmp_path) -> None:
    """A misuse of the TensorRT API must fail the check (guards against everything silently being Any)."""
    bad = tmp_path / "bad_use.py"
    bad.write_text(
        "import tensorrt as trt\n\n\n"
        "def run(context: trt.IExecutionContext) -> None:\n"
        "    context.execute_async_v3('not a stream handle')\n"
        "    context.set_tensor_address(0, 1)\n"
    )
    result = run_mypy(tmp_path, [str(bad)])
    assert result.returncode == 1
    assert 'Argument 1 to "execute_async_v3"' in result.stdout
    assert 'Argument 1 to "set_tensor_address"' in result.stdout
