"""Later layers never need earlier layers' heavy dependencies: the node and the runtimes run on a Jetson
without torch, the onnx tools or ModelOpt, and the runtime never imports rclpy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "trt_segmentation" / "node"
HEAVY = ("torch", "onnx", "modelopt", "onnxconverter_common", "rclpy")
CASES = {
    "runtime": ["trt_segmentation.runtime", "trt_segmentation.runtime.onnxruntime_backend",
                "trt_segmentation.runtime.tensorrt_backend", "trt_segmentation.runtime.cuda_slots",
                "trt_segmentation.runtime.torch_model", "trt_segmentation.runtime.checkpoint_backend",
                "trt_segmentation.apps.target_check",
                "trt_segmentation.engine.metadata", "trt_segmentation.image_codec", "trt_segmentation.palette",
                "trt_segmentation.artifacts", "trt_segmentation.errors", "trt_segmentation.build_request",
                "trt_segmentation.cli"],
    "node": [".".join(("trt_segmentation", "node") + path.relative_to(NODE_DIR).with_suffix("").parts)
             for path in sorted(NODE_DIR.rglob("*.py"))] + ["trt_segmentation.image_cdr"],  # camera_io/ too
}


@pytest.mark.parametrize("layer", list(CASES))
def test_imports_stay_light(layer: str) -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CASES[layer]!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", f"{layer} imports {out.stdout.strip()}"


# ------------------------------------------------------------------------------------------------ import direction
LAYERS = {"models": 0, "data": 1, "export": 1, "precision": 2, "training": 2, "engine": 3, "runtime": 4,
          "node": 5, "image_cdr": 5, "apps": 6, "commands": 7}
"""The tower, bottom to top: foundations -> models -> data/export -> precision/training -> engine -> runtime -> node
-> apps (what composes the layers) -> commands (tools/ and harness/ sit above, outside the package). A unit (a
folder or a top-level module of the package) imports only units of its own floor or below."""
FOUNDATIONS = ("__init__", "onnx_metadata", "artifacts", "hashing", "cuda_driver", "image_codec", "palette", "cli",
               "cpu_features", "metrics", "encoder_scope", "network_parts", "errors", "build_request")
"""Shared modules below every layer (``__init__``: the package's ``__version__``); none imports a layer."""
ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, not ``...__init__``)."""
    found = {}
    for path in sorted((ROOT / "trt_segmentation").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, imported module of the package) for every import in ``path``, at module level or inside functions:
    ``from .x import y`` names the module ``x.y`` where that is one, else ``x``."""
    import ast

    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            name = ".".join(p for p in (base, node.module or "") if p)
            found += [(node.lineno, f"{name}.{a.name}" if f"{name}.{a.name}" in modules else name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("trt_segmentation.")]


def _unit(module: str) -> str:
    """The folder or top-level module ``module`` belongs to (``__init__`` for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floor(unit: str) -> int | None:
    return LAYERS.get(unit, -1 if unit in FOUNDATIONS else None)


def _edges() -> dict[tuple[str, str], list[str]]:
    """module -> imported module, each with the places it is imported (``path:line``)."""
    modules = _modules()
    edges: dict[tuple[str, str], list[str]] = {}
    for module, path in modules.items():
        for line, name in _imports(module, path, modules):
            target = next((".".join(name.split(".")[:i]) for i in range(name.count(".") + 1, 0, -1)
                           if ".".join(name.split(".")[:i]) in modules), None)
            if target not in (None, module):
                edges.setdefault((module, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return edges


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_unit_of_the_package_has_a_floor() -> None:
    units = {_unit(module) for module in _modules()}
    assert not [unit for unit in sorted(units) if _floor(unit) is None], "add it to LAYERS or FOUNDATIONS"


def test_no_unit_imports_a_higher_floor_not_even_lazily() -> None:
    problems = [f"{where[0]} ({_unit(a)}, floor {_floor(_unit(a))}) imports {b} (floor {_floor(_unit(b))})"
                for (a, b), where in sorted(_edges().items())
                if (_floor(_unit(a)) or 0) < (_floor(_unit(b)) or 0)]
    assert not problems, "\n".join(problems)


def test_no_import_circle_between_units_or_modules() -> None:
    """No circle among the folders / top-level modules, nor among the modules themselves (a package's
    ``__init__`` re-exporting its submodules is no circle: importing a submodule runs its package first anyway)."""
    edges = _edges()
    units: dict[str, set[str]] = {}
    modules: dict[str, set[str]] = {}
    for a, b in edges:
        if _unit(a) != _unit(b):
            units.setdefault(_unit(a), set()).add(_unit(b))
        if not a.startswith(b + "."):
            modules.setdefault(a, set()).add(b)
    circles = [" <-> ".join(c) for c in _cycles(units) + _cycles(modules)]
    assert not circles, "import circles: " + "; ".join(circles)
