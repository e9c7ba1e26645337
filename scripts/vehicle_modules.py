"""Print the files of the package that run on the vehicle, one per line: the import closure of the node and of
the three vehicle commands (build_on_target, check_on_target, build_engine), computed from the source with ast.

Every import is followed, the ones inside functions too (they run when that function does), and each module
brings the ``__init__.py`` of its packages. A module whose import imports a build-machine package (torch,
ModelOpt, ...: at its top, or through the top-level imports of the modules it imports) cannot be imported on the
vehicle at all: it is left out and its imports are not followed (e.g. export.py and models/, which build_engine
imports only for ``--checkpoint``); an entry point that does fails the script with a clear line. scripts/test_py38.sh gives this list to vermin.
Runs on Python 3.8; ``--why`` prints, for each file, the module that first imported it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional

PACKAGE = "trt_segmentation"
ROOT = Path(__file__).resolve().parents[1]
#: the entry points: every module of the node package (its processes start from several of them) and the commands
ENTRIES = (f"{PACKAGE}.node", f"{PACKAGE}.commands.build_on_target", f"{PACKAGE}.commands.check_on_target",
           f"{PACKAGE}.commands.build_engine")
#: packages of the build machine only: a module importing one of them at its top never runs on the vehicle
BUILD_MACHINE = ("torch", "torchvision", "modelopt", "onnxconverter_common", "onnxsim", "matplotlib")


def module_file(module: str, root: Path = ROOT) -> Optional[Path]:
    """The source file of a dotted module name of the package (its ``__init__.py`` for a package), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(module: str, path: Path) -> Iterator[tuple[str, bool]]:
    """(absolute module name, at the module's top level) of every import statement in ``path``; ``from X import
    name`` yields ``X.name`` as well, which counts where ``name`` is a submodule."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    top = set(map(id, tree.body))
    package = _package_of(module, path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            yield name, id(node) in top
            for alias in node.names:
                yield f"{name}.{alias.name}", id(node) in top


def _parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def needs_build_machine(module: str, root: Path = ROOT, _seen: Optional[Dict[str, bool]] = None) -> bool:
    """True when importing ``module`` imports a :data:`BUILD_MACHINE` package: through its own top-level imports,
    its packages' ``__init__.py`` or the top-level imports of the package modules they import, transitively."""
    seen = {} if _seen is None else _seen
    if module in seen:
        return seen[module]
    seen[module] = False  # an import cycle adds nothing
    path = module_file(module, root)
    if path is None:
        return False
    names = [name for name, top in imports(module, path) if top] + list(_parents(module))
    seen[module] = any(name.split(".")[0] in BUILD_MACHINE
                       or (name.split(".")[0] == PACKAGE and name != module
                           and needs_build_machine(name, root, seen)) for name in names)
    return seen[module]


def _module_name(package: str, folder: Path, path: Path) -> str:
    """The dotted name of ``path`` (a module or a subpackage's ``__init__.py``) under ``package`` in ``folder``."""
    parts = path.relative_to(folder).with_suffix("").parts
    return ".".join((package,) + (parts[:-1] if parts[-1] == "__init__" else parts))


def closure(entries: List[str], root: Path = ROOT) -> Dict[Path, str]:
    """{file: the module that first imported it ('' for an entry)} over the vehicle's imports from ``entries``
    (a package as an entry stands for each of its modules, its subpackages' included)."""
    start: List[tuple[str, str]] = []
    for entry in entries:
        path = module_file(entry, root)
        if path is None:
            raise SystemExit(f"error: no module {entry} under {root}")
        start.append((entry, ""))
        if path.name == "__init__.py":
            start += [(_module_name(entry, path.parent, p), "") for p in sorted(path.parent.rglob("*.py")) if p != path]
    found: Dict[Path, str] = {}
    seen: Dict[str, bool] = {}
    for module, _by in start:  # an entry point is the vehicle's by definition: never silently left out
        if needs_build_machine(module, root, seen):
            raise SystemExit(f"error: the vehicle entry point {module} imports a build-machine package "
                             f"({', '.join(BUILD_MACHINE)}) when it is imported, so it cannot run on the vehicle; "
                             "move that import into the function that needs it")
    todo = list(reversed(start))
    while todo:
        module, by = todo.pop()
        path = module_file(module, root)
        if path is None or path in found:
            continue
        if needs_build_machine(module, root, seen):
            continue  # cannot run on the vehicle: neither it nor what it imports is the vehicle's
        found[path] = by
        for parent in _parents(module):
            todo.append((parent, module))
        for name, _top in imports(module, path):
            if name.split(".")[0] == PACKAGE:
                todo.append((name, module))
    return found


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="vehicle_modules.py")
    p.add_argument("--why", action="store_true", help="also print the module that first imported each file")
    args = p.parse_args(argv)
    for path, by in sorted(closure(list(ENTRIES)).items()):
        rel = path.relative_to(ROOT).as_posix()
        print(f"{rel}\t{by or '(entry)'}" if args.why else rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
