"""Per-layer INT8 sensitivity: which Conv's quantization costs the most agreement with FP32.

Leave-one-out on the Q/DQ graph: for each quantized Conv, feed it the float activation and weight again (its
Q/DQ pair bypassed, everything else stays INT8) and measure label agreement with FP32 through ONNX Runtime.
The layers whose release recovers the most are the ones to keep out of INT8 (``exclude_int8`` in the mixed
config, or ``Int8Options.nodes_to_exclude``). Written here because neither ModelOpt's nor ONNX Runtime's
quantization tools report per-layer effects on the final labels.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .calibration_data import model_runs


@dataclass
class LayerSensitivity:
    node: str
    agreement_without_int8: float  # label agreement with FP32 when only this Conv runs in float
    gain: float  # versus the fully quantized graph


def _release(model: Any, conv_name: str) -> Any:
    """Copy of ``model`` in which Conv ``conv_name`` reads the float input and float weight."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    producers = {o: n for n in copy.graph.node for o in n.output}
    conv = next(n for n in copy.graph.node if n.name == conv_name)
    for slot in (0, 1):
        dq = producers.get(conv.input[slot])
        if dq is None or dq.op_type != "DequantizeLinear":
            continue
        q = producers.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            conv.input[slot] = q.input[0]
    return copy


def _labels(session: Any, name: str, frames: np.ndarray) -> list[np.ndarray]:
    batch = session.get_inputs()[0].shape[0]
    batch = batch if isinstance(batch, int) and batch > 0 else 1  # a static batch-N graph takes N frames per run
    return [session.run(None, {name: run})[0] for run in model_runs(frames, batch)]


def layer_sensitivity(
    fp32_onnx: str | Path, int8_onnx: str | Path, frames: np.ndarray, top: int | None = None
) -> list[LayerSensitivity]:
    """Quantized Convs of ``int8_onnx`` ranked by how much agreement their release recovers (best first)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # fp16+Q/DQ safe
    options.log_severity_level = 3

    def run(path: str | Path) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return _labels(session, session.get_inputs()[0].name, frames)

    def agree(a: list[np.ndarray], b: list[np.ndarray]) -> float:
        return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))

    reference = run(fp32_onnx)
    model = onnx.load(str(int8_onnx))
    baseline = agree(reference, run(int8_onnx))
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [
        n.name for n in model.graph.node
        if n.op_type == "Conv" and (p := producers.get(n.input[0])) is not None and p.op_type == "DequantizeLinear"
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="trtseg-sens-") as tmp:
        for name in convs:
            path = Path(tmp) / "released.onnx"
            onnx.save(_release(model, name), str(path))
            value = agree(reference, run(path))
            results.append(LayerSensitivity(name, value, value - baseline))
    results.sort(key=lambda r: r.gain, reverse=True)
    return results[:top] if top else results
