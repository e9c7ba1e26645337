"""scripts/vehicle_modules.py, the list of files the Python 3.8 leg gives vermin (issue 32, item 11): the computed
import closure of the node and the vehicle commands, function-local imports included, build-machine modules out."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "vehicle_modules.py"


def _script():  # noqa: ANN202 - the module object of the script
    spec = importlib.util.spec_from_file_location("vehicle_modules", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_package(root: Path, sources: Dict[str, str]) -> Path:
    """A made-up ``trt_segmentation`` package under ``root``: file name (with sub-folders) -> source."""
    pkg = root / "trt_segmentation"
    for name, text in sources.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_the_closure_holds_what_the_vehicle_imports_and_nothing_of_the_build_machine() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    files = set(out.split())
    package = "trt_segmentation/"
    # the modules the hand-written list missed (issue 32), reached from the commands and the node
    missed = {"build_request.py", "errors.py", "encoder_scope.py", "precision/__init__.py",
              "precision/calibration_data.py", "precision/variants.py", "precision/mixed.py"}
    assert {package + m for m in missed} <= files
    node = {package + p.relative_to(REPO / package).as_posix() for p in (REPO / package / "node").rglob("*.py")}
    assert node <= files  # every module of the node (its processes start from several)
    # function-local imports count: build_engine imports the pipeline inside main()
    assert {package + "commands/build_engine.py", package + "apps/build.py", package + "engine/on_target.py"} <= files
    # a module that imports torch at its top (or through its package) never runs on the vehicle
    assert not {f for f in files if f.startswith(package + "models/")} and package + "export.py" not in files
    assert all((REPO / f).is_file() for f in files)


def test_a_module_reaching_torch_at_import_is_left_out_with_what_only_it_imports(tmp_path: Path) -> None:
    pkg = fake_package(tmp_path, {
        "__init__.py": "",
        "entry.py": "from . import keeps, plain\n\ndef build():\n    from .sub import lazy\n    from . import heavy\n",
        "plain.py": "import json\n",
        "keeps.py": "def f():\n    import torch\n",
        "sub/__init__.py": "",
        "sub/lazy.py": "from ..torchy import X\n\ndef f():\n    import torch\n",
        "torchy.py": "import torch\nX = 1\n",
        "heavy.py": "from .sub.lazy import f\nfrom . import only_heavy\n",
        "only_heavy.py": "",
    })
    found = _script().closure(["trt_segmentation.entry"], tmp_path)
    names = sorted(p.relative_to(pkg).as_posix() for p in found)
    # lazy imports torchy (torch at its top) at its top: lazy and heavy (which imports lazy at its top) are out,
    # and so is what only heavy imports; a function-local `import torch` alone keeps nothing out
    assert names == ["__init__.py", "entry.py", "keeps.py", "plain.py", "sub/__init__.py"]


def test_an_entry_point_that_needs_the_build_machine_fails_loudly(tmp_path: Path) -> None:
    pkg = fake_package(tmp_path, {
        "__init__.py": "",
        "node/__init__.py": "",
        "node/fine.py": "import json\n",
        "node/heavy.py": "from ..torchy import X\n",  # torch at import through torchy's top level
        "torchy.py": "import torch\nX = 1\n",
    })
    script = _script()
    assert sorted(p.relative_to(pkg).as_posix() for p in script.closure(["trt_segmentation.node.fine"], tmp_path)) \
        == ["__init__.py", "node/__init__.py", "node/fine.py"]
    for entry in ("trt_segmentation.node", "trt_segmentation.node.heavy"):  # a package entry: each of its modules
        with pytest.raises(SystemExit) as failed:
            script.closure([entry], tmp_path)
        assert str(failed.value).startswith("error: the vehicle entry point trt_segmentation.node.heavy imports a "
                                            "build-machine package"), failed.value
        assert "cannot run on the vehicle" in str(failed.value)
