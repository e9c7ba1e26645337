"""INT8 for ONNX Runtime's CPU kernels (the ``int8-cpu`` variant), made by ONNX Runtime's own quantizer.

TensorRT-style Q/DQ (symmetric activations, ModelOpt placement; precision/int8.py) runs slower than FP32 on ONNX
Runtime's CPU provider. This variant follows ONNX Runtime's CPU recipe instead (``quantize_static`` docs, "Choosing
parameters for CPU inference"): ``quant_pre_process`` (shape inference, BatchNorm folding), then QDQ format with
uint8 asymmetric activations and int8 per-channel weights on x86, int8 symmetric activations on ARM64, only Conv
quantized, activation ranges from MinMax calibration. x86 weights are 7-bit (``reduce_range``: required without
VNNI, see trt_segmentation/cpu_features.py, and kept with VNNI, see :func:`recipe_for`); the CPU class of the
building machine and the choice are recorded in the contract (``extra``).

The ranges are cached like the other variants' scales (precision/cache.py: method ``minmax``, the recipe as
parameters, the sha256 of this module and of calibration_data.py among the versions). ONNX Runtime's quantizer runs in a fresh interpreter
(:func:`.int8.run_isolated`): ModelOpt patches ORT's calibrators when imported, so they never share a process.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..artifacts import CalibrationMethod
from ..cpu_features import ARM64, X86_VNNI, cpu_class
from ..hashing import sha256_file
from . import calibration_data
from .cache import cache_key, fit_to_graph, load_scales, save_scales
from .calibration_data import CalibrationSet, whole_runs
from .int8 import Int8Result, QuantizationError, graph_batch, run_isolated

LOG = logging.getLogger(__name__)
OP_TYPES = ("Conv",)  # ONNX Runtime's CPU gains come from QLinearConv; other ops quantized add Q/DQ hops only
# this package's code that computes the ranges (its sha256 keys the cache): the recipe and worker here, and the
# cutting of frames into runs (calibration_data.py)
CODE = (__name__, calibration_data.__name__)


@dataclass(frozen=True)
class CpuRecipe:
    """The quantize_static settings for one CPU class (``cpu_features.cpu_class``)."""

    cpu_class: str
    activation: str  # "uint8" (asymmetric) | "int8" (symmetric)
    reduce_range: bool  # 7-bit weights
    exclude: tuple[str, ...] = ()  # ONNX node names left in float

    def key_params(self) -> dict[str, Any]:
        return dict(asdict(self), exclude=list(self.exclude), weights="int8-per-channel", op_types=list(OP_TYPES),
                    quant_pre_process=True)

    def contract_extra(self) -> dict[str, str]:
        """What the contract records (strings: ModelContract.extra is str -> str)."""
        return {
            "ort_cpu_class": self.cpu_class,
            "ort_activation_type": self.activation,
            "ort_reduce_range": "true" if self.reduce_range else "false",
            "ort_quantizer": "onnxruntime.quantization.quantize_static (QDQ, MinMax, Conv only, per-channel weights)",
        }


def recipe_for(machine: str | None = None, flags: Iterable[str] | None = None, *, portable: bool = True) -> CpuRecipe:
    """The recipe for ``machine``/``flags`` (default: this machine). ONNX Runtime recommends uint8 activations with
    7-bit weights (``reduce_range``) on x86 without VNNI, uint8 with 8-bit weights on x86 with VNNI, and int8
    symmetric activations on ARM64; ``portable=False`` gives exactly that. The default (``portable``) keeps 7-bit
    weights on every x86 CPU: the file is then exact on any x86 machine it is copied to, and our ONNX Runtime
    sessions set ``session.x64quantprecision``, which runs 8-bit weights through slow exact kernels even on VNNI
    (measured on a 2-core AVX-512 VNNI EPYC, 512x1024: 8-bit weights 128 ms, 7-bit 80 ms, fp32 137 ms; without the
    option both 80 ms), at no measured accuracy cost (label agreement with FP32 99.80 % either way).
    Other CPUs get the x86-without-VNNI settings (exact everywhere)."""
    found = cpu_class(machine, flags)
    if found == ARM64:
        return CpuRecipe(found, "int8", False)
    return CpuRecipe(found, "uint8", portable or found != X86_VNNI)


def quantize_int8_cpu(
    fp32_onnx: str | Path,
    out_path: str | Path,
    calibration: CalibrationSet,
    recipe: CpuRecipe | None = None,
    cache_path: str | Path | None = None,
) -> Int8Result:
    """FP32 ONNX -> ONNX Runtime CPU INT8 (QDQ). Ranges come from ``cache_path`` when it is valid for this model,
    frame set and recipe (and fits the graph); otherwise they are calibrated and the cache is (re)written."""
    import onnx

    recipe = recipe or recipe_for()
    start = time.perf_counter()
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    key = cache_key(model_sha256=sha256_file(fp32_onnx), calibration_sha256=calibration.sha256,
                    method=CalibrationMethod.MINMAX.value, params=recipe.key_params(), quantizer_modules=CODE)
    lookup = load_scales(cache_path, key, ranges=True) if cache_path else None
    cache_status = lookup.status if lookup else "disabled"
    cached = lookup.scales if lookup is not None else None
    fp32_model = onnx.load(str(fp32_onnx), load_external_data=False)
    input_name, batch = fp32_model.graph.input[0].name, graph_batch(fp32_model)
    LOG.info("int8-cpu (%s): %s", recipe.cpu_class, "reusing cached ranges" if cached else
             f"calibrating on {len(calibration)} frames of {calibration.description} (ONNX Runtime MinMax)")
    with tempfile.TemporaryDirectory(prefix="trtseg-int8cpu-") as workdir:
        private = Path(workdir) / "fp32.onnx"  # the quantizer only ever sees a copy (the original's hash keys the cache)
        shutil.copyfile(fp32_onnx, private)
        np.save(Path(workdir) / "frames.npy", whole_runs(calibration.frames, batch))  # N frames per run
        job = {"workdir": workdir, "onnx": str(private), "out": str(Path(workdir) / "int8cpu.onnx"),
               "frames": str(Path(workdir) / "frames.npy"), "input_name": input_name, "ranges": cached,
               "recipe": asdict(recipe), "batch": batch}
        result = run_isolated(_quantize_worker, job, "ort-quantize-static")
        model = onnx.load(job["out"])
    if lookup is not None and cached is not None:
        lookup = fit_to_graph(lookup, result["tensors"], cache_path or "")  # the worker recalibrated if it misfit
        cache_status = lookup.status
    problems = cpu_qdq_problems(model, recipe)
    if problems:
        raise QuantizationError("the int8-cpu graph is not what ONNX Runtime's CPU recipe gives:\n  "
                                + "\n  ".join(problems))
    ranges = {k: [float(v[0]), float(v[1])] for k, v in result["ranges"].items()}
    if cache_path and cache_status != "hit":
        save_scales(cache_path, key, ranges, {"calibration_set": calibration.description, "frames": len(calibration),
                                              "cpu_class": recipe.cpu_class})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_path))
    quantized, _ = quantized_convs(model)
    return Int8Result(out_path, ranges, cache_status, time.perf_counter() - start, quantized)


# ------------------------------------------------------------------------------------------------ graph checks


def quantized_convs(model: Any) -> tuple[int, int]:
    """(Convs whose input and weight are dequantized, all Convs)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]

    def dq(name: str) -> bool:
        node = producers.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    return sum(1 for n in convs if dq(n.input[0]) and dq(n.input[1])), len(convs)


def cpu_qdq_problems(model: Any, recipe: CpuRecipe) -> list[str]:
    """What breaks the recipe: every Conv's activation is quantized to ``recipe.activation`` (zero point 0 when
    symmetric), every weight is int8 per output channel (axis 0) from an int8 initializer, and only Conv tensors
    are quantized (each activation QuantizeLinear quantizes a Conv's input or output; ONNX Runtime quantizes
    Conv outputs too, so that its optimiser can fuse Q/DQ around a Conv into QLinearConv)."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    want_act = TensorProto.UINT8 if recipe.activation == "uint8" else TensorProto.INT8
    problems: list[str] = []
    conv_tensors: set[str] = set()
    for node in model.graph.node:
        if node.op_type == "Conv":
            conv_tensors.update(node.output)
            x = producers.get(node.input[0])  # the float tensor behind the activation's Q/DQ pair
            q = producers.get(x.input[0]) if x is not None and x.op_type == "DequantizeLinear" else None
            conv_tensors.add(q.input[0] if q is not None and q.op_type == "QuantizeLinear" else node.input[0])
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and node.input[0] not in conv_tensors:
            problems.append(f"{node.name}: quantizes {node.input[0]!r}, which is no Conv's input or output")
    quantized, total = quantized_convs(model)
    excluded = sum(1 for n in model.graph.node if n.op_type == "Conv" and n.name in recipe.exclude)
    if quantized != total - excluded:
        problems.append(f"{total - excluded - quantized} of {total - excluded} Convs are not quantized")
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        x, w = producers.get(node.input[0]), producers.get(node.input[1])
        if x is None or w is None or x.op_type != "DequantizeLinear" or w.op_type != "DequantizeLinear":
            continue
        zp = inits.get(x.input[2]) if len(x.input) > 2 else None
        if zp is None or zp.data_type != want_act:
            problems.append(f"{node.name}: activation is not {recipe.activation}")
        elif recipe.activation == "int8" and np.any(numpy_helper.to_array(zp) != 0):
            problems.append(f"{node.name}: int8 activation is not symmetric")
        weight = inits.get(w.input[0])
        scale = inits.get(w.input[1])
        axis = next((a.i for a in w.attribute if a.name == "axis"), 1)
        if weight is None or weight.data_type != TensorProto.INT8:
            problems.append(f"{node.name}: weight is not an int8 initializer")
        elif scale is None or len(scale.dims) != 1 or axis != 0 or scale.dims[0] != weight.dims[0]:
            problems.append(f"{node.name}: weight is not quantized per output channel (axis 0)")
    return problems


# ----------------------------------------------------------------------------------------- quantizer subprocess


class _FrameReader:
    """ONNX Runtime's CalibrationDataReader protocol over a frame array, one graph input (``batch`` frames, whole
    runs only) per call; ``__len__`` and ``set_range`` (in runs) let quantize_static merge per run
    (CalibStridedMinMax), so memory stays flat. Min/max ranges merge exactly, so the batch does not change them."""

    def __init__(self, name: str, frames: np.ndarray, batch: int = 1) -> None:
        self.name, self.frames, self.batch = name, frames, batch
        self.set_range(0, len(self))

    def __len__(self) -> int:
        return len(self.frames) // self.batch

    def set_range(self, start_index: int, end_index: int) -> None:
        self._indices = iter(range(start_index, end_index))

    def get_next(self) -> dict[str, np.ndarray] | None:
        i = next(self._indices, None)
        if i is None:
            return None
        return {self.name: np.ascontiguousarray(self.frames[i * self.batch : (i + 1) * self.batch])}


def _quantize_worker(job: dict[str, Any]) -> None:  # separate process, never with modelopt loaded
    try:
        logging.getLogger().setLevel(logging.ERROR)
        import onnx
        from onnxruntime.quantization import CalibrationMethod as OrtMethod
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.calibrate import MinMaxCalibrater, TensorsData, save_tensors_data
        from onnxruntime.quantization.shape_inference import quant_pre_process

        work = Path(job["workdir"])
        recipe = job["recipe"]
        pre = work / "pre.onnx"
        quant_pre_process(job["onnx"], str(pre))
        # the tensors ORT's calibrator ranges for Conv (a cached set must be exactly these)
        tensors, _ = MinMaxCalibrater(pre, list(OP_TYPES)).select_tensors_to_calibrate(onnx.load(str(pre)))
        ort_cache = work / "ort_ranges.json"
        ranges = job["ranges"]
        if ranges is not None and set(ranges) == set(tensors):
            data = {k: (np.array([v[0]], np.float32), np.array([v[1]], np.float32)) for k, v in ranges.items()}
            save_tensors_data(TensorsData(OrtMethod.MinMax, data), ort_cache)
            reader = None
        else:
            reader = _FrameReader(job["input_name"], np.load(job["frames"], mmap_mode="r"), job["batch"])
        symmetric = recipe["activation"] == "int8"
        quantize_static(
            str(pre), job["out"], reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(OP_TYPES),
            per_channel=True, reduce_range=recipe["reduce_range"], nodes_to_exclude=list(recipe["exclude"]) or None,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=OrtMethod.MinMax, calibration_cache_path=str(ort_cache),
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True, "CalibStridedMinMax": 1},
        )
        used = {}
        with ort_cache.open() as f:  # ORT wrote the ranges it used (or read ours back)
            for name, item in json.load(f)["data"].items():
                used[name] = [float(np.asarray(item[end]["data"], np.float64).reshape(-1)[0])
                              for end in ("lowest", "highest")]
        Path(job["result_file"]).write_text(json.dumps({"ranges": used, "tensors": sorted(tensors)}))
    except BaseException:  # noqa: BLE001 - reported to the parent verbatim
        Path(job["result_file"]).write_text(json.dumps({"error": traceback.format_exc()}))


if __name__ == "__main__":  # the quantizer subprocess: python -m trt_segmentation.precision.int8_cpu WORKER JOB.json
    import sys

    {"_quantize_worker": _quantize_worker}[sys.argv[1]](json.loads(Path(sys.argv[2]).read_text()))
