"""The node's own start-up path (``node.load_backend``) with backend tensorrt, on a machine without TensorRT:
the precision asked for reaches the TensorRT backend, and an engine whose sidecar does not match is refused with
the sidecar's reason before TensorRT is needed. Without rclpy, so it also runs on the Python 3.8 leg.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from trt_segmentation.engine.metadata import EngineMetadata, write_metadata
from trt_segmentation.node.params import params_from_dict
from trt_segmentation.node.startup import StartupError, load_backend
from trt_segmentation.onnx_metadata import ModelContract

H, W = 256, 512
CONTRACT = ModelContract(model="swiftnet_ss_rn18", num_classes=19, height=H, width=W, input_format="uint8_rgb",
                         output="labels_uint8", input_name="image", output_name="labels",
                         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _engine(directory: Path, file_precision: str, built_precision: str, builder: str = "tensorrt") -> Path:
    engine = directory / f"swiftnet_ss_rn18_{H}x{W}_{file_precision}.engine"
    engine.write_bytes(b"plan")
    write_metadata(engine, EngineMetadata(
        model="swiftnet_ss_rn18", height=H, width=W, precision=built_precision, tensorrt_version="8.5.2",
        builder=builder, typing="weak", gpu_name="Xavier", compute_capability="7.2", onnx_sha256="0" * 64,
        contract=json.loads(CONTRACT.to_json())))
    return engine


def _start(directory: Path, precision: str) -> str:
    params = params_from_dict({"backend": "tensorrt", "precision": precision, "engine_dir": str(directory),
                               "engine_height": H, "engine_width": W, "build_engine_if_missing": False})
    with pytest.raises(StartupError) as info:
        load_backend(params, logging.getLogger("test"))
    return str(info.value)


def test_a_mismatching_engine_is_refused_through_the_nodes_start_up(tmp_path: Path) -> None:
    _engine(tmp_path, "int8", "fp16")  # an fp16 engine saved under the int8 name
    text = _start(tmp_path, "int8")
    assert "engine precision is fp16, int8 was asked for" in text and "tools/build_on_target.py" in text, text
    _engine(tmp_path, "fp16", "fp16", builder="tensorrt-rtx")
    assert "built by tensorrt-rtx" in _start(tmp_path, "fp16")


def test_a_matching_engine_gets_as_far_as_needing_tensorrt(tmp_path: Path) -> None:
    _engine(tmp_path, "int8", "int8")
    text = _start(tmp_path, "int8")
    assert "TensorRT is not installed" in text or "only type stubs" in text, text
