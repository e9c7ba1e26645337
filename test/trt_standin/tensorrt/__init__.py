"""A recording stand-in for the Python API of TensorRT 8.5-10.x (``import tensorrt``), for tests of the vehicle's
build commands on a machine (or a Python 3.8) without TensorRT and without a GPU.

It is put on ``PYTHONPATH`` of a subprocess only (test/vehicle_standin.py), never imported by a test process.
What it does, and what it does not: it parses the ONNX with ``onnx`` (one layer per node, named after it, as
TensorRT's parser does) and refuses opsets newer than the version's parser; the builder reads the builder flags,
the per-layer precisions, the DLA settings and the INT8 calibrator the way TensorRT calls them (a table whose
``TRT-<version>-EntropyCalibration2`` header is not this version's is not accepted; then it asks the calibrator
for images, and fails when it gets none), and decides each layer's precision from them with a simple rule. The
"engine" is a JSON record of those decisions and of the memory pool limits set (the workspace), which
``Runtime.deserialize_cuda_engine`` and the engine inspector read back (the inspector in TensorRT's JSON layout:
``Layers`` with ``Inputs``/``Outputs`` and their ``Format/Datatype``). The engine's ``device_memory_size`` (and
``device_memory_size_v2`` from 10.1, as TensorRT has it) is the sum of every layer's output bytes at the layer's
precision: a number of the right kind, not TensorRT's (which reuses activation memory and adds tactic scratch).
Nothing is computed and nothing runs: an execution context cannot execute.

Environment: ``TRT_STANDIN_VERSION`` (default 8.5.2), ``TRT_STANDIN_DLA_CORES`` (default 0),
``TRT_STANDIN_REJECT_TABLE=1`` (refuse every calibration table, as a TensorRT that does not take it would).
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
import time
from typing import Any, Dict, List, Optional

__version__ = os.environ.get("TRT_STANDIN_VERSION", "8.5.2")
_MAJOR, _MINOR, _PATCH = ([int(p) for p in __version__.split(".")] + [0, 0, 0])[:3]
#: NV_TENSORRT_VERSION as TensorRT computes it (NvInferVersion.h): major*1000 before 10, major*10000 from 10
VERSION_CODE = (_MAJOR * 10000 if _MAJOR >= 10 else _MAJOR * 1000) + _MINOR * 100 + _PATCH
_MAX_OPSET = 17 if _MAJOR < 10 else 20


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    INT64 = 8


float32, float16, int8, int32, uint8, int64 = (DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32,
                                               DataType.UINT8, DataType.INT64)
globals()["bool"] = DataType.BOOL
_ONNX_TYPES = {1: DataType.FLOAT, 10: DataType.HALF, 3: DataType.INT8, 6: DataType.INT32, 9: DataType.BOOL,
               2: DataType.UINT8, 7: DataType.INT64}
_FORMATS = {DataType.FLOAT: "Row major linear FP32", DataType.HALF: "Channel major FP16 format where channel % 8 == 0",
            DataType.INT8: "Thirty-two wide channel vectorized row major Int8 format",
            DataType.INT32: "Row major linear Int32", DataType.UINT8: "Row major linear UInt8",
            DataType.BOOL: "Row major linear Bool", DataType.INT64: "Row major linear Int64"}


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:
        pass


class Logger(ILogger):
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = list(ILogger.Severity)

    def __init__(self, min_severity: Any = ILogger.Severity.WARNING) -> None:
        ILogger.__init__(self)
        self.min_severity = min_severity

    def log(self, severity: Any, msg: str) -> None:
        if int(severity) <= int(self.min_severity):
            print(f"[TensorRT stand-in] {msg}", file=sys.stderr)


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0
    STRONGLY_TYPED = 1


class BuilderFlag(enum.IntEnum):
    FP16 = 0
    INT8 = 1
    GPU_FALLBACK = 3
    TF32 = 6
    PREFER_PRECISION_CONSTRAINTS = 10
    OBEY_PRECISION_CONSTRAINTS = 11


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class DeviceType(enum.IntEnum):
    GPU = 0
    DLA = 1


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class LayerInformationFormat(enum.IntEnum):
    ONELINE = 0
    JSON = 1


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    ACTIVATION = 2
    POOLING = 3
    ELEMENTWISE = 5
    CONCATENATION = 7
    SHUFFLE = 14
    RESIZE = 24
    MATRIX_MULTIPLY = 25
    CONSTANT = 19
    SHAPE = 31
    IDENTITY = 20
    TOPK = 27
    QUANTIZE = 40
    DEQUANTIZE = 41
    OTHER = 99


_LAYER_TYPES = {"Conv": LayerType.CONVOLUTION, "Relu": LayerType.ACTIVATION, "MaxPool": LayerType.POOLING,
                "AveragePool": LayerType.POOLING, "GlobalAveragePool": LayerType.POOLING,
                "Add": LayerType.ELEMENTWISE, "Sub": LayerType.ELEMENTWISE, "Mul": LayerType.ELEMENTWISE,
                "Div": LayerType.ELEMENTWISE, "Concat": LayerType.CONCATENATION, "Transpose": LayerType.SHUFFLE,
                "Reshape": LayerType.SHUFFLE, "Resize": LayerType.RESIZE, "MatMul": LayerType.MATRIX_MULTIPLY,
                "Constant": LayerType.CONSTANT, "Shape": LayerType.SHAPE, "Cast": LayerType.IDENTITY,
                "Identity": LayerType.IDENTITY, "ArgMax": LayerType.TOPK, "QuantizeLinear": LayerType.QUANTIZE,
                "DequantizeLinear": LayerType.DEQUANTIZE}
#: layers that run INT8 when every activation input has a scale (implicit) or comes from a DequantizeLinear (Q/DQ)
_INT8_CAPABLE = {"Conv", "MatMul", "Gemm"}
_FLOAT_TYPES = (DataType.FLOAT, DataType.HALF)
_ITEMSIZE = {DataType.FLOAT: 4, DataType.HALF: 2, DataType.INT8: 1, DataType.INT32: 4, DataType.BOOL: 1,
             DataType.UINT8: 1, DataType.INT64: 8}


def _nbytes(tensor: "ITensor", dtype: DataType) -> int:
    count = 1
    for dim in tensor.shape:
        count *= max(int(dim), 1)
    return count * _ITEMSIZE[dtype]


class ITensor:
    def __init__(self, name: str, dtype: DataType, shape: List[int]) -> None:
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)


class ILayer:
    def __init__(self, name: str, op_type: str, inputs: List[Optional[ITensor]], outputs: List[ITensor]) -> None:
        self.name, self.op_type, self.type = name, op_type, _LAYER_TYPES.get(op_type, LayerType.OTHER)
        self._inputs, self._outputs = inputs, outputs
        self.precision_is_set = False
        self._precision = DataType.FLOAT
        self.pinned_outputs: Dict[int, DataType] = {}

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_input(self, index: int) -> Optional[ITensor]:
        return self._inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self._outputs[index]

    @property
    def precision(self) -> DataType:
        return self._precision

    @precision.setter
    def precision(self, dtype: DataType) -> None:
        self._precision, self.precision_is_set = DataType(dtype), True

    def set_output_type(self, index: int, dtype: DataType) -> None:
        self.pinned_outputs[index] = DataType(dtype)


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: List[ITensor] = []
        self.outputs: List[ITensor] = []
        self.layers: List[ILayer] = []
        self.weights: set = set()  # initializer and Constant outputs
        self.producers: Dict[str, ILayer] = {}

    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))
    num_layers = property(lambda self: len(self.layers))

    def get_input(self, index: int) -> ITensor:
        return self.inputs[index]

    def get_output(self, index: int) -> ITensor:
        return self.outputs[index]

    def get_layer(self, index: int) -> ILayer:
        return self.layers[index]


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        self.network, self.logger, self.errors = network, logger, []  # type: ignore[var-annotated]

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, index: int) -> str:
        return self.errors[index]

    def parse_from_file(self, path: str) -> bool:
        import onnx

        model = onnx.load(path)
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset > _MAX_OPSET:
            self.errors.append(f"ModelImporter: opset {opset} is newer than this parser supports ({_MAX_OPSET})")
            return False
        model = onnx.shape_inference.infer_shapes(model)
        graph, net = model.graph, self.network

        def dims(value: Any) -> List[int]:
            return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]

        types = {v.name: (_ONNX_TYPES.get(v.type.tensor_type.elem_type, DataType.FLOAT), dims(v))
                 for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
        tensors: Dict[str, ITensor] = {}

        def tensor(name: str) -> ITensor:
            if name not in tensors:
                dtype, shape = types.get(name, (DataType.FLOAT, []))
                tensors[name] = ITensor(name, dtype, shape)
            return tensors[name]

        net.weights = {i.name for i in graph.initializer}
        net.inputs = [tensor(i.name) for i in graph.input if i.name not in net.weights]
        for index, node in enumerate(graph.node):
            if node.op_type == "Constant":
                net.weights.update(node.output)
            layer = ILayer(node.name or f"{node.op_type}_{index}", node.op_type,
                           [tensor(n) if n else None for n in node.input], [tensor(n) for n in node.output])
            net.layers.append(layer)
            for out in node.output:
                net.producers[out] = layer
        net.outputs = [tensor(o.name) for o in graph.output]
        return True


class IInt8EntropyCalibrator2:
    def __init__(self) -> None:
        pass


class ITimingCache:
    def __init__(self, blob: bytes) -> None:
        self.blob = bytes(blob)

    def serialize(self) -> bytes:
        return self.blob or b"standin-timing-cache"


class IBuilderConfig:
    def __init__(self) -> None:
        self.flags: set = set()
        self.pools: Dict[str, int] = {}
        self.int8_calibrator: Any = None
        self.default_device_type = DeviceType.GPU
        self.DLA_core = -1
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.builder_optimization_level = 3
        self._cache: Optional[ITimingCache] = None

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(BuilderFlag(flag))

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags.discard(BuilderFlag(flag))

    def get_flag(self, flag: BuilderFlag) -> bool:
        return BuilderFlag(flag) in self.flags

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pools[MemoryPoolType(pool).name] = int(size)

    def create_timing_cache(self, blob: bytes) -> ITimingCache:
        return ITimingCache(blob)

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return True

    def get_timing_cache(self) -> Optional[ITimingCache]:
        return self._cache


_TABLE_LINE = re.compile(r"^(\S.*): ([0-9a-fA-F]{8})$")


def _read_table(blob: Optional[bytes], logger: ILogger) -> Optional[Dict[str, str]]:
    """The table's entries when TensorRT would take it (its own version and algorithm in the header)."""
    if not blob:
        return None
    lines = bytes(blob).decode("ascii", "replace").strip().splitlines()
    want = f"TRT-{VERSION_CODE}-EntropyCalibration2"
    if os.environ.get("TRT_STANDIN_REJECT_TABLE"):
        logger.log(ILogger.Severity.WARNING, "the calibration table is not used (TRT_STANDIN_REJECT_TABLE), calibrating")
        return None
    if not lines or lines[0].strip() != want:
        logger.log(ILogger.Severity.WARNING, f"calibration table header {lines[0] if lines else ''!r} is not {want!r}:"
                                             " the table is not used, calibrating")
        return None
    entries = {}
    for line in lines[1:]:
        match = _TABLE_LINE.match(line.strip())
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


class Builder:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.num_DLA_cores = int(os.environ.get("TRT_STANDIN_DLA_CORES", "0"))
        self.platform_has_fast_int8 = True

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> Optional[bytes]:
        strong = (network.flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED)) != 0
        int8_flag, fp16_flag = BuilderFlag.INT8 in config.flags, BuilderFlag.FP16 in config.flags
        scales: Dict[str, str] = {}
        if int8_flag and config.int8_calibrator is not None:
            calibrator = config.int8_calibrator
            table = _read_table(calibrator.read_calibration_cache(), self.logger)
            if table is None:  # calibrate: ask for the network inputs until the calibrator has none left
                names = [t.name for t in network.inputs]
                fed = 0
                while calibrator.get_batch(names):
                    fed += 1
                if not fed:
                    self.logger.log(ILogger.Severity.ERROR, "Calibration failure occurred with no scaling factors "
                                                           "detected. This could be due to no int8 calibrator or "
                                                           "insufficient custom scales for network layers.")
                    return None
                table = {n: "3c000000" for layer in network.layers for n in
                         [t.name for t in layer._outputs]}
                calibrator.write_calibration_cache(
                    (f"TRT-{VERSION_CODE}-EntropyCalibration2\n"
                     + "".join(f"{k}: {v}\n" for k, v in sorted(table.items()))).encode())
            scales = table
        dla = config.default_device_type == DeviceType.DLA
        if dla and config.DLA_core >= self.num_DLA_cores:
            self.logger.log(ILogger.Severity.ERROR, f"DLA core {config.DLA_core} does not exist")
            return None
        layers = []
        output_bytes = 0
        for layer in network.layers:
            if layer.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue  # fused into the layers around them, as TensorRT does with Q/DQ pairs
            activations = [t for t in layer._inputs if t is not None and t.name not in network.weights]
            from_dq = [t for t in activations if getattr(network.producers.get(t.name), "op_type", "")
                       == "DequantizeLinear"]
            floating = all(t.dtype in _FLOAT_TYPES for t in activations + layer._outputs)
            if layer.precision_is_set:
                precision = layer.precision
            elif not floating:
                precision = next((t.dtype for t in layer._outputs), DataType.FLOAT)
            elif layer.op_type in _INT8_CAPABLE and activations and (
                    (from_dq and len(from_dq) == len(activations))
                    or (int8_flag and not strong and all(t.name in scales for t in activations))):
                precision = DataType.INT8
            elif fp16_flag and not strong:
                precision = DataType.HALF
            else:
                precision = DataType.FLOAT
            device = "DLA" if dla and precision in (DataType.HALF, DataType.INT8) else "GPU"
            output_bytes += sum(_nbytes(t, precision) for t in layer._outputs)
            layers.append({"name": layer.name, "op": layer.op_type, "precision": precision.name, "device": device,
                           "inputs": [t.name for t in activations], "outputs": [t.name for t in layer._outputs]})
        record = {"standin": __version__, "flags": sorted(f.name for f in config.flags), "strongly_typed": strong,
                  "dla_core": config.DLA_core if dla else -1, "calibration_table_entries": len(scales),
                  "profiling_verbosity": ProfilingVerbosity(config.profiling_verbosity).name, "layers": layers,
                  "memory_pools": dict(config.pools), "device_memory_size": output_bytes,
                  "io": [[t.name, "INPUT", t.dtype.name, list(t.shape)] for t in network.inputs]
                  + [[t.name, "OUTPUT", t.dtype.name, list(t.shape)] for t in network.outputs],
                  "built": time.time()}
        return json.dumps(record).encode()


class Dims(tuple):
    pass


class IEngineInspector:
    def __init__(self, record: Dict[str, Any]) -> None:
        self.record = record

    def get_engine_information(self, fmt: LayerInformationFormat) -> str:
        record = self.record
        if record["profiling_verbosity"] != "DETAILED":
            layers: List[Any] = [layer["name"] for layer in record["layers"]]
        else:
            layers = [{"Name": layer["name"], "LayerType": layer["op"],
                       "Inputs": [{"Name": n, "Format/Datatype": _FORMATS[DataType[layer["precision"]]]}
                                  for n in layer["inputs"]],
                       "Outputs": [{"Name": n, "Format/Datatype": _FORMATS[DataType[layer["precision"]]]}
                                   for n in layer["outputs"]]} for layer in record["layers"]]
        return json.dumps({"Layers": layers, "Bindings": [io[0] for io in record["io"]]})


class IExecutionContext:
    def set_tensor_address(self, name: str, pointer: int) -> bool:
        return True

    def execute_async_v3(self, stream: int) -> bool:
        raise RuntimeError("the TensorRT stand-in runs nothing")


class ICudaEngine:
    def __init__(self, record: Dict[str, Any]) -> None:
        self.record = record
        self.num_io_tensors = len(record["io"])

    def get_tensor_name(self, index: int) -> str:
        return self.record["io"][index][0]

    def _io(self, name: str) -> List[Any]:
        return next(io for io in self.record["io"] if io[0] == name)

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode[self._io(name)[1]]

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._io(name)[3])

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType[self._io(name)[2]]

    @property
    def device_memory_size(self) -> int:
        return int(self.record["device_memory_size"])

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext()

    def create_engine_inspector(self) -> IEngineInspector:
        return IEngineInspector(self.record)


if (_MAJOR, _MINOR) >= (10, 1):  # TensorRT 10.1 added the v2 size (and deprecated the first)
    ICudaEngine.device_memory_size_v2 = property(lambda self: int(self.record["device_memory_size"]))  # type: ignore


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger
        self.DLA_core = -1

    def deserialize_cuda_engine(self, blob: bytes) -> Optional[ICudaEngine]:
        try:
            record = json.loads(bytes(blob).decode())
        except (UnicodeDecodeError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("standin") != __version__:
            self.logger.log(ILogger.Severity.ERROR, "engine plan was not built by this TensorRT version")
            return None
        return ICudaEngine(record)
