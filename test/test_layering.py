"""Later layers never need earlier layers' heavy dependencies: the node and the runtimes run on a Jetson
without torch, the onnx tools or ModelOpt, and the runtime never imports rclpy."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "onnx", "modelopt", "onnxconverter_common", "rclpy")
CASES = {
    "runtime": ["trt_segmentation.runtime", "trt_segmentation.runtime.onnxruntime_backend",
                "trt_segmentation.runtime.tensorrt_backend", "trt_segmentation.runtime.cuda_slots",
                "trt_segmentation.engine.metadata", "trt_segmentation.image_codec", "trt_segmentation.palette"],
    "node": ["trt_segmentation.node", "trt_segmentation.node_params", "trt_segmentation.diagnostics",
             "trt_segmentation.latency", "trt_segmentation.launch_emulation"],
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
