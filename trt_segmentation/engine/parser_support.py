"""What each claimed TensorRT generation's ONNX parser documents it accepts, and a check of a graph against it.

No TensorRT needed: the facts below are read from the ONNX-TensorRT parser's ``docs/operators.md`` (its support
matrix) at the release branches named in ``source``, plus the few type rules its importer code or the TensorRT
API documents beside it. Only the operators our exports and precision variants use (legacy and dynamo exporter)
are listed; an operator missing from a table is reported, so a new one in the graph needs its row added here
first. The on-target check (tools/check_on_target.py) proves the real parser; this proves every variant before a
Jetson sees it. The opset rule alone (:func:`max_opset`) needs no onnx package, so the node and the builder use it
on the target to choose the explicit or the implicit path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, FrozenSet, Optional, Tuple

F = frozenset
_FLOAT = F({"FLOAT", "FLOAT16"})


@dataclass(frozen=True)
class ParserFacts:
    generation: str  # '8.5' | '8.6' | '10'
    jetpack: str
    source: str
    max_opset: int
    min_opset: int
    # operator -> types its inputs may have ('INT64' is read as INT32 where the parser casts it down)
    ops: Dict[str, FrozenSet[str]]
    int64_as_int32: bool
    uint8_casts_from_float_only: bool  # Cast to/from UINT8 only from/to FLOAT/FLOAT16
    uint8_io_only: bool  # UINT8 tensors only as network inputs/outputs
    notes: Tuple[str, ...] = field(default_factory=tuple)


_COMMON_8 = {
    "Add": F({"FLOAT", "FLOAT16", "INT32"}), "Sub": F({"FLOAT", "FLOAT16", "INT32"}),
    "Mul": F({"FLOAT", "FLOAT16", "INT32"}), "Div": F({"FLOAT", "FLOAT16", "INT32"}),
    "AveragePool": F({"FLOAT", "FLOAT16", "INT8", "INT32"}), "BatchNormalization": _FLOAT,
    "Concat": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}),
    "Constant": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}), "ConstantOfShape": F({"FLOAT"}),
    "Conv": F({"FLOAT", "FLOAT16", "INT8"}), "DequantizeLinear": F({"INT8"}),
    "Equal": F({"FLOAT", "FLOAT16", "INT32"}), "Expand": F({"FLOAT", "FLOAT16", "INT32", "BOOL"}),
    "Floor": _FLOAT, "Gather": F({"FLOAT", "FLOAT16", "INT8", "INT32", "BOOL"}),
    "GlobalAveragePool": F({"FLOAT", "FLOAT16", "INT8"}), "Identity": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}),
    "MatMul": _FLOAT, "MaxPool": F({"FLOAT", "FLOAT16", "INT8"}), "Pad": F({"FLOAT", "FLOAT16", "INT8", "INT32"}),
    "QuantizeLinear": _FLOAT, "ReduceMean": _FLOAT, "Relu": F({"FLOAT", "FLOAT16", "INT8"}),
    "Reshape": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}), "Resize": _FLOAT,
    "Shape": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}), "Slice": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}),
    "Squeeze": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}),
    "Transpose": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}),
    "Unsqueeze": F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL"}), "Where": F({"FLOAT", "FLOAT16", "INT32", "BOOL"}),
}
_T10 = F({"FLOAT", "FLOAT16", "BFLOAT16", "INT32", "INT64"})
_T10_BOOL = _T10 | {"BOOL"}
_T10_FLOAT = F({"FLOAT", "FLOAT16", "BFLOAT16"})

GENERATIONS: Dict[str, ParserFacts] = {
    "8.5": ParserFacts(
        "8.5", "JetPack 5.1 (Xavier, Orin; Python 3.8)",
        "onnx-tensorrt release/8.5-GA docs/operators.md; Cast rule: its builtin_op_importers.cpp Cast importer",
        max_opset=17, min_opset=7,
        ops=dict(_COMMON_8, ArgMax=_FLOAT, Cast=F({"FLOAT", "FLOAT16", "INT32", "INT8", "BOOL", "UINT8"})),
        int64_as_int32=True, uint8_casts_from_float_only=True, uint8_io_only=False,
        notes=("ArgMax takes FP32/FP16 only", "a Cast from or to UINT8 must come from or go to FP32/FP16")),
    "8.6": ParserFacts(
        "8.6", "JetPack 6.0 (Orin; Python 3.10)",
        "onnx-tensorrt release/8.6-GA docs/operators.md; UINT8 rule: TensorRT 8.6 ICastLayer (NvInfer.h)",
        max_opset=17, min_opset=7,
        ops=dict(_COMMON_8, ArgMax=F({"FLOAT", "FLOAT16", "INT32"}),
                 Cast=F({"FLOAT", "FLOAT16", "INT32", "INT8", "UINT8", "BOOL"})),
        int64_as_int32=True, uint8_casts_from_float_only=True, uint8_io_only=False,
        notes=("ICastLayer converts UINT8 only from and to FP32/FP16",)),
    "10": ParserFacts(
        "10", "JetPack 6.1/6.2 (Orin; TensorRT 10.3, Python 3.10)",
        "onnx-tensorrt release/10.1-GA docs/operators.md (10.x: opsets 9-20); UINT8 rule: TensorRT 10.3 ICastLayer "
        "(NvInfer.h)",
        max_opset=20, min_opset=9,
        ops={
            "Add": _T10, "Sub": _T10, "Mul": _T10, "Div": _T10, "ArgMax": _T10, "AveragePool": _T10_FLOAT,
            "BatchNormalization": _T10_FLOAT, "Cast": _T10_BOOL | {"UINT8"}, "Concat": _T10_BOOL,
            "Constant": _T10_BOOL, "ConstantOfShape": F({"FLOAT"}), "Conv": _T10_FLOAT,
            "DequantizeLinear": F({"INT8", "FLOAT8E4M3FN", "INT4"}), "Equal": _T10, "Expand": _T10_BOOL,
            "Floor": _T10_FLOAT, "Gather": _T10_BOOL, "GlobalAveragePool": _T10_FLOAT, "Identity": _T10_BOOL,
            "MatMul": _T10_FLOAT, "MaxPool": _T10_FLOAT, "Pad": _T10, "QuantizeLinear": _T10_FLOAT,
            "ReduceMean": _T10, "Relu": _T10, "Reshape": _T10_BOOL, "Resize": _T10_FLOAT, "Shape": _T10_BOOL,
            "Slice": _T10_BOOL, "Squeeze": _T10_BOOL, "Transpose": _T10_BOOL, "Unsqueeze": _T10_BOOL,
            "Where": _T10_BOOL,
        },
        # the operators table lists UINT8 among Cast's types, but the 10.3 headers' ICastLayer converts UINT8 only
        # from and to FP32/FP16 (the JetPack 6.1/6.2 version), so a direct INT32 -> UINT8 labels cast is refused
        int64_as_int32=False, uint8_casts_from_float_only=True, uint8_io_only=True,
        notes=("UINT8 only as network input or output", "ICastLayer converts UINT8 only from and to FP32/FP16")),
}
# ops whose "Supported Types" column describes the data input only (the others: every typed input)
_FIRST_INPUT_ONLY = {"Reshape", "Slice", "Squeeze", "Unsqueeze", "Expand", "Gather", "Pad", "Resize", "Shape",
                     "ConstantOfShape", "QuantizeLinear", "DequantizeLinear", "ReduceMean", "Where"}
_RESIZE_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def generation_of(tensorrt_version: str) -> Optional[str]:
    """'8.5.2.2' -> '8.5', '8.6.1' -> '8.6', '10.3.0' -> '10'; None for a version no table describes."""
    parts = tensorrt_version.split(".")
    if parts[0] == "10":
        return "10"
    key = ".".join(parts[:2])
    return key if key in GENERATIONS else None


def max_opset(tensorrt_version: str) -> Optional[int]:
    """The newest ONNX opset the parser of ``tensorrt_version`` documents (None: no table for that version)."""
    generation = generation_of(tensorrt_version)
    return GENERATIONS[generation].max_opset if generation else None


def check_graph(model: Any, generation: str) -> list:
    """Problems of ``model`` (an onnx.ModelProto or a path) for the parser of ``generation``; empty if none."""
    import onnx
    from onnx import TensorProto

    facts = GENERATIONS[generation]
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(Path(model)))
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not facts.min_opset <= opset <= facts.max_opset:
        problems.append(f"opset {opset} is outside {facts.min_opset}-{facts.max_opset} (TensorRT {generation})")
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: TensorProto.DataType.Name(v.type.tensor_type.elem_type)
             for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    types.update({i.name: TensorProto.DataType.Name(i.data_type) for i in graph.initializer})
    io_names = {v.name for v in list(graph.input) + list(graph.output)}

    def read(name: str) -> str:
        t = types.get(name, "UNDEFINED")
        return "INT32" if t == "INT64" and facts.int64_as_int32 else t

    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.name}: custom domain {node.domain} needs a plugin")
            continue
        allowed = facts.ops.get(node.op_type)
        if allowed is None:
            problems.append(f"{node.name}: {node.op_type} has no row in the TensorRT {generation} table")
            continue
        inputs = [n for n in node.input if n][:1] if node.op_type in _FIRST_INPUT_ONLY else [n for n in node.input if n]
        for name in inputs:
            if read(name) not in allowed:
                problems.append(f"{node.name}: {node.op_type} input {name} is {read(name)}, TensorRT {generation} "
                                f"supports {', '.join(sorted(allowed))}")
        if node.op_type == "Cast" and facts.uint8_casts_from_float_only:
            to = TensorProto.DataType.Name(next(a.i for a in node.attribute if a.name == "to"))
            src = read(node.input[0])
            if (to == "UINT8" and src not in _FLOAT) or (src == "UINT8" and to not in _FLOAT):
                problems.append(f"{node.name}: Cast {src} -> {to}; TensorRT {generation} casts UINT8 only from/to "
                                "FLOAT/FLOAT16")
        if facts.uint8_io_only:
            for name in list(node.input) + list(node.output):
                if name and read(name) == "UINT8" and name not in io_names:
                    problems.append(f"{node.name}: UINT8 tensor {name} is not a network input or output")
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = next((i for i in graph.initializer if i.name == node.input[2]), None)
            if zero is not None and any(onnx.numpy_helper.to_array(zero).ravel() != 0):
                problems.append(f"{node.name}: zero point must be 0")
        if node.op_type == "Resize":
            mode = next((a.s.decode() for a in node.attribute if a.name == "coordinate_transformation_mode"),
                        "half_pixel")
            if mode not in _RESIZE_MODES:
                problems.append(f"{node.name}: Resize coordinate_transformation_mode {mode} is unsupported")
    return problems


def support_table() -> str:
    """The facts as a Markdown table (docs/precision.md carries it)."""
    lines = ["| TensorRT | JetPack | opsets | type rules | source |", "|---|---|---|---|---|"]
    for f in GENERATIONS.values():
        lines.append(f"| {f.generation} | {f.jetpack} | {f.min_opset}-{f.max_opset} | {'; '.join(f.notes)} | "
                     f"{f.source} |")
    return "\n".join(lines)


__all__ = ["GENERATIONS", "ParserFacts", "check_graph", "generation_of", "max_opset", "support_table"]
