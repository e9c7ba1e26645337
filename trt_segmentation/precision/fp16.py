"""FP16 compute with uint8 camera input and labels output kept: for strongly typed TensorRT 10/11 and TRT-RTX.

Converter: NVIDIA ModelOpt AutoCast (``convert_to_mixed_precision``). Unlike onnxconverter-common it keeps the
graph's I/O types exactly (that one turns the output into float16 when the last node is a Resize), it converts
Q/DQ graphs too (the mixed variant), and its reference run keeps nodes whose values overflow FP16 in FP32.
Kept in FP32 on purpose: the uint8 -> float cast, channel reorder and normalisation in front of the network
(3 x H x W values, negligible cost, and exactly what the FP32 graph computes). The final ArgMax runs on the FP16
logits: an FP16->FP32 cast is exact and monotonic, so casting first could not change a single label.
Runs in a separate process like every ModelOpt call (see int8.py).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .int8 import graph_batch, run_isolated


def preprocessing_nodes(model: Any) -> list[str]:
    """Names of the nodes fed (transitively) by the graph input before the first Conv or Q/DQ: the cast,
    channel reorder and normalisation in front of the network."""
    reached = {i.name for i in model.graph.input}
    names = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "QuantizeLinear", "DequantizeLinear"):
            continue
        if any(i in reached for i in node.input):
            names.append(node.name)
            reached.update(node.output)
    return names


def convert_fp16(
    src: str | Path,
    out_path: str | Path,
    sample_frames: np.ndarray,
    keep_fp32: Sequence[str] = (),
) -> Path:
    """``src`` (FP32 or FP32+Q/DQ ONNX) -> FP16 compute, I/O types unchanged. ``keep_fp32``: extra node-name
    regexes to keep in FP32; ``sample_frames``: M x H x W x 3 uint8 frames for AutoCast's overflow check (one run
    of the graph: its first ``batch`` frames for a static batch-N graph)."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    # full-match semantics for the caller's regexes, as the mixed config documents (ModelOpt uses re.match)
    patterns = [f"^{re.escape(n)}$" for n in preprocessing_nodes(model)] + [f"^(?:{p})$" for p in keep_fp32]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trtseg-fp16-") as workdir:
        sample = Path(workdir) / "sample.npz"
        batch = graph_batch(model)
        if len(sample_frames) < batch:
            raise ValueError(f"the batch-{batch} graph needs {batch} sample frames, got {len(sample_frames)}")
        arrays: dict[str, Any] = {model.graph.input[0].name: np.ascontiguousarray(sample_frames[:batch])}
        np.savez(sample, **arrays)
        private = Path(workdir) / "src.onnx"  # ModelOpt may rewrite the file it is given: never the user's
        shutil.copyfile(src, private)
        job = {"workdir": workdir, "src": str(private), "out": str(out_path), "sample": str(sample), "exclude": patterns}
        run_isolated(_autocast_worker, job, "modelopt-autocast")
    return out_path


def _autocast_worker(job: dict[str, Any]) -> None:  # runs in a separate process
    try:
        import onnx
        from modelopt.onnx.autocast import convert_to_mixed_precision
        from modelopt.onnx.logging_config import configure_logging

        configure_logging(logging.WARNING)  # its INFO lines list every node it keeps in FP32

        model = convert_to_mixed_precision(
            onnx_path=job["src"],
            low_precision_type="fp16",
            keep_io_types=True,
            calibration_data=job["sample"],
            nodes_to_exclude=job["exclude"] or None,
        )
        onnx.save(model, job["out"])
        Path(job["result_file"]).write_text(json.dumps({"ok": True}))
    except BaseException:  # noqa: BLE001 - reported to the parent verbatim
        Path(job["result_file"]).write_text(json.dumps({"error": traceback.format_exc()}))


if __name__ == "__main__":  # python -m trt_segmentation.precision.fp16 _autocast_worker JOB.json
    import sys

    {"_autocast_worker": _autocast_worker}[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
