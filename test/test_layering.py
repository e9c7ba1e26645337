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
                "trt_segmentation.runtime.target_check",
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
LAYERS = {"models": 0, "export": 1, "precision": 2, "engine": 3, "runtime": 4, "node": 5, "image_cdr": 5}
"""The pipeline's order. Modules not listed are either shared foundations (onnx_metadata, artifacts, hashing,
cuda_driver, image_codec, palette, cli, cpu_features, metrics, encoder_scope, errors, build_request: they import no layer) or stand above every layer
(evaluation, benchmarking, data, training; the test/demo harness lives outside the package: harness/)."""
FOUNDATIONS = ("onnx_metadata", "artifacts", "hashing", "cuda_driver", "image_codec", "palette", "cli",
               "cpu_features", "metrics", "encoder_scope", "errors", "build_request")


def _imports(path) -> list:  # noqa: ANN001
    """(line, absolute module) of every trt_segmentation import in ``path``, at module level or inside functions."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    parts = list(path.relative_to(root).with_suffix("").parts)
    package = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
            found += [(node.lineno, name)] + [(node.lineno, f"{name}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("trt_segmentation.")]


def _layer(module: str):  # noqa: ANN202
    head = module.split(".")[1]
    return LAYERS.get(head, -1 if head in FOUNDATIONS else None)


def test_no_layer_imports_a_later_one_not_even_lazily() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    problems = []
    for path in sorted((root / "trt_segmentation").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        own = _layer(module if not module.endswith("__init__") else module.rsplit(".", 1)[0] + ".x")
        if own is None:
            continue  # above every layer
        for line, name in _imports(path):
            target = _layer(name)
            if target is not None and target > own:
                problems.append(f"{path.relative_to(root)}:{line} (layer {own}) imports {name} (layer {target})")
    assert not problems, "\n".join(problems)
