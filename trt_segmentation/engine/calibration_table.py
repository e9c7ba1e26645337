"""TensorRT's INT8 calibration table, written from the activation scales of an explicit (Q/DQ) precision variant.

The implicit path of TensorRT 8.5-10.x (the FP32 ONNX + builder flags + an IInt8EntropyCalibrator2) normally
calibrates on images. A Jetson has none, but the folder of ONNX variants it was given holds the int8/mixed variant,
whose QuantizeLinear nodes carry the activation scales the build side calibrated (ModelOpt). This module reads
those scales and writes them as the table TensorRT reads back through ``read_calibration_cache``, so the implicit
engine on TensorRT 8.5/8.6/10 quantizes exactly the tensors, with exactly the scales, the explicit variant does on
TensorRT 11 (docs/vehicle.md).

The table is text, one line per tensor after a header: ``TRT-<version>-EntropyCalibration2`` (the version as
TensorRT's ``NV_TENSORRT_VERSION``: 8502 for 8.5.2, 100300 for 10.3.0) then
``<tensor name>: <scale as big-endian IEEE float32, 8 hex digits>``; the scale is TensorRT's symmetric INT8 scale
(dynamic range / 127), which is what a symmetric INT8 QuantizeLinear's ``y_scale`` holds. TensorRT's ONNX parser
names each network tensor after its ONNX tensor, so a QuantizeLinear's input -- followed back through the Cast and
Identity nodes the FP16 conversion of a mixed variant puts in front of it -- is the tensor name TensorRT sees in
the FP32 graph. Hand-written: TensorRT only writes this format from its own calibrator, and no maintained library
converts Q/DQ scales into it. Needs ``onnx`` (no torch, no quantization tools): runs on the vehicle.
"""

from __future__ import annotations

import enum
import re
import struct
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import SegmentationError

ALGORITHM = "EntropyCalibration2"  # the header TensorRT checks against IInt8EntropyCalibrator2
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_ENTRY = re.compile(r"^(\S.*): ([0-9a-fA-F]{8})$")


class ImplicitCalibration(str, enum.Enum):
    """Where the implicit INT8 path takes its activation scales from."""

    QDQ_TABLE = "qdq-table"  # the explicit int8/mixed variant's Q/DQ scales, as a calibration table (no images)
    TENSORRT_ENTROPY = "tensorrt-entropy"  # TensorRT's own IInt8EntropyCalibrator2 over calibration images

    def __str__(self) -> str:
        return self.value


class CalibrationTableError(ValueError, SegmentationError):
    """The variant has no usable activation scales, or a table does not parse."""


def version_code(tensorrt_version: str) -> int:
    """TensorRT's ``NV_TENSORRT_VERSION`` (NvInferVersion.h), which the table header carries: major * 1000 + minor *
    100 + patch before TensorRT 10 (8.5.2 -> 8502), major * 10000 + minor * 100 + patch from 10 (10.3.0 -> 100300)."""
    parts = [int(p) for p in (tensorrt_version.split(".") + ["0", "0"])[:3] if p.isdigit()]
    major, minor, patch = (parts + [0, 0, 0])[:3]
    return (major * 10000 if major >= 10 else major * 1000) + minor * 100 + patch


def header(tensorrt_version: str = "8.5.2") -> str:
    """``TRT-8502-EntropyCalibration2`` for TensorRT 8.5.2, ``TRT-100300-EntropyCalibration2`` for 10.3.0."""
    return f"TRT-{version_code(tensorrt_version)}-{ALGORITHM}"


def _source_tensor(name: str, producers: Dict[str, Any]) -> str:
    """``name`` followed back through Cast/Identity nodes to the tensor the FP32 graph has."""
    seen = set()
    while name in producers and producers[name].op_type in ("Cast", "Identity") and name not in seen:
        seen.add(name)
        name = producers[name].input[0]
    return name


def activation_scales(variant_onnx: Union[str, Path], fp32_onnx: Union[str, Path, None] = None) -> Dict[str, float]:
    """{FP32 tensor name: INT8 scale} of every activation QuantizeLinear in ``variant_onnx`` (weights, whose
    QuantizeLinear reads an initializer or Constant, are left out: TensorRT quantizes weights itself). With
    ``fp32_onnx``, every name must be a tensor of that graph (the one TensorRT parses on the implicit path)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(variant_onnx))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    constants = {out: node for out, node in producers.items() if node.op_type == "Constant"}

    def value(name: str) -> Any:
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        if name in constants:
            return numpy_helper.to_array(constants[name].attribute[0].t)
        raise CalibrationTableError(f"{Path(variant_onnx).name}: scale {name} is neither an initializer nor a Constant")

    scales: Dict[str, float] = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        source = _source_tensor(node.input[0], producers)
        if source in initializers or source in constants:
            continue  # a weight
        scale = value(node.input[1])
        zero = value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale.size != 1:
            raise CalibrationTableError(f"{Path(variant_onnx).name}: activation {source} has a per-channel scale; "
                                        "TensorRT's calibration table holds one scale per tensor")
        if zero is not None and (zero.dtype.name != "int8" or int(zero.reshape(-1)[0]) != 0):
            raise CalibrationTableError(f"{Path(variant_onnx).name}: activation {source} is not symmetric INT8 "
                                        f"(zero point {zero.reshape(-1)[0]} {zero.dtype}); TensorRT quantizes "
                                        "symmetric INT8 only (the int8-cpu variant is for ONNX Runtime)")
        # float16 scales (mixed, opset 19) widen to float32 exactly; float32 ones are kept bit for bit
        as_float32 = float(struct.unpack("!f", struct.pack("!f", float(scale.reshape(-1)[0])))[0])
        if source in scales and scales[source] != as_float32:
            raise CalibrationTableError(f"{Path(variant_onnx).name}: activation {source} has two scales "
                                        f"({scales[source]!r}, {as_float32!r})")
        scales[source] = as_float32
    if not scales:
        raise CalibrationTableError(f"{Path(variant_onnx).name} has no activation QuantizeLinear: not an int8 or "
                                    "mixed variant")
    if fp32_onnx is not None:
        fp32 = onnx.load(str(fp32_onnx), load_external_data=False)
        names = {t for node in fp32.graph.node for t in node.output} | {i.name for i in fp32.graph.input}
        unknown = sorted(set(scales) - names)
        if unknown:
            raise CalibrationTableError(
                f"{Path(variant_onnx).name} quantizes tensor(s) {', '.join(unknown[:3])} that "
                f"{Path(fp32_onnx).name} does not have: the variant was not made from this FP32 ONNX; re-make both "
                "on the build machine")
    return scales


def table_text(scales: Dict[str, float], tensorrt_version: str = "8.5.2") -> str:
    """The calibration table of ``scales`` (sorted by tensor name, so equal scales give equal bytes)."""
    lines = [header(tensorrt_version)]
    lines += [f"{name}: {struct.pack('!f', scale).hex()}" for name, scale in sorted(scales.items())]
    return "\n".join(lines) + "\n"


def parse_table(text: Union[str, bytes]) -> Dict[str, float]:
    """{tensor name: scale} of a calibration table; :class:`CalibrationTableError` when it is not one."""
    problem = table_problem(text if isinstance(text, bytes) else text.encode("utf-8", "replace"))
    if problem:
        raise CalibrationTableError(f"not a TensorRT {ALGORITHM} table: {problem}")
    body = text.decode("ascii") if isinstance(text, bytes) else text
    scales = {}
    for line in body.strip().splitlines()[1:]:
        match = _ENTRY.match(line.strip())
        assert match is not None  # table_problem checked every line
        scales[match.group(1)] = float(struct.unpack("!f", bytes.fromhex(match.group(2)))[0])
    return scales


def table_problem(blob: bytes) -> Optional[str]:
    """Why ``blob`` is not a TensorRT entropy-calibration table (None if it is one)."""
    try:
        lines = blob.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        return "not ASCII text"
    match = _HEADER.match(lines[0].strip()) if lines else None
    if match is None or match.group(2) != ALGORITHM:
        return f"missing the 'TRT-<version>-{ALGORITHM}' header"
    bad = [line for line in lines[1:] if not _ENTRY.match(line.strip())]
    if bad or len(lines) < 2:
        return f"malformed entry {bad[0]!r}" if bad else "no entries"
    return None


def table_path(engine_path: Union[str, Path]) -> Path:
    """Where the table of an implicit engine is written: ``<engine stem>.qdq.calibration`` beside it."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.stem + ".qdq.calibration")


def write_table_from_variant(variant_onnx: Union[str, Path], fp32_onnx: Union[str, Path, None], out: Union[str, Path],
                             tensorrt_version: str = "8.5.2") -> Path:
    """Read the variant's activation scales and write their table to ``out`` (atomically)."""
    out = Path(out)
    text = table_text(activation_scales(variant_onnx, fp32_onnx), tensorrt_version)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    return out


__all__ = ["ALGORITHM", "CalibrationTableError", "ImplicitCalibration", "activation_scales", "header",
           "parse_table", "table_path", "table_problem", "table_text", "version_code", "write_table_from_variant"]
