"""Which modules of a SwiftNet are its encoder, and the ONNX-node / TensorRT-layer patterns that follow from it.

Pure Python, no dependencies (a foundation module): the models declare their encoder with :data:`ENCODER_MODULES`
(``SwiftNet.encoder_modules``), precision/mixed.py quantizes the nodes :func:`onnx_node_pattern` matches, and the
TensorRT builder (which runs on a Jetson without torch) keeps the layers :func:`tensorrt_layer_pattern` matches in
INT8. The names are those the legacy ONNX exporter gives a module's nodes:

- single-scale: ``/backbone/layer3/layer3.1/conv2/Conv`` (blocks called through their stage);
- pyramid: ``/backbone/layer3.1/conv2_1/Conv`` (blocks called one by one, once per pyramid level; the exporter
  suffixes the second and third call ``_1``, ``_2``), ``/backbone/conv1_2/Conv``, ``/backbone/maxpool_1/MaxPool``.

Both exports may sit under ``/model`` (the export wrapper), and TensorRT names layers after the ONNX nodes.
"""

from __future__ import annotations

import re
from typing import Sequence, Tuple

#: the encoder's modules, as attribute names on the backbone (stem conv, stem BN(s), ReLU, max-pool, layer1..4)
ENCODER_MODULES: Tuple[str, ...] = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def scope_pattern(modules: Sequence[str] = ENCODER_MODULES) -> str:
    """Regex for the scope prefix of ``modules``' nodes: ``/backbone/<module>`` plus the exporter's call or child
    suffix (``.1``, ``_2``, ``.0_1``), ending before the next ``/``."""
    alternatives = "|".join(re.escape(m) for m in modules)
    return rf"(/model)?/backbone/({alternatives})([._][0-9][0-9._]*)?"


def onnx_node_pattern(modules: Sequence[str] = ENCODER_MODULES) -> str:
    """Full-match regex over ONNX node names inside ``modules``."""
    return scope_pattern(modules) + "/.*"


def tensorrt_layer_pattern(modules: Sequence[str] = ENCODER_MODULES) -> str:
    """Regex (searched from the start) over TensorRT layer names inside ``modules``."""
    return scope_pattern(modules) + "(/|$)"
