"""The encoder of mixed precision is defined once (precision/mixed.py): the ONNX node pattern and the TensorRT
layer pattern derive from it, and config/mixed_precision.yaml, the file users copy, spells out the same default."""

from __future__ import annotations

import re
from pathlib import Path

from trt_segmentation.precision.mixed import (
    ENCODER_LAYERS,
    ENCODER_PATTERN,
    ENCODER_SCOPE,
    MixedConfig,
    load_mixed_config,
)

REPO = Path(__file__).resolve().parents[1]


def test_the_shipped_yaml_is_the_default() -> None:
    config = load_mixed_config(REPO / "config" / "mixed_precision.yaml")
    assert config == MixedConfig() and config.int8 == [ENCODER_PATTERN]


def test_node_and_layer_patterns_mean_the_same_encoder() -> None:
    assert ENCODER_PATTERN.startswith(ENCODER_SCOPE) and ENCODER_LAYERS.startswith(ENCODER_SCOPE)
    inside = ["/backbone/conv1/Conv", "/backbone/layer3/layer3.1/conv2/Conv", "/model/backbone/maxpool/MaxPool"]
    outside = ["/backbone/spp/spp_bn/conv/Conv", "/backbone/upsample.0/blend_conv/conv/Conv", "/logits/conv/Conv",
               "/backbone/layer5/Conv"]
    for name in inside:
        assert re.fullmatch(ENCODER_PATTERN, name) and re.search(f"^{ENCODER_LAYERS}", name), name
    for name in outside:
        assert not re.fullmatch(ENCODER_PATTERN, name) and not re.search(f"^{ENCODER_LAYERS}", name), name
