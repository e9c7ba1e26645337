"""TensorRT backend: a serialized engine on CUDA slots (pycuda streams, page-locked buffers, events).

Thin on purpose: the metadata sidecar is checked before deserialising, in two steps: what needs no TensorRT
first (precision, builder, ONNX hash), then TensorRT version, compute capability and Jetson module; then TensorRT >= 8.5's name-based API (``set_tensor_address`` +
``execute_async_v3``) runs on :class:`SlotPipeline`, which is tested for real on a CUDA GPU with the PyTorch
executor. Binding shapes come from the engine (a batch-N engine: N frames per slot) and must match the sidecar. One execution context per slot: a context must not run on two streams at once. Type-checked with mypy
against ``tensorrt-stubs``; executed only on the target (tools/check_on_target.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import Precision
from ..engine.metadata import (
    EngineMetadata,
    MetadataError,
    check_compatible,
    mib,
    read_metadata,
    rebuild_command,
    scales_sha256_of,
    source_onnx_path,
)
from ..hashing import sha256_file
from ..onnx_metadata import ModelContract
from .backend import BackendError
from .cuda_slots import CudaUnavailable, SlotBackend, SlotPipeline, load_pycuda

#: TensorRT DataType name -> numpy dtype. Our own table rather than ``trt.nptype()``: TensorRT 8.5's nptype builds
#: its table with ``np.bool``, which numpy 1.24 removed, so it raises AttributeError for every dtype there
#: (NVIDIA/TensorRT issues 2557 and 2701). BF16/FP8/INT4 have no numpy dtype and no place in our engines' I/O.
NUMPY_DTYPES: dict[str, type] = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
                      "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}


def dtype_name(trt_dtype: Any) -> str:
    """'FLOAT', 'UINT8', ... for a TensorRT DataType (its enum name), whatever the binding's str() looks like."""
    return str(getattr(trt_dtype, "name", None) or str(trt_dtype).split(".")[-1]).upper()


def numpy_dtype(trt_dtype: Any) -> np.dtype[Any]:
    """The numpy dtype of a TensorRT DataType (or its name); :class:`BackendError` for one without a numpy dtype."""
    name = trt_dtype.upper() if isinstance(trt_dtype, str) else dtype_name(trt_dtype)
    if name not in NUMPY_DTYPES:
        raise BackendError(f"TensorRT tensor type {name} has no numpy dtype; export uint8 input and uint8/int32 labels")
    return np.dtype(NUMPY_DTYPES[name])


class EngineMismatch(BackendError):
    """The engine (or its sidecar) does not fit this TensorRT, GPU, precision or ONNX; rebuild it."""


def require_tensorrt() -> None:
    """:class:`BackendError` unless a real TensorRT with a ``Runtime`` can be imported (the engine adapter's
    detection: type stubs installed into site-packages make ``import tensorrt`` succeed as an empty namespace)."""
    from ..engine.tensorrt_adapter import real_tensorrt

    if real_tensorrt(need="Runtime") is None:
        raise BackendError("TensorRT is not installed (no importable `tensorrt` with a Runtime; type stubs alone do "
                           "not count); use backend:=onnxruntime or install TensorRT (JetPack ships it)")


def contract_from_metadata(meta: EngineMetadata, engine_path: Path | None = None) -> ModelContract:
    data = dict(meta.contract)
    if not data:
        raise EngineMismatch("engine metadata has no model contract; rebuild the engine: " + rebuild_command(meta, engine_path))
    data["mean"] = tuple(data["mean"])
    data["std"] = tuple(data["std"])
    return ModelContract(**data)


def check_engine_metadata(engine_path: Path, meta: EngineMetadata, *, precision: Precision | None,
                          tensorrt_version: str | None = None, compute_capability: str | None = None,
                          onnx_path: Path | None = None, platform: str | None = None) -> None:
    """Raise :class:`EngineMismatch` naming the file, every reason and the exact rebuild command. Checks given as
    None are skipped (the first call, before TensorRT is imported, passes no version or GPU)."""
    onnx_sha = sha256_file(onnx_path) if onnx_path is not None and onnx_path.is_file() else None
    reasons = check_compatible(meta, precision=precision or meta.variant, tensorrt_version=tensorrt_version,
                               compute_capability=compute_capability, onnx_sha256=onnx_sha, builder="tensorrt",
                               platform=platform,
                               scales_sha256=scales_sha256_of(engine_path, meta) if onnx_path is not None else None)
    if reasons:
        expected = ", ".join(part for part in (
            f"TensorRT {tensorrt_version}" if tensorrt_version else "", f"compute capability {compute_capability}"
            if compute_capability else "", f"precision {precision or meta.precision}") if part)
        raise EngineMismatch(f"engine {engine_path} cannot be used here: " + "; ".join(reasons)
                             + f". Expected {expected}. Rebuild it with: {rebuild_command(meta, engine_path)}")


def expected_shapes(contract: ModelContract) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(input, output) shapes of an engine built from the ONNX of ``contract`` (batch axis first, static)."""
    n, h, w = contract.batch, contract.height, contract.width
    shape_in = (n, h, w, 3) if contract.input_format.camera else (n, 3, h, w)
    shape_out = (n, contract.num_classes, h, w) if contract.output == "logits" else (n, h, w)
    return shape_in, shape_out


def check_engine_shapes(engine_path: Path, contract: ModelContract, input_shape: tuple[int, ...],
                        output_shape: tuple[int, ...], rebuild: str) -> None:
    """:class:`EngineMismatch` unless the engine's binding shapes are the ones its sidecar's contract describes: the
    batch above all (a batch-3 engine with a batch-1 sidecar, or the other way round, would feed the wrong rows)."""
    want_in, want_out = expected_shapes(contract)
    if input_shape[:1] != (contract.batch,) or output_shape[:1] != (contract.batch,):
        raise EngineMismatch(f"engine {engine_path} runs batches of {input_shape[0] if input_shape else '?'} (input "
                             f"{input_shape}, output {output_shape}), its sidecar's contract says batch "
                             f"{contract.batch}; rebuild it: {rebuild}")
    if (input_shape, output_shape) != (want_in, want_out):
        raise EngineMismatch(f"engine {engine_path} has input {input_shape} and output {output_shape}, its sidecar's "
                             f"contract describes {want_in} -> {want_out}; rebuild it: {rebuild}")


class TensorRtBackend(SlotBackend):
    """Loads ``<model>_<H>x<W>[_b<N>]_<precision>.engine`` after checking its ``.json`` sidecar; the batch (frames
    per run) is the sidecar contract's, checked against the engine's binding shapes."""

    name = "tensorrt"

    def __init__(self, path: str | Path, slots: int = 2, device: int = 0, precision: str | Precision | None = None,
                 onnx_path: str | Path | None = None) -> None:
        engine_path = Path(path)
        if not engine_path.is_file():
            raise BackendError(f"TensorRT engine not found: {engine_path}")
        try:  # the backend's option as given (a name from a test or a tool) parsed once
            precision = Precision.parse(precision) if precision is not None else None
        except ValueError as exc:
            raise EngineMismatch(f"engine {engine_path}: {exc}") from None
        try:
            meta = read_metadata(engine_path)
        except MetadataError as exc:
            raise EngineMismatch(str(exc)) from exc
        source = Path(onnx_path) if onnx_path else source_onnx_path(engine_path, meta)
        # everything the sidecar can refuse without TensorRT first: a wrong precision or a re-exported ONNX is
        # reported as such on any machine, not as "TensorRT is missing"
        check_engine_metadata(engine_path, meta, precision=precision, onnx_path=source)
        require_tensorrt()
        import tensorrt as trt  # typed by tensorrt-stubs in the type check

        from ..engine.tensorrt_adapter import platform_name

        try:
            cuda = load_pycuda()
        except CudaUnavailable as exc:
            raise BackendError(str(exc)) from exc
        major, minor = cuda.Device(device).compute_capability()
        check_engine_metadata(engine_path, meta, precision=precision, tensorrt_version=str(trt.__version__),
                              compute_capability=f"{major}.{minor}", platform=platform_name())
        super().__init__(contract_from_metadata(meta, engine_path))
        self.path = engine_path
        self.metadata = meta
        self._logger = trt.Logger(trt.Logger.WARNING)
        # runtime, engine and execution contexts belong to the CUDA context they are created in: make ``device``'s
        # primary context (the one SlotPipeline allocates and enqueues in) current for them, not device 0's
        self._cuda_context = cuda.Device(device).retain_primary_context()
        self._cuda_context.push()
        try:
            self._runtime = trt.Runtime(self._logger)
            if meta.dla_core >= 0:
                self._runtime.DLA_core = int(meta.dla_core)  # the core the engine was built for
            self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self.engine is None:
                raise EngineMismatch(f"TensorRT could not deserialize {engine_path}; rebuild it: "
                                     f"{rebuild_command(meta, engine_path)}")
            self.input_name, self.output_name = self._io_names()
            in_shape, in_dtype = self._tensor_spec(self.input_name)
            out_shape, out_dtype = self._tensor_spec(self.output_name)
            self._check_io(meta)
            check_engine_shapes(engine_path, self.contract, in_shape, out_shape, rebuild_command(meta, engine_path))
            self._contexts = [self.engine.create_execution_context() for _ in range(slots)]
        except BaseException:  # a refused engine must not keep the retained primary context (nor its objects)
            self._drop_engine()
            cuda.Context.pop()
            self._cuda_context.detach()
            self._cuda_context = None
            raise
        cuda.Context.pop()
        try:
            self.pipeline = SlotPipeline(in_shape, in_dtype, out_shape, out_dtype, self._enqueue, slots, device)
        except BaseException:
            self.close()
            raise
        self.max_in_flight = slots

    def _drop_engine(self) -> None:
        """Let go of the execution contexts, engine and runtime made so far (call with their CUDA context current)."""
        self._contexts = []
        self.__dict__.pop("engine", None)
        self.__dict__.pop("_runtime", None)

    def _io_names(self) -> tuple[str, str]:
        import tensorrt as trt

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineMismatch(f"{self.path}: expected one input and one output, got {inputs} -> {outputs}")
        if inputs[0] != self.contract.input_name or outputs[0] != self.contract.output_name:
            raise EngineMismatch(f"{self.path}: tensors {inputs[0]}->{outputs[0]} differ from the model contract "
                                 f"{self.contract.input_name}->{self.contract.output_name}")
        return inputs[0], outputs[0]

    def _tensor_spec(self, name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
        dims = self.engine.get_tensor_shape(name)
        shape = tuple(int(dims[i]) for i in range(len(dims)))
        if any(d < 0 for d in shape):
            raise EngineMismatch(f"{self.path}: tensor {name} has a dynamic shape {shape}; build a static engine")
        return shape, numpy_dtype(self.engine.get_tensor_dtype(name))

    def _check_io(self, meta: EngineMetadata) -> None:
        """The engine's tensors (name, shape, dtype) must be the ones its sidecar recorded at build time."""
        actual = []
        for name in (self.input_name, self.output_name):
            shape, _ = self._tensor_spec(name)
            dtype = dtype_name(self.engine.get_tensor_dtype(name))
            actual.append({"name": name, "shape": list(shape), "dtype": dtype})
        recorded = [dict(t) for t in (meta.inputs[:1] + meta.outputs[:1])]
        if recorded and recorded != actual:
            raise EngineMismatch(f"{self.path}: engine tensors {actual} differ from its metadata {recorded}; "
                                 f"rebuild it: {rebuild_command(meta, self.path)}")

    def _enqueue(self, slot: int, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        """The SlotPipeline executor: bind the slot's buffers and enqueue the engine. A False from TensorRT raises
        BackendError; SlotPipeline then waits for the slot's already queued upload before the slot is reused."""
        context = self._contexts[slot]
        for name, pointer in ((self.input_name, input_ptr), (self.output_name, output_ptr)):
            if not context.set_tensor_address(name, pointer):
                raise BackendError(f"TensorRT set_tensor_address({name!r}) failed for {self.path}")
        if not context.execute_async_v3(stream_handle):
            raise BackendError(f"TensorRT execute_async_v3 failed for {self.path}")

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info["file"] = str(self.path)
        info["tensorrt"] = self.metadata.tensorrt_version
        meta = self.metadata
        if meta.calibration_method:
            info["calibration"] = (f"{meta.calibration_method} on {meta.calibration_set} "
                                   f"(sha256 {str(meta.calibration_set_sha256)[:12]})")
        info["built"] = f"{meta.created_utc} by {meta.builder} ({meta.typing} typing) on {meta.gpu_name}"
        info["device"] = str(self.pipeline.device.name())
        info["slots"] = str(self.pipeline.capacity)
        from ..engine.tensorrt_adapter import device_memory_size

        # on a Jetson the GPU's memory is the system's RAM: what this engine takes, measured on the loaded engine
        info["memory"] = (f"engine {mib(self.path.stat().st_size)} MiB, {mib(device_memory_size(self.engine))} MiB "
                          f"device memory per execution context x {len(self._contexts)}")
        return info

    def close(self) -> None:
        super().close()
        context = getattr(self, "_cuda_context", None)
        if context is not None:  # execution contexts, engine and runtime go in the context they were made in
            context.push()
            try:
                self._drop_engine()
            finally:
                context.pop()
                context.detach()
            self._cuda_context = None


__all__ = ["EngineMismatch", "NUMPY_DTYPES", "TensorRtBackend", "check_engine_metadata", "check_engine_shapes",
           "dtype_name", "expected_shapes", "numpy_dtype", "require_tensorrt"]
