"""What the node tests share besides the harness: the model size and name, and the folder behind the
``engine_dir`` fixture (declared in conftest.py, so every test module gets it without importing it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node_harness import small_model_dir

H, W = 256, 512
MODEL = "swiftnet_ss_rn18"


def module_models(request: Any, tmp_path_factory: Any, random_model_factory: Any) -> Path:
    """A folder of the requesting test module holding ``swiftnet_ss_rn18_256x512_fp32.onnx`` (random weights,
    seed 0; exported once per session)."""
    module = request.module.__name__.rpartition(".")[2]
    return small_model_dir(tmp_path_factory, random_model_factory, f"{module.removeprefix('test_')}_models", (H, W))
