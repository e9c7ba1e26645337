"""Prove an ONNX file is accepted by a TensorRT ONNX parser and builder, without a GPU.

Uses TensorRT-RTX (pip ``tensorrt-rtx-cu13-libs``/``-bindings``), which parses ONNX and builds strongly typed
engines on a CPU-only machine (it cannot run them). Precision comes from the ONNX itself (casts, Q/DQ), which is
the same contract TensorRT 10/11 strongly typed networks use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .tensorrt_adapter import TensorRTUnavailable, load_tensorrt  # one detection, one "no TensorRT here" error


@dataclass
class ParseReport:
    path: str
    parsed: bool
    built: bool
    errors: list[str] = field(default_factory=list)
    inputs: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    outputs: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    layers: int = 0
    engine_bytes: int = 0
    build_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.parsed and self.built

    def summary(self) -> str:
        if self.ok:
            return (
                f"{self.path}: parsed ({self.layers} layers) and built in {self.build_seconds:.1f} s "
                f"({self.engine_bytes / 1e6:.1f} MB); inputs {self.inputs}, outputs {self.outputs}"
            )
        return f"{self.path}: {'build' if self.parsed else 'parse'} FAILED:\n  " + "\n  ".join(self.errors)


def _tensors(network, inputs: bool) -> list[tuple[str, str, tuple[int, ...]]]:  # noqa: ANN001
    count = network.num_inputs if inputs else network.num_outputs
    get = network.get_input if inputs else network.get_output
    return [(t.name, str(t.dtype).split(".")[-1], tuple(t.shape)) for t in (get(i) for i in range(count))]


def check_onnx(path: str | Path, build: bool = True) -> ParseReport:
    """Parse ``path`` with the TensorRT ONNX parser and (optionally) build a serialized engine from it.
    Raises :class:`TensorRTUnavailable` (naming the pip command) where TensorRT-RTX is not installed."""
    trt = load_tensorrt("tensorrt-rtx").module
    path = Path(path)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    report = ParseReport(str(path), parsed=False, built=False)
    if not parser.parse_from_file(str(path)):
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            text = str(err)
            # every real error is followed by a spurious "driver version insufficient" line on a CPU machine
            if "cudaError" in text and "insufficient" in text:
                continue
            node = f"node {err.node()} ({err.node_name()}, {err.node_operator()}): " if hasattr(err, "node_name") else ""
            report.errors.append(node + err.desc() if hasattr(err, "desc") else text)
        return report
    report.parsed = True
    report.layers = network.num_layers
    report.inputs = _tensors(network, True)
    report.outputs = _tensors(network, False)
    if not build:
        return report
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, builder.create_builder_config())
    report.build_seconds = time.perf_counter() - start
    if serialized is None:
        report.errors.append("the builder returned no engine (see the TensorRT log above)")
        return report
    report.built = True
    report.engine_bytes = serialized.nbytes
    return report


__all__ = ["ParseReport", "TensorRTUnavailable", "check_onnx"]
