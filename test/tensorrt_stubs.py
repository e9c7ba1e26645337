"""Type-check code against ``tensorrt-stubs`` 10.13 with mypy (shared by the engine and runtime type tests).

The stubs live in .venv/typecheck-stubs (scripts/setup_venv.sh), never in site-packages, where an empty
``tensorrt`` namespace would then import. They are machine-generated and not valid Python in a few places (a
parameter named ``in``, parameters without defaults after defaulted ones, an import of ``tensorrt_libs``), which
stops mypy before it checks anything: ``repaired_stubs`` fixes exactly those in a private copy. Errors inside the
stubs themselves are not ours and are silenced by the callers' mypy configuration.
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
    """A private, parseable copy of the stubs at ``destination``; fails the test if they are not installed."""
    if not (STUBS / "tensorrt_bindings").is_dir():
        pytest.fail(f"tensorrt-stubs are missing from {STUBS}; run scripts/setup_venv.sh")
    shutil.copytree(STUBS, destination)
    for stub in destination.rglob("*.pyi"):
        lines = stub.read_text().split("\n")
        stub.write_text("\n".join(_repair_def(line) for line in lines))
    (destination / "tensorrt_libs.pyi").write_text("")
    return destination


def run_mypy(stubs: Path, config: str, files: list[str], work: Path) -> subprocess.CompletedProcess[str]:
    """mypy with ``config`` (an ini text; ``{cache}`` is filled in) over ``files``, the stubs on MYPYPATH."""
    ini = work / "mypy.ini"
    ini.write_text(config.format(cache=work / "mypy-cache"))
    env = {"MYPYPATH": str(stubs), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ini), *files], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
