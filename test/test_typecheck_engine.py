"""mypy of the TensorRT-facing code (implicit calibrator, adapter) against ``tensorrt-stubs`` 10.13.

The stubs live in .venv/typecheck-stubs (scripts/setup_venv.sh), never in site-packages. Two of their lines are
not valid Python (a parameter named ``in``; a parameter without default after defaulted ones), which stops mypy
before it checks anything, so the test repairs a private copy of them first; errors inside the stubs themselves
are not ours and are silenced per module. A deliberately wrong call proves the stubs are really in effect.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUBS = REPO / ".venv" / "typecheck-stubs"
CHECKED = ["trt_segmentation/engine/implicit_calibrator.py", "trt_segmentation/engine/tensorrt_adapter.py"]
MYPY_INI = """[mypy]
python_version = 3.10
ignore_missing_imports = True
follow_imports = silent
[mypy-tensorrt_bindings.*]
ignore_errors = True
[mypy-tensorrt.*]
ignore_errors = True
"""


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def repair_stub_line(line: str) -> str:
    line = re.sub(r"([(,] *)in: ", r"\1in_: ", line)
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if not match:
        return line
    try:
        ast.parse(line.strip() + "\n    ...")
        return line
    except SyntaxError:
        pass
    fixed, seen_default = [], False
    for param in _split_params(match.group(2)):
        if "=" in param:
            seen_default = True
        elif seen_default and param.strip() and not param.strip().startswith("*"):
            param += " = ..."
        fixed.append(param)
    return match.group(1) + ",".join(fixed) + match.group(3)


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:  # noqa: ANN001
    if not (STUBS / "tensorrt_bindings" / "tensorrt.pyi").is_file():
        pytest.fail("tensorrt-stubs missing: run scripts/setup_venv.sh (installs them into .venv/typecheck-stubs)")
    out = tmp_path_factory.mktemp("stubs")
    shutil.copytree(STUBS, out, dirs_exist_ok=True)
    for pyi in out.rglob("*.pyi"):
        pyi.write_text("\n".join(repair_stub_line(line) for line in pyi.read_text().splitlines()) + "\n")
    (out / "mypy.ini").write_text(MYPY_INI)
    return out


def _mypy(stubs: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(stubs))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(stubs / "mypy.ini"), "--cache-dir", str(stubs / ".cache"), *files],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def test_engine_code_type_checks_against_tensorrt_stubs(stubs: Path) -> None:
    proc = _mypy(stubs, *CHECKED)
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
    proc = _mypy(stubs, str(bad))
    assert proc.returncode == 1
    assert "get_batch" in proc.stdout and "build_serialized_network" in proc.stdout, proc.stdout
