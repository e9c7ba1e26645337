"""The encoder of mixed precision is defined once, by the models (encoder_scope.ENCODER_MODULES, which
SwiftNet.encoder_modules returns): the ONNX node pattern and the TensorRT layer pattern derive from it, they match
both the single-scale and the pyramid export's names, and config/mixed_precision.yaml, the file users copy, spells
out the same default."""

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
    inside = ["/backbone/conv1/Conv", "/backbone/layer3/layer3.1/conv2/Conv", "/model/backbone/maxpool/MaxPool",
              # pyramid: blocks called per level, the second and third call suffixed _1, _2
              "/backbone/layer1.0/conv1/Conv", "/backbone/layer4.0/conv1_2/Conv", "/backbone/conv1_1/Conv",
              "/backbone/layer3.0/downsample/downsample.0_1/Conv", "/backbone/maxpool_2/MaxPool", "/backbone/relu_1/Relu"]
    outside = ["/backbone/spp/spp_bn/conv/Conv", "/backbone/upsample.0/blend_conv/conv/Conv", "/logits/conv/Conv",
               "/backbone/layer5/Conv", "/backbone/upsample_bottlenecks.3_2/Conv", "/backbone/Resize",
               "/backbone/upsample_blends.0/blend_conv/conv/Conv", "/backbone/conv10/Conv"]
    for name in inside:
        assert re.fullmatch(ENCODER_PATTERN, name) and re.search(f"^{ENCODER_LAYERS}", name), name
    for name in outside:
        assert not re.fullmatch(ENCODER_PATTERN, name) and not re.search(f"^{ENCODER_LAYERS}", name), name


def test_the_models_declare_the_encoder_the_patterns_come_from(random_model_factory) -> None:  # noqa: ANN001
    from torch import nn

    from trt_segmentation.encoder_scope import ENCODER_MODULES

    for variant in ("single_scale", "pyramid"):
        model = random_model_factory(variant, "resnet18", 0)
        assert model.encoder_modules == ENCODER_MODULES
        convs = [n for n, m in model.backbone.named_modules() if isinstance(m, nn.Conv2d)
                 and n.split(".")[0] in ENCODER_MODULES]
        assert model.encoder_conv_count() == len(convs) * (3 if variant == "pyramid" else 1) == \
            (60 if variant == "pyramid" else 20)
