"""The one place that drives a TensorRT builder: real TensorRT 8.5-10.x (Jetson/desktop GPU) or TensorRT-RTX.

Both expose the same Python API for what we use (Builder, OnnxParser, IBuilderConfig). This is the one place
that finds either (:func:`real_tensorrt`, :func:`tensorrt_rtx`, :func:`load_tensorrt`); the parse check and the
pipeline use it too. Real TensorRT is found by an attribute check (``tensorrt.Builder``), never by a bare
``import tensorrt``: the type stubs (tensorrt-stubs) installed into site-packages make that import succeed as an
empty namespace package. Objects are annotated with the ``tensorrt`` stubs and the module is type-checked with mypy (test/test_typecheck_engine.py); what cannot run here (a real GPU build, DLA,
the implicit INT8 calibrator) is exercised by the on-target check (docs/precision.md).
"""

from __future__ import annotations

import ctypes
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, SegmentationError

if TYPE_CHECKING:
    import tensorrt as trt_api

LOG = logging.getLogger(__name__)


class TensorRTUnavailable(RuntimeError, SegmentationError):
    """No TensorRT builder that can make this engine is installed here."""


@dataclass(frozen=True)
class TensorRT:
    """A loaded TensorRT flavour: ``module`` is ``tensorrt`` or ``tensorrt_rtx_bindings``."""

    module: Any
    builder: str  # 'tensorrt' | 'tensorrt-rtx'
    version: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def strongly_typed_supported(self) -> bool:
        return self.builder == "tensorrt-rtx" or self.major >= 10


NO_TENSORRT_HELP = (
    "real TensorRT is not installed here (needed to build a .engine that the node can load: "
    "`pip install tensorrt` on an x86 machine with an NVIDIA GPU, or the python3-libnvinfer package of JetPack "
    "on a Jetson)"
)


def real_tensorrt(need: str = "Builder") -> TensorRT | None:
    """The real ``tensorrt`` package if it is installed and usable (not just type stubs), i.e. it imports (its
    shared libraries load) and has ``need``: ``Builder`` to build engines, ``Runtime`` to run them (the runtime
    backend asks for that). The one detection of real TensorRT in the package."""
    try:
        import tensorrt as trt
    except (ImportError, OSError):  # OSError: the module is there but a shared library of it does not load
        return None
    if not hasattr(trt, need):
        return None  # stubs-only namespace package
    return TensorRT(trt, "tensorrt", str(trt.__version__))


RTX_INSTALL = "pip install tensorrt-rtx-cu13-libs==1.7.1.116 tensorrt-rtx-cu13-bindings==1.7.1.116"


def tensorrt_rtx() -> TensorRT | None:
    """TensorRT-RTX if it is installed (it parses ONNX and builds strongly typed engines without a GPU)."""
    try:
        # isort: off
        import tensorrt_rtx_libs  # noqa: F401  (loads the shared libraries the bindings need)
        import tensorrt_rtx_bindings as trt
        # isort: on
    except (ImportError, OSError):
        return None
    return TensorRT(trt, "tensorrt-rtx", str(trt.__version__))


def load_tensorrt(builder: str = "auto") -> TensorRT:
    """``tensorrt`` | ``tensorrt-rtx`` | ``auto`` (real TensorRT, else TensorRT-RTX)."""
    if builder in ("tensorrt", "auto"):
        found = real_tensorrt()
        if found is not None:
            return found
        if builder == "tensorrt":
            raise TensorRTUnavailable(NO_TENSORRT_HELP)
    if builder in ("tensorrt-rtx", "auto"):
        found = tensorrt_rtx()
        if found is not None:
            return found
        if builder == "tensorrt-rtx":
            raise TensorRTUnavailable(f"TensorRT-RTX is not installed; {RTX_INSTALL}")
        raise TensorRTUnavailable(NO_TENSORRT_HELP + f"; TensorRT-RTX is not installed either ({RTX_INSTALL})")
    raise InputError(f"unknown builder {builder!r}; choose tensorrt, tensorrt-rtx or auto")


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of CUDA device ``device`` via the driver API; ('none', 'none')
    if no driver/GPU (ctypes only: no pycuda or cuda-python needed at build time)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return "none", "none"
    handle = ctypes.c_int()
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGet(ctypes.byref(handle), int(device)) != 0:
        return "none", "none"
    buffer = ctypes.create_string_buffer(256)
    major, minor = ctypes.c_int(), ctypes.c_int()
    cuda.cuDeviceGetName(buffer, 256, handle)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, handle)  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, handle)  # ..._MINOR
    return buffer.value.decode(errors="replace"), f"{major.value}.{minor.value}"


def platform_name(device_tree: str | Path = "/proc/device-tree") -> str:
    """The Jetson module this runs on, e.g. 'NVIDIA Jetson AGX Orin (module p3701-0005)'; '' off a Jetson.

    ``model`` in the device tree names the carrier board ('... Developer Kit', or a vendor's product), so an engine
    built on a dev kit would be refused on a production carrier with the same module; the module part number comes
    from ``compatible`` (``nvidia,p3737-0000+p3701-0005``, ``nvidia,p3701-0005``, ``nvidia,tegra234``: the entry
    without '+' is the module). Orin Nano, NX and AGX all report compute capability 8.7, so the sidecar records this
    too; :func:`same_platform` compares two such strings by module."""
    root = Path(device_tree)

    def read(name: str) -> str:
        try:
            path = root / name
            return path.read_text(errors="replace") if path.is_file() else ""
        except OSError:
            return ""

    model = read("model").strip("\x00\n ")
    modules = [m.group(1) for m in (re.fullmatch(r"nvidia,(p\d{4}-\d{4})", c.strip())
                                    for c in read("compatible").split("\x00")) if m]
    if not model and not modules:
        return ""
    name = _CARRIER_WORDS.sub("", model).strip() or "NVIDIA Jetson"
    return f"{name} (module {modules[0]})" if modules else name


_CARRIER_WORDS = re.compile(r"\s*(Engineering Reference )?(Developer Kit|Devkit|DevKit)\s*$")
_MODULE = re.compile(r"\(module (p\d{4}-\d{4})\)")


def same_platform(a: str, b: str) -> bool:
    """Whether two :func:`platform_name` strings (or older sidecars' device-tree model names) name the same
    Jetson module: by part number where both have one, else by the model name without the carrier's words."""
    part_a, part_b = _MODULE.search(a), _MODULE.search(b)
    if part_a and part_b:
        return part_a.group(1) == part_b.group(1)

    def name(text: str) -> str:
        return _CARRIER_WORDS.sub("", _MODULE.sub("", text)).strip()

    return name(a) == name(b)


@dataclass
class BuildOptions:
    workspace_mib: int | None = None  # None: TensorRT's default (all device memory); build_request.workspace_limit_mib
    timing_cache: Path | None = None  # read if present, written after the build
    opt_level: int | None = None  # builder optimisation level 0-5 (TensorRT >= 8.6; default 3)
    strongly_typed: bool = True  # precision from the ONNX (TensorRT >= 10, TRT-RTX)
    fp16: bool = False  # builder flags: the weakly typed / implicit path (TensorRT < 10 or --implicit)
    int8: bool = False
    int8_calibrator: Any = None  # an IInt8Calibrator for the implicit path
    fp16_layers: Sequence[str] = ()  # regexes: layers pinned to FP16 (implicit mixed precision)
    fp32_layers: Sequence[str] = ()  # regexes: layers pinned to FP32
    dla_core: int = -1  # >= 0: build for that DLA core, unsupported layers fall back to the GPU
    implicit: bool = False  # the FP32 ONNX + builder flags (+ calibrator): recorded as 'implicit', not 'weak'
    tf32: bool = False  # TF32 convolutions in FP32 layers (TensorRT's default is on; off keeps fp32 engines at
    # FP32 accuracy, which the on-target check's 0.999 label agreement with ONNX Runtime assumes)
    progress: Callable[[str], None] | None = None
    verbose: bool = False  # TensorRT's INFO log instead of errors only
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    engine: bytes
    seconds: float
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    layers: int
    typing: str  # 'strong' | 'weak' | 'implicit' (metadata.TYPINGS)


class BuildError(RuntimeError, SegmentationError):
    """Parsing or building failed; the message carries the parser/builder errors."""


def _tensors(network: trt_api.INetworkDefinition, inputs: bool) -> list[dict[str, Any]]:
    count = network.num_inputs if inputs else network.num_outputs
    tensors = [network.get_input(i) if inputs else network.get_output(i) for i in range(count)]
    return [
        {"name": t.name, "shape": [int(t.shape[i]) for i in range(len(t.shape))], "dtype": str(t.dtype).split(".")[-1]}
        for t in tensors
    ]


def _parse(
    trt: TensorRT, builder: trt_api.Builder, logger: trt_api.ILogger, onnx_path: Path, strongly_typed: bool
) -> tuple[Any, Any]:
    mod = trt.module
    flags = 0
    if trt.builder == "tensorrt":
        if strongly_typed:
            flags |= 1 << int(mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        elif trt.major < 10:
            flags |= 1 << int(mod.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = mod.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            text = str(parser.get_error(i))
            if "cudaError" in text and "insufficient" in text:
                continue  # spurious line after every real error on a machine without a GPU driver
            errors.append(text)
        raise BuildError(f"TensorRT {trt.version} cannot parse {onnx_path}:\n  " + "\n  ".join(errors))
    return network, parser


_FLOAT_NAMES = ("FLOAT", "HALF")


def _dtype_name(dtype: Any) -> str:
    return str(getattr(dtype, "name", None) or str(dtype).split(".")[-1]).upper()


def layer_precision_plan(trt: TensorRT, network: trt_api.INetworkDefinition, options: BuildOptions) -> list[tuple[int, str]]:
    """Implicit mixed precision: (layer index, 'float32' | 'float16') for each layer a rule pins.

    Only floating-point compute is pinned, as Polygraphy does: shape and constant layers are skipped, and so is
    every layer with a non-float input or output (the uint8 input cast, ArgMax, the labels cast, shape
    arithmetic). Types come from the tensors themselves: ``get_output_type()`` reports kFLOAT for an output
    whose type was never set, whatever the tensor holds."""
    mod = trt.module
    fp16 = [re.compile(p) for p in options.fp16_layers]
    fp32 = [re.compile(p) for p in options.fp32_layers]
    skip_types = {getattr(mod.LayerType, n) for n in ("SHAPE", "CONSTANT") if hasattr(mod.LayerType, n)}
    plan = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in skip_types:
            continue
        tensors = [layer.get_input(j) for j in range(layer.num_inputs)] + [layer.get_output(j) for j in
                                                                             range(layer.num_outputs)]
        if any(t is not None and _dtype_name(t.dtype) not in _FLOAT_NAMES for t in tensors):
            continue
        if any(p.search(layer.name) for p in fp32):
            plan.append((i, "float32"))
        elif any(p.search(layer.name) for p in fp16):
            plan.append((i, "float16"))
    return plan


def _pin_layer_precisions(trt: TensorRT, network: trt_api.INetworkDefinition, options: BuildOptions) -> int:
    """Implicit path, mixed precision: force the planned layers (and their float outputs) to FP16/FP32."""
    mod = trt.module
    plan = layer_precision_plan(trt, network, options)
    for index, target in plan:
        layer = network.get_layer(index)
        dtype = mod.float32 if target == "float32" else mod.float16
        layer.precision = dtype
        for j in range(layer.num_outputs):
            layer.set_output_type(j, dtype)  # every output is float: layer_precision_plan skipped the others
    return len(plan)


def make_logger(trt: TensorRT, verbose: bool = False) -> Any:
    """A TensorRT logger that forwards to :mod:`logging` and drops the 'CUDA driver version is insufficient' lines
    TensorRT-RTX prints on a machine without a GPU driver (noise: it parses and builds regardless)."""
    mod = trt.module
    threshold = mod.ILogger.Severity.INFO if verbose else mod.ILogger.Severity.WARNING

    class Logger(mod.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            mod.ILogger.__init__(self)
            self.seen: set[str] = set()

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) > int(threshold) or ("cudaError 35" in msg or "driver version is insufficient" in msg):
                return
            if msg in self.seen:  # e.g. one 'converting scales' warning per Q/DQ layer says nothing new
                return
            self.seen.add(msg)
            level = logging.ERROR if int(severity) <= int(mod.ILogger.Severity.ERROR) else logging.WARNING
            if int(severity) > int(mod.ILogger.Severity.WARNING):
                level = logging.INFO
            LOG.log(level, "[TensorRT] %s", msg)

    return Logger()


class _Progress:
    """Adapter from TensorRT's IProgressMonitor phases to log lines (created only when the API has it)."""

    @staticmethod
    def create(trt: TensorRT, report: Callable[[str], None]) -> Any:
        base: Any = getattr(trt.module, "IProgressMonitor", None)
        if base is None:
            return None

        class Monitor(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                base.__init__(self)
                self._depth: dict[str, int] = {}

            def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
                depth = self._depth.get(parent_phase or "", -1) + 1
                self._depth[phase_name] = depth
                if depth <= 1:
                    report(f"{'  ' * depth}{phase_name} ({num_steps} steps)")

            def step_complete(self, phase_name: str, step: int) -> bool:
                return True

            def phase_finish(self, phase_name: str) -> None:
                self._depth.pop(phase_name, None)

        return Monitor()


def typing_of(trt: TensorRT, options: BuildOptions) -> str:
    """How ``trt`` types a network built with ``options``: 'strong' (precision from the ONNX), 'weak' (the variant
    with builder flags: TensorRT < 10, DLA) or 'implicit' (the FP32 ONNX with flags and a calibrator)."""
    if (options.strongly_typed and trt.strongly_typed_supported) or trt.builder == "tensorrt-rtx":
        return "strong"
    return "implicit" if options.implicit or options.int8_calibrator is not None else "weak"


#: how the engine inspector writes an INT8 tensor format ('Thirty-two wide channel vectorized row major Int8 format')
_INT8_FORMAT = re.compile(r"\bint8\b", re.IGNORECASE)


def int8_layer_count(engine: Any, trt: TensorRT) -> int | None:
    """How many layers of a deserialized ``engine`` read or write INT8 tensors, from TensorRT's engine inspector
    (TensorRT >= 8.2; the engine built with ``ProfilingVerbosity.DETAILED``, as :func:`build_serialized` does).
    Reformatting layers (format conversions around INT8 layers) are left out. None when the inspector or the
    detailed layer information is not there (an older engine, or TensorRT without the inspector)."""
    import json

    fmt = getattr(getattr(trt.module, "LayerInformationFormat", None), "JSON", None)
    if fmt is None or not hasattr(engine, "create_engine_inspector"):
        return None
    try:
        info = json.loads(engine.create_engine_inspector().get_engine_information(fmt))
    except (ValueError, TypeError, AttributeError, RuntimeError):
        return None
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    if not layers or not all(isinstance(layer, dict) for layer in layers):
        return None  # names only: the engine was built without detailed profiling verbosity
    count = 0
    for layer in layers:
        if "Reformat" in str(layer.get("LayerType", "")) or str(layer.get("Name", "")).startswith("Reformatting"):
            continue
        formats = [str(t.get("Format/Datatype", "")) for t in layer.get("Inputs", []) + layer.get("Outputs", [])
                   if isinstance(t, dict)]
        count += any(_INT8_FORMAT.search(f) for f in formats)
    return count


def device_memory_size(engine: trt_api.ICudaEngine) -> int:
    """Bytes of device memory each execution context of ``engine`` allocates (activations and the chosen tactics'
    scratch; the weights are the engine's, once): ``device_memory_size_v2`` where TensorRT has it (>= 10.1, and
    TensorRT-RTX, whose engines have only that one), else ``device_memory_size`` (8.5-10.0). On a Jetson that memory
    is the system's RAM, once per in-flight slot."""
    v2 = getattr(engine, "device_memory_size_v2", None)
    return int(v2 if v2 is not None else engine.device_memory_size)


def measure_device_memory(trt: TensorRT, serialized: bytes, dla_core: int = -1) -> int | None:
    """:func:`device_memory_size` of a just built ``serialized`` engine, deserialized for it on the current CUDA
    device (the build's); None where that cannot be done here: TensorRT-RTX without a GPU (it deserializes on a GPU
    only), or an engine this TensorRT does not deserialize (logged)."""
    if trt.builder == "tensorrt-rtx" and gpu_identity()[0] == "none":
        return None
    runtime: trt_api.Runtime = trt.module.Runtime(make_logger(trt))
    if dla_core >= 0:
        runtime.DLA_core = int(dla_core)
    try:
        engine = runtime.deserialize_cuda_engine(serialized)
    except RuntimeError as exc:  # e.g. out of memory next to a running node: the engine itself is fine
        LOG.warning("the engine just built does not deserialize here (%s); its device memory is not recorded", exc)
        return None
    if engine is None:
        LOG.warning("the engine just built does not deserialize here; its device memory is not recorded")
        return None
    return device_memory_size(engine)


def build_serialized(trt: TensorRT, onnx_path: str | Path, options: BuildOptions) -> BuildResult:
    """Parse ``onnx_path`` and build a serialized engine with ``options``; :class:`BuildError` on failure."""
    mod = trt.module
    onnx_path = Path(onnx_path)
    logger = make_logger(trt, verbose=options.verbose)
    builder: trt_api.Builder = mod.Builder(logger)
    strongly_typed = options.strongly_typed and trt.strongly_typed_supported
    if options.strongly_typed and not strongly_typed:
        LOG.info("TensorRT %s has no strongly typed networks; using builder precision flags", trt.version)
    network, _parser = _parse(trt, builder, logger, onnx_path, strongly_typed)
    config: trt_api.IBuilderConfig = builder.create_builder_config()
    verbosity = getattr(mod, "ProfilingVerbosity", None)
    if verbosity is not None:  # each layer's tensor formats in the engine, for the inspector (int8_layer_count)
        config.profiling_verbosity = verbosity.DETAILED
    if options.workspace_mib is not None:
        config.set_memory_pool_limit(mod.MemoryPoolType.WORKSPACE, int(options.workspace_mib) << 20)
    if options.opt_level is not None:
        if not hasattr(config, "builder_optimization_level"):
            raise BuildError(f"TensorRT {trt.version} has no builder optimisation level (needs >= 8.6)")
        config.builder_optimization_level = int(options.opt_level)
    typing = typing_of(trt, options)
    if typing != "strong":
        if options.fp16:
            config.set_flag(mod.BuilderFlag.FP16)
        if options.int8:
            config.set_flag(mod.BuilderFlag.INT8)
            if options.int8_calibrator is not None:
                config.int8_calibrator = options.int8_calibrator
        if options.fp16_layers or options.fp32_layers:
            pinned = _pin_layer_precisions(trt, network, options)
            config.set_flag(mod.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            LOG.info("pinned the precision of %d layers", pinned)
    tf32_flag = getattr(getattr(mod, "BuilderFlag", None), "TF32", None)
    if tf32_flag is not None and not options.tf32:
        config.clear_flag(tf32_flag)
    if options.int8_calibrator is not None and hasattr(options.int8_calibrator, "check_network_input"):
        options.int8_calibrator.check_network_input(_tensors(network, True)[0])
    if options.dla_core >= 0:
        if trt.builder != "tensorrt":
            raise BuildError("DLA needs real TensorRT on a Jetson (TensorRT-RTX has no DLA)")
        cores = int(getattr(builder, "num_DLA_cores", 0))
        if options.dla_core >= cores:
            raise BuildError(f"DLA core {options.dla_core} was asked for, this device has {cores} DLA core(s) (Orin "
                             "Nano has none); drop --dla-core to build for the GPU")
        if not (options.fp16 or options.int8):
            raise BuildError("DLA runs FP16 and INT8 only; build fp16, int8 or mixed for DLA (fp32 runs on the GPU)")
        config.default_device_type = mod.DeviceType.DLA
        config.DLA_core = int(options.dla_core)
        config.set_flag(mod.BuilderFlag.GPU_FALLBACK)  # layers DLA cannot run go to the GPU
    timing_cache = None
    if options.timing_cache is not None and trt.builder == "tensorrt-rtx" and gpu_identity()[0] == "none":
        LOG.info("timing cache not used: TensorRT-RTX times no tactics without a GPU")
    elif options.timing_cache is not None:
        blob = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
        timing_cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(timing_cache, False):
            LOG.warning("timing cache %s does not fit this TensorRT/GPU; starting a fresh one", options.timing_cache)
            timing_cache = config.create_timing_cache(b"")
            config.set_timing_cache(timing_cache, True)
    if options.progress is not None:
        monitor = _Progress.create(trt, options.progress)
        if monitor is not None:
            config.progress_monitor = monitor
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise BuildError(f"TensorRT {trt.version} failed to build {onnx_path} (see the TensorRT log above)")
    if options.timing_cache is not None and timing_cache is not None:
        updated = config.get_timing_cache()
        if updated is not None:
            options.timing_cache.parent.mkdir(parents=True, exist_ok=True)
            options.timing_cache.write_bytes(bytes(updated.serialize()))
    return BuildResult(
        engine=bytes(serialized),
        seconds=seconds,
        inputs=_tensors(network, True),
        outputs=_tensors(network, False),
        layers=network.num_layers,
        typing=typing,
    )
