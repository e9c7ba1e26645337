"""Mixed precision (the seed thesis' table 5.1): the ResNet encoder in INT8, SPP, decoder and logits in FP16.

Which layers go where is a small YAML file (all keys optional; node names are the legacy exporter's scopes,
e.g. ``/backbone/layer3/layer3.1/conv2/Conv``, or ``/backbone/layer3.1/conv2_1/Conv`` for pyramid level 1;
patterns are Python regexes matched against the whole name)::

    int8:           # nodes to quantize; default: the encoder (stem conv, maxpool, layer1..layer4, every level)
      - '(/model)?/backbone/(conv1|bn1|relu|maxpool|layer1|layer2|layer3|layer4)([._][0-9][0-9._]*)?/.*'
    exclude_int8:   # of those, keep these out of INT8 (they run in FP16)
      - '/backbone/conv1/Conv'
    fp32:           # keep these in FP32 (the preprocessing in front of the network always is)
      - '/logits/conv/Conv'

The encoder is defined once, by the models (``SwiftNet.encoder_modules`` = encoder_scope.ENCODER_MODULES):
:data:`ENCODER_SCOPE`, :data:`ENCODER_PATTERN` (ONNX node names, the default ``int8`` entry) and
:data:`ENCODER_LAYERS` (TensorRT layer names, for the implicit path in engine/builder.py) derive from it, and config/mixed_precision.yaml spells the default out for users to copy
(test/test_mixed_config.py checks that it still equals :class:`MixedConfig`'s defaults).

Pure Python + PyYAML; the work is done by :mod:`.int8` and :mod:`.fp16`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..encoder_scope import ENCODER_MODULES, onnx_node_pattern, scope_pattern, tensorrt_layer_pattern
from ..errors import SegmentationError

#: the ResNet encoder's scope in exported names (stem conv, bn, relu, maxpool, layer1..4, every pyramid level)
ENCODER_SCOPE = scope_pattern(ENCODER_MODULES)
#: ONNX node names inside the encoder (full match), e.g. /backbone/layer3/layer3.1/conv2/Conv
ENCODER_PATTERN = onnx_node_pattern(ENCODER_MODULES)
#: TensorRT layer names of the encoder (TensorRT names layers after the ONNX nodes; searched, not full-matched)
ENCODER_LAYERS = tensorrt_layer_pattern(ENCODER_MODULES)
KEYS = ("int8", "exclude_int8", "fp32")


class MixedConfigError(ValueError, SegmentationError):
    """The mixed-precision override file is unreadable or names unknown keys/invalid patterns."""


@dataclass(frozen=True)
class MixedConfig:
    int8: list[str] = field(default_factory=lambda: [ENCODER_PATTERN])
    exclude_int8: list[str] = field(default_factory=list)
    fp32: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"int8": list(self.int8), "exclude_int8": list(self.exclude_int8), "fp32": list(self.fp32)}


def load_mixed_config(path: str | Path | None) -> MixedConfig:
    """Read the override YAML (``None``: the defaults)."""
    if path is None:
        return MixedConfig()
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MixedConfigError(f"cannot read mixed-precision config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise MixedConfigError(f"{path}: expected a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise MixedConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(KEYS)}")
    values: dict[str, list[str]] = {}
    for key in KEYS:
        if key not in data:
            continue
        items = data[key] or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise MixedConfigError(f"{path}: {key} must be a list of node-name patterns")
        for pattern in items:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise MixedConfigError(f"{path}: {key}: invalid pattern {pattern!r} ({exc})") from exc
        values[key] = items
    return MixedConfig(**values)


def check_patterns_match(config: MixedConfig, node_names: list[str]) -> list[str]:
    """Patterns that match no node: usually a typo, or a graph from another exporter (unscoped names)."""
    return [
        pattern
        for key in KEYS
        for pattern in getattr(config, key)
        if not any(re.fullmatch(pattern, name) for name in node_names)
    ]
