"""The contract between an exported ONNX file and the runtimes: input format, output kind, normalisation.

Stored as JSON under one ``metadata_props`` key of the ONNX model, so a runtime without torch knows how to
feed the graph, and ``to_network_input``: how a uint8 camera frame becomes that input. Needs numpy, and the
``onnx`` package, ONNX Runtime's metadata, or ``read_onnx_metadata`` (the raw protobuf, no package) to read it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import InputFormat
from .errors import InputError
from .image_codec import reorder_channels

METADATA_KEY = "trt_segmentation"

INPUT_FORMATS = tuple(f.value for f in InputFormat)
OUTPUT_KINDS = ("labels_uint8", "labels_int32", "logits")


@dataclass(frozen=True)
class ModelContract:
    """What the graph expects and returns. ``height``/``width`` are the static input size; ``batch`` the static
    number of frames per run (1: one camera; N > 1: multi-camera engines, input (N, ...) and output (N, ...))."""

    model: str
    num_classes: int
    height: int
    width: int
    input_format: InputFormat  # text (a contract read from JSON) is parsed on construction
    output: str
    input_name: str
    output_name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str = "fp32"
    extra: dict[str, str] = field(default_factory=dict)
    batch: int = 1  # contracts written before batching existed have no "batch" key: they are batch 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_format", InputFormat.parse(self.input_format))

    @property
    def channel_order(self) -> str:
        """``rgb`` or ``bgr``: the order of the 3 channels the graph's uint8 input expects (float is RGB)."""
        return self.input_format.channel_order

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        data = json.loads(text)
        data["mean"] = tuple(data["mean"])
        data["std"] = tuple(data["std"])
        return cls(**data)


def to_network_input(image: np.ndarray, contract: ModelContract, contiguous: bool = True) -> np.ndarray:
    """(H, W, 3) frame or (N, H, W, 3) batch of uint8 -> the array the graph's input takes, always with the
    batch axis first ((1, ...) for a single frame); no copy for a contiguous uint8 input. ``contiguous=False``
    leaves a strided uint8 view as it is, for callers that copy it into a buffer of their own (the CUDA slots)."""
    batch = image if image.ndim == 4 else image[None]
    if contract.input_format == "float_normalised":
        x = batch.astype(np.float32)
        x = reorder_channels(x, contract.channel_order)
        mean = np.asarray(contract.mean, dtype=np.float32)
        std = np.asarray(contract.std, dtype=np.float32)
        return np.ascontiguousarray(((x - mean) / std).transpose(0, 3, 1, 2))
    return np.ascontiguousarray(batch) if contiguous else batch


# ------------------------------------------------------------------------------------------ reading an ONNX file
# The Jetson runtime image has no onnx package, so the few fields the engine builder and the on-target check need
# are read from the protobuf directly: ModelProto is a flat list of tagged fields, a few lines walk it.


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file without the onnx package (absent on a Jetson runtime image)."""
    return _read_onnx_header(path)[0]


def read_onnx_opset(path: str | Path) -> int:
    """The default-domain opset of an ONNX file, without the onnx package (0 if it names none)."""
    opsets = _read_onnx_header(path)[1]
    return opsets.get("", opsets.get("ai.onnx", 0))


def _read_onnx_header(path: str | Path) -> tuple[dict[str, str], dict[str, int]]:
    """(metadata_props, {opset domain: version}) by a walk over the top-level protobuf fields of ModelProto
    (field 14 = StringStringEntryProto{1: key, 2: value}; field 8 = OperatorSetIdProto{1: domain, 2: version})."""
    data = Path(path).read_bytes()
    props: dict[str, str] = {}
    opsets: dict[str, int] = {}
    pos = 0
    try:
        while pos < len(data):
            tag, pos = _varint(data, pos)
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(data, pos)
                if field == 14:
                    entry, key, value, end = pos, "", "", pos + size
                    while entry < end:
                        etag, entry = _varint(data, entry)
                        esize, entry = _varint(data, entry)
                        text = data[entry : entry + esize].decode("utf-8")
                        key, value = (text, value) if etag >> 3 == 1 else (key, text)
                        entry += esize
                    props[key] = value
                elif field == 8:
                    entry, domain, version, end = pos, "", 0, pos + size
                    while entry < end:
                        etag, entry = _varint(data, entry)
                        if etag & 7 == 0:
                            version, entry = _varint(data, entry)
                        else:
                            esize, entry = _varint(data, entry)
                            domain = data[entry : entry + esize].decode("utf-8")
                            entry += esize
                    opsets[domain] = version
                pos += size
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a readable ONNX file ({exc})") from exc
    return props, opsets


def read_contract_dict(path: str | Path) -> dict[str, Any]:
    """The contract JSON of an exported ONNX file as a dict, without the onnx package."""
    props = read_onnx_metadata(path)
    if METADATA_KEY not in props:
        raise InputError(f"{path} was not exported by trt_segmentation (no '{METADATA_KEY}' metadata)")
    return dict(json.loads(props[METADATA_KEY]))


def read_contract(path: str | Path) -> ModelContract:
    """The :class:`ModelContract` of an exported ONNX file, without the onnx package (:func:`read_contract_dict`
    for the contract as a dict)."""
    return ModelContract.from_json(json.dumps(read_contract_dict(path)))
