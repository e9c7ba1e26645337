"""INT8 post-training quantization into explicit Q/DQ that TensorRT's strongly typed builder accepts.

Quantizer: NVIDIA ModelOpt (``modelopt.onnx.quantization``): symmetric INT8, per-channel weights on axis 0, no
bias Q/DQ, TensorRT-oriented Q/DQ placement. Its calibrator named "entropy" (``int8``, ``mixed``) searches KL over
128 bins, where the search has one candidate: its thresholds sit at the first calibration frame's max |x| (issue
32: ratio min 1.000, median 1.016), so it is in effect max calibration of that frame; the real 2048-bin search is
``kl2048`` (kl2048.py). ONNX Runtime's own
``quantize_static`` 'entropy' collapses to min-max (its calibrator hard-codes 128 histogram bins for 128
quantized bins, and quantize_static cannot change that), so it is not used for entropy. Percentile comes from ONNX Runtime's histogram calibrator (ModelOpt INT8 offers entropy and max
only), applied to the same ModelOpt Q/DQ placement, so the three methods differ in their scales and nothing else.

ModelOpt calibrates the exported graph as it is, uint8 NHWC camera input included (checked: it accepts uint8
calibration arrays), so no float-input copy of the graph is needed; the Cast/normalise/transpose in front of the
network and the ArgMax at the end are left unquantized by ModelOpt's placement (they are not quantizable ops).

ModelOpt patches ONNX Runtime's calibrator classes when imported, after which ORT's own calibrators misbehave
(quantize_static then fails with "Histogram has not been collected"), so every quantizer call runs in a fresh interpreter (:func:`run_isolated`): the caller's
process never imports modelopt, and ORT calibration never shares a process with it. The quantizers only ever get
a private copy of the FP32 file (ModelOpt rewrites the file it is given; that file's hash keys the cache).
A static batch-N graph is calibrated on whole inputs of N frames (ModelOpt splits the frame stack by the graph's
batch dimension; the percentile histograms take one N-frame run per call).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, SegmentationError
from ..hashing import sha256_file
from . import calibration_data, kl2048
from .cache import cache_key, fit_to_graph, load_scales, save_scales
from .calibration_data import CalibrationSet, model_runs, modelopt_eps, onnxruntime_providers, whole_runs

LOG = logging.getLogger(__name__)

# Per calibration method, this package's modules whose code computes its scales: their sha256 keys the calibration
# cache (precision/cache.py), so editing any of them makes cached scales stale. This module places the Q/DQ and
# runs every method (calibrator options, percentile bins, scale equalisation); calibration_data.py cuts the frames
# into the runs the calibrators see; kl2048.py computes int8-kl2048's thresholds.
_SHARED_CODE = (__name__, calibration_data.__name__)
METHOD_CODE: dict[str, tuple[str, ...]] = {
    "entropy": _SHARED_CODE,
    "max": _SHARED_CODE,
    "percentile": _SHARED_CODE,
    "kl2048": (*_SHARED_CODE, kl2048.__name__),
}
METHODS = tuple(METHOD_CODE)
DEFAULT_PERCENTILE = 99.99
# ModelOpt writes opset 19 ("Updating minimum opset ... to 19"); the TensorRT 8.5/8.6 ONNX parsers document
# opsets up to 17, and INT8 Q/DQ over float32 means the same at 13-17 as at 19 (19 added float8 and fp16 inputs)
QDQ_OPSET = 17


class QuantizationError(RuntimeError, SegmentationError):
    """The quantizer failed, or its output breaks the Q/DQ rules TensorRT needs."""


@dataclass
class Int8Options:
    method: str = "entropy"
    percentile: float = DEFAULT_PERCENTILE
    nodes_to_quantize: list[str] | None = None  # regexes over ONNX node names; None = every quantizable node
    nodes_to_exclude: list[str] = field(default_factory=list)  # regexes; these stay in floating point

    def validate(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown calibration method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not 0.0 < self.percentile <= 100.0:
            raise InputError(f"percentile must be in (0, 100], got {self.percentile}")

    def key_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "nodes_to_quantize": self.nodes_to_quantize,
            "nodes_to_exclude": sorted(self.nodes_to_exclude),
        }
        if self.method == "percentile":
            params["percentile"] = self.percentile
        return params


@dataclass
class Int8Result:
    path: Path
    scales: dict[str, Any]  # int8: {tensor: scale}; int8-cpu: {tensor: [lowest, highest]}
    cache_status: str  # hit | missing | stale | corrupt | disabled
    seconds: float
    quantized_nodes: int


# --------------------------------------------------------------------------------------------- Q/DQ graph helpers


def graph_batch(model: Any) -> int:
    """The static batch (first dimension) of the graph's first input; 1 when it is symbolic or absent."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return int(dims[0].dim_value) if dims and dims[0].dim_value > 0 else 1


def activation_scales(model: Any) -> dict[str, float]:
    """{activation tensor: scale} of every QuantizeLinear whose input is not a weight initializer."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    consts = _constant_values(model)
    scales = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            name = node.input[1]
            value = numpy_helper.to_array(inits[name]) if name in inits else consts.get(name)
            if value is None or np.size(value) != 1:
                raise QuantizationError(f"activation Q node {node.name} has no per-tensor scale")
            scales[node.input[0]] = float(np.asarray(value, dtype=np.float64).reshape(()))
    return scales


def _constant_values(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def apply_activation_scales(model: Any, scales: dict[str, float]) -> int:
    """Overwrite the scale of every activation Q/DQ pair with ``scales[tensor]``; missing tensors are an error."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    wanted: dict[str, float] = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            if node.input[0] not in scales:
                raise QuantizationError(f"no scale for activation tensor {node.input[0]!r}")
            scale_name = node.input[1]
            if scale_name in wanted and not math.isclose(wanted[scale_name], scales[node.input[0]], rel_tol=1e-6):
                raise QuantizationError(f"scale initializer {scale_name} is shared by tensors with different scales")
            wanted[scale_name] = scales[node.input[0]]
    for name, value in wanted.items():
        if name not in inits:
            raise QuantizationError(f"activation scale {name} is not an initializer")
        old = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=old.dtype).reshape(old.shape), name))
    return len(wanted)


def qdq_structure_problems(model: Any) -> list[str]:
    """What breaks the INT8 rules: every quantized Conv has a per-channel (axis 0) INT8 symmetric weight Q/DQ,
    activations are per-tensor symmetric INT8, and no bias passes through Q/DQ."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    consts = _constant_values(model)
    problems = []

    def value(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(inits[name]) if name in inits else consts.get(name)

    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zero = value(node.input[2])
            if zero is not None and np.any(zero != 0):
                problems.append(f"{node.name}: non-zero zero point (asymmetric)")
            zp = inits.get(node.input[2])
            if zp is not None and zp.data_type != TensorProto.INT8:
                problems.append(f"{node.name}: zero point type {zp.data_type} is not INT8")
        if node.op_type != "Conv":
            continue
        x = producers.get(node.input[0])
        w = producers.get(node.input[1])
        if x is None or x.op_type != "DequantizeLinear":
            continue  # a Conv left in float (excluded or mixed precision) is allowed
        if w is None or w.op_type != "DequantizeLinear":
            problems.append(f"{node.name}: input is quantized but the weight is not")
            continue
        scale = value(w.input[1])
        axis = next((a.i for a in w.attribute if a.name == "axis"), 1)
        channels = model_weight_channels(model, w, producers, inits)
        if scale is None or scale.ndim != 1 or axis != 0 or (channels and scale.shape[0] != channels):
            problems.append(f"{node.name}: weight is not quantized per output channel (axis 0)")
        if len(node.input) > 2 and node.input[2]:
            b = producers.get(node.input[2])
            if b is not None and b.op_type == "DequantizeLinear":
                problems.append(f"{node.name}: bias is quantized (TensorRT wants float bias)")
    return problems


def model_weight_channels(model: Any, dq: Any, producers: dict[str, Any], inits: dict[str, Any]) -> int | None:
    """Output channels of the weight behind a weight DQ (through its Q for ModelOpt's float-weight form)."""
    source = dq.input[0]
    q = producers.get(source)
    if q is not None and q.op_type == "QuantizeLinear":
        source = q.input[0]
    init = inits.get(source)
    return int(init.dims[0]) if init is not None and init.dims else None


def count_quantized_convs(model: Any) -> tuple[int, int]:
    """(Convs whose input is dequantized, all Convs)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    q = sum(1 for n in convs if (p := producers.get(n.input[0])) is not None and p.op_type == "DequantizeLinear")
    return q, len(convs)


def inline_weight_identities(model: Any) -> int:
    """Point every consumer of ``Identity(initializer)`` at the initializer itself and drop the Identity; returns
    how many were removed. The exporter writes such Identities where constant folding gives byte-identical weights
    (a random-weight pyramid SwiftNet: every level's BNs fold into the shared conv weights identically), and
    ModelOpt quantizes a weight behind an Identity per tensor, which TensorRT's INT8 rules refuse."""
    inits = {i.name for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    alias = {
        n.output[0]: n.input[0]
        for n in model.graph.node
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in outputs
    }
    if not alias:
        return 0
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in alias:
                node.input[index] = alias[name]
    keep = [n for n in model.graph.node if not (n.op_type == "Identity" and n.output and n.output[0] in alias)]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return len(alias)


def expand_patterns(model: Any, patterns: Sequence[str]) -> list[str]:
    """Node names that match any of ``patterns`` (Python regexes matched against the whole name)."""
    compiled = [re.compile(p) for p in patterns]
    return [n.name for n in model.graph.node if any(c.fullmatch(n.name) for c in compiled)]


def lower_opset(model: Any, opset: int) -> tuple[Any, str]:
    """``model`` converted to ``opset`` by ONNX's version converter and accepted by the full ONNX checker at that
    opset (every node against its schema there, types included), with its IR version kept; or the model unchanged
    and why not (e.g. float16 Q/DQ inputs, which only opset 19 allows)."""
    import onnx
    from onnx import version_converter

    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if current is None or current <= opset:
        return model, ""
    try:
        lowered = version_converter.convert_version(model, opset)
        onnx.checker.check_model(lowered, full_check=True)
    except Exception as exc:  # noqa: BLE001 - the converter and checker raise several unrelated types
        return model, f"opset {current}: lowering to {opset} is not valid ONNX ({str(exc).splitlines()[0][:200]})"
    for prop in model.metadata_props:  # the converter keeps them today; make sure the contract survives
        if not any(p.key == prop.key for p in lowered.metadata_props):
            lowered.metadata_props.add().CopyFrom(prop)
    return lowered, ""


# ----------------------------------------------------------------------------------------- quantizer subprocesses


def run_isolated(target: Any, job: dict[str, Any], what: str) -> dict[str, Any]:
    """Run ``target(job)`` in a fresh interpreter (``python -m <its module> <its name> JOB``); its JSON result
    (or traceback) comes back through a file. A subprocess rather than multiprocessing: no re-import of the
    caller's ``__main__``, and its stdout (the quantizer's progress bars) goes straight to the terminal."""
    import os
    import subprocess
    import sys

    workdir = Path(job["workdir"])
    result_file = workdir / f"{what}.result.json"
    job_file = workdir / f"{what}.job.json"
    job_file.write_text(json.dumps(dict(job, result_file=str(result_file))))
    proc = subprocess.run([sys.executable, "-m", target.__module__, target.__name__, str(job_file)], env=os.environ.copy())
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if "error" in result:
            raise QuantizationError(f"{what} failed:\n{result['error']}")
        return dict(result)
    raise QuantizationError(f"{what} process died (exit code {proc.returncode}); out of memory?")


def _modelopt_worker(job: dict[str, Any]) -> None:  # runs in a separate process
    try:
        logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns on the root logger for every excluded bias
        from modelopt.onnx.quantization import quantize

        frames = np.load(job["frames"], mmap_mode="r")
        quantize(
            onnx_path=job["onnx"],
            quantize_mode="int8",
            calibration_data=np.ascontiguousarray(frames),
            calibration_method=job["method"],
            calibration_eps=job["eps"],
            nodes_to_quantize=job["nodes_to_quantize"] or None,
            nodes_to_exclude=job["nodes_to_exclude"] or None,
            high_precision_dtype="fp32",  # fp16 (mixed) is a separate, controlled pass; scales stay fp32 here
            output_path=job["out"],
            log_level="WARNING",
        )
        Path(job["result_file"]).write_text(json.dumps({"ok": True}))
    except BaseException:  # noqa: BLE001 - reported to the parent verbatim
        Path(job["result_file"]).write_text(json.dumps({"error": traceback.format_exc()}))


def _percentile_worker(job: dict[str, Any]) -> None:  # separate process, never with modelopt loaded
    try:
        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

        frames = np.load(job["frames"], mmap_mode="r")
        with tempfile.TemporaryDirectory() as tmp:
            calibrator = create_calibrator(
                job["onnx"],
                None,
                augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={"symmetric": True, "percentile": job["percentile"], "num_bins": 2048},
                providers=job["providers"],
            )
            from tqdm import tqdm

            runs = list(model_runs(frames, job["batch"]))
            for run in tqdm(runs, desc="percentile calibration", unit="run", leave=False):  # one graph input per call: histograms merge, RAM flat
                calibrator.collect_data(_OneRunReader(job["input_name"], run))
            ranges = calibrator.compute_data()
        wanted = set(job["tensors"])
        thresholds = {}
        for name in wanted:
            if name not in ranges.data:
                raise KeyError(f"percentile calibration produced no range for tensor {name!r}")
            rng = ranges.data[name]
            amax = float(max(abs(float(np.asarray(rng.range_value[0]).item())), abs(float(np.asarray(rng.range_value[1]).item()))))
            thresholds[name] = amax
        Path(job["result_file"]).write_text(json.dumps({"amax": thresholds}))
    except BaseException:  # noqa: BLE001
        Path(job["result_file"]).write_text(json.dumps({"error": traceback.format_exc()}))


class _OneRunReader:
    def __init__(self, name: str, frames: np.ndarray) -> None:
        self._items = iter([{name: frames}])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


# ----------------------------------------------------------------------------------------------------- main entry


def quantize_int8(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration: CalibrationSet,
    options: Int8Options | None = None,
    cache_path: str | Path | None = None,
) -> Int8Result:
    """FP32 ONNX -> INT8 Q/DQ ONNX (float elsewhere, fp32). Scales come from ``cache_path`` when it is valid for
    this model, frame set and method; otherwise they are calibrated and the cache is (re)written."""
    import onnx

    options = options or Int8Options()
    options.validate()
    start = time.perf_counter()
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    batch = graph_batch(onnx.load(str(fp32_onnx), load_external_data=False))
    frames = whole_runs(calibration.frames, batch)  # a batch-N graph takes N frames per run
    key = cache_key(
        model_sha256=sha256_file(fp32_onnx), calibration_sha256=calibration.sha256, method=options.method,
        params=options.key_params(), quantizer_modules=METHOD_CODE[options.method],
    )
    lookup = load_scales(cache_path, key) if cache_path else None
    cache_status = lookup.status if lookup else "disabled"
    model = None
    if lookup is not None and lookup.scales is not None and cache_path is not None:
        LOG.info("int8 %s: reusing cached scales from %s", options.method, cache_path)
        model = _qdq_graph(fp32_onnx, frames[:batch], "max", options)
        lookup = fit_to_graph(lookup, activation_scales(model), cache_path)  # misfitting tensors: corrupt
        if lookup.scales is None:
            cache_status, model = lookup.status, None
        else:
            apply_activation_scales(model, lookup.scales)
            scales = lookup.scales
    if model is None:
        LOG.info(
            "int8 %s: calibrating on %d frames of %s (%s)", options.method, len(calibration), calibration.description,
            "ModelOpt Q/DQ placement + ONNX Runtime percentile histograms" if options.method == "percentile"
            else "ModelOpt Q/DQ placement + TensorRT's 2048-bin KL (precision/kl2048.py)"
            if options.method == "kl2048" else "ModelOpt",
        )
        if options.method in ("percentile", "kl2048"):  # ModelOpt's placement, our scales
            model = _qdq_graph(fp32_onnx, frames[:batch], "max", options)
            scales = (_percentile_scales(fp32_onnx, model, frames, batch, options.percentile)
                      if options.method == "percentile" else _kl2048_scales(fp32_onnx, model, frames, batch))
            apply_activation_scales(model, scales)
        else:
            model = _qdq_graph(fp32_onnx, frames, options.method, options)
            scales = activation_scales(model)
    model, lowered = lower_opset(model, QDQ_OPSET)
    if lowered:
        LOG.info("int8: Q/DQ graph kept at its opset (%s)", lowered)
    problems = qdq_structure_problems(model)
    if problems:
        raise QuantizationError("the Q/DQ graph breaks TensorRT's INT8 rules:\n  " + "\n  ".join(problems))
    if cache_path and cache_status != "hit":
        save_scales(cache_path, key, scales, {"calibration_set": calibration.description, "frames": len(calibration)})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    quantized, _ = count_quantized_convs(model)
    return Int8Result(out_path, scales, cache_status, time.perf_counter() - start, quantized)


def _qdq_graph(fp32_onnx: Path, frames: np.ndarray, method: str, options: Int8Options) -> Any:
    """ModelOpt's Q/DQ graph for ``fp32_onnx`` calibrated on ``frames`` (run in a spawned process)."""
    import onnx

    # ModelOpt matches patterns as prefixes (re.match); expand them here with full matches and hand over
    # anchored exact names, so a pattern means the same in the config file, the cache key and the graph
    fp32_model = onnx.load(str(fp32_onnx), load_external_data=False)
    include = exclude = None
    if options.nodes_to_quantize is not None:
        include = [f"^{re.escape(n)}$" for n in expand_patterns(fp32_model, options.nodes_to_quantize)]
        if not include:
            raise QuantizationError(f"no node of {fp32_onnx} matches the INT8 patterns {options.nodes_to_quantize}")
    if options.nodes_to_exclude:
        exclude = [f"^{re.escape(n)}$" for n in expand_patterns(fp32_model, options.nodes_to_exclude)]
    with tempfile.TemporaryDirectory(prefix="trtseg-int8-") as workdir:
        np.save(Path(workdir) / "frames.npy", frames)
        private = Path(workdir) / "fp32.onnx"  # ModelOpt rewrites the file it is given: never hand it the user's
        if inline_weight_identities(fp32_model):
            onnx.save(fp32_model, str(private))
        else:
            shutil.copyfile(fp32_onnx, private)
        job: dict[str, Any] = {
            "workdir": workdir, "onnx": str(private), "out": str(Path(workdir) / "qdq.onnx"),
            "frames": str(Path(workdir) / "frames.npy"), "method": method,
            "nodes_to_quantize": include, "nodes_to_exclude": exclude, "eps": modelopt_eps(),
        }
        run_isolated(_modelopt_worker, job, "modelopt-quantize")
        return onnx.load(str(job["out"]))


def _percentile_scales(fp32_onnx: Path, model: Any, frames: np.ndarray, batch: int,
                       percentile: float) -> dict[str, float]:
    import onnx

    input_name = onnx.load(str(fp32_onnx), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="trtseg-pct-") as workdir:
        np.save(Path(workdir) / "frames.npy", frames)
        private = Path(workdir) / "fp32.onnx"
        shutil.copyfile(fp32_onnx, private)
        job = {
            "workdir": workdir, "onnx": str(private), "frames": str(Path(workdir) / "frames.npy"),
            "tensors": sorted(activation_scales(model)), "percentile": percentile, "input_name": input_name,
            "batch": batch, "providers": onnxruntime_providers(),
        }
        result = run_isolated(_percentile_worker, job, "ort-percentile")
    scales = {name: max(amax, 1e-8) / 127.0 for name, amax in result["amax"].items()}
    return _equalise_concat_groups(model, scales)


def _kl2048_scales(fp32_onnx: Path, model: Any, frames: np.ndarray, batch: int) -> dict[str, float]:
    amax = kl2048.kl2048_amax(fp32_onnx, sorted(activation_scales(model)), frames, batch)
    return _equalise_concat_groups(model, {name: max(value, 1e-8) / 127.0 for name, value in amax.items()})


def _equalise_concat_groups(model: Any, scales: dict[str, float]) -> dict[str, float]:
    """Q/DQ tensors that ModelOpt gave one shared scale (its concat elimination) get the group's largest."""
    from collections import defaultdict

    groups: dict[str, list[str]] = defaultdict(list)
    inits = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits:
            groups[node.input[1]].append(node.input[0])
    out = dict(scales)
    for members in groups.values():
        if len(members) > 1:
            top = max(scales[m] for m in members)
            out.update({m: top for m in members})
    return out


if __name__ == "__main__":  # the quantizer subprocess: python -m trt_segmentation.precision.int8 WORKER JOB.json
    import sys

    worker = {"_modelopt_worker": _modelopt_worker, "_percentile_worker": _percentile_worker}[sys.argv[1]]
    worker(json.loads(Path(sys.argv[2]).read_text()))
