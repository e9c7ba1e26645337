"""mypy over the whole package (issue 34): 0 errors with ``--ignore-missing-imports``, the bar every module keeps
(test_typecheck_runtime.py and test_typecheck_engine.py hold the runtime, node and engine to --strict)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_package_type_checks(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary", "--cache-dir",
         str(tmp_path / "cache"), "trt_segmentation"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
