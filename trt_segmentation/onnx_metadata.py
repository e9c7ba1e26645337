"""The contract between an exported ONNX file and the runtimes: input format, output kind, normalisation.

Stored as JSON under one ``metadata_props`` key of the ONNX model, so a runtime without torch knows how to
feed the graph, and ``to_network_input``: how a uint8 camera frame becomes that input. Needs numpy, and the
``onnx`` package (or the raw protobuf through ONNX Runtime's metadata) to read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

METADATA_KEY = "trt_segmentation"

INPUT_FORMATS = ("uint8_rgb", "uint8_bgr", "float_normalised")
OUTPUT_KINDS = ("labels_uint8", "labels_int32", "logits")


@dataclass(frozen=True)
class ModelContract:
    """What the graph expects and returns. ``height``/``width`` are the static input size."""

    model: str
    num_classes: int
    height: int
    width: int
    input_format: str
    output: str
    input_name: str
    output_name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str = "fp32"
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def channel_order(self) -> str:
        """``rgb`` or ``bgr``: the order of the 3 channels the graph's uint8 input expects (float is RGB)."""
        return "bgr" if self.input_format == "uint8_bgr" else "rgb"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        data = json.loads(text)
        data["mean"] = tuple(data["mean"])
        data["std"] = tuple(data["std"])
        return cls(**data)


def to_network_input(image: np.ndarray, contract: ModelContract) -> np.ndarray:
    """(H, W, 3) uint8 frame -> the array the graph's input takes (a view where possible, no copies for uint8)."""
    if contract.input_format == "float_normalised":
        x = image.astype(np.float32)
        if contract.channel_order == "bgr":
            x = x[..., ::-1]
        mean = np.asarray(contract.mean, dtype=np.float32)
        std = np.asarray(contract.std, dtype=np.float32)
        return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1)[None])
    return np.ascontiguousarray(image)[None]
