"""ONNX Runtime backend: the reference implementation, used on CI, laptops, and as the Jetson fallback.

Runs batch-1 files frame by frame (:meth:`~OnnxRuntimeBackend.infer`) and batch-N files (``ExportOptions(batch=N)``,
one frame per camera) batch by batch (:meth:`~OnnxRuntimeBackend.infer_batch`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..onnx_metadata import METADATA_KEY, ModelContract, to_network_input
from .backend import Backend, BackendError, InferenceResult, to_labels

#: ONNX Runtime session option (onnxruntime_session_options_config_keys.h): exact INT8 GEMM/conv on x86 without VNNI
X64_EXACT_INT8_KEY = "session.x64quantprecision"


def read_contract_from_session(session: Any, source: str) -> ModelContract:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise BackendError(f"{source} was not exported by trt_segmentation (no '{METADATA_KEY}' metadata)")
    return ModelContract.from_json(meta[METADATA_KEY])


NHWC_TRANSFORMER = "NhwcTransformer"


def open_session(
    model: Union[str, Path, bytes], threads: int = 0, providers: Optional[List[str]] = None
) -> Tuple[Any, ModelContract]:
    """An ``onnxruntime.InferenceSession`` for an exported model (a path or serialized bytes) and its contract,
    with the session settings every precision variant needs to compute what it claims on a CPU."""
    import onnxruntime as ort

    source = "the model bytes" if isinstance(model, bytes) else str(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    # x86 CPUs without VNNI (AVX2, AVX-512 without VNNI) run ONNX Runtime's fused U8S8 INT8 convolutions with
    # 16-bit intermediate sums that saturate (one conv of 127*127 products gave 512 instead of 64512); this
    # option makes them use the exact U8U8 kernels. It only affects quantized operators (docs/accuracy.md).
    options.add_session_config_entry(X64_EXACT_INT8_KEY, "1")
    available = ort.get_available_providers()
    chosen = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    data = model if isinstance(model, bytes) else str(model)
    try:
        try:
            session = ort.InferenceSession(data, options, providers=chosen)
        except Exception:  # noqa: BLE001 - retried once, re-raised below if that fails too
            # ORT's CPU NHWC layout pass moves the pyramid models' bicubic Resize of an int8-cpu graph into a
            # form its cubic kernel then refuses at load; without that one pass the graph loads and runs
            session = ort.InferenceSession(data, options, providers=chosen, disabled_optimizers=[NHWC_TRANSFORMER])
        contract = read_contract_from_session(session, source)
        if contract.extra.get("ort_graph_optimization") == "disable":
            # fp16 + Q/DQ graphs are mis-fused by ORT's CPU optimiser; their precision step marks them so
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(data, options, providers=chosen)
    except BackendError:
        raise
    except Exception as exc:  # ORT raises its own exception types for invalid graphs
        raise BackendError(f"ONNX Runtime cannot load {source}: {exc}") from exc
    return session, contract


class OnnxRuntimeBackend(Backend):
    """Runs an exported ONNX (any precision variant) with ONNX Runtime's CUDA provider if present, else CPU."""

    name = "onnxruntime"

    def __init__(self, path: Union[str, Path], threads: int = 0, providers: Optional[List[str]] = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"ONNX file not found: {path}")
        session, contract = open_session(path, threads, providers)
        super().__init__(contract)
        self.path = path
        self.providers = session.get_providers()
        self._session = session
        self._rows: Optional[np.ndarray] = None  # the batch input infer_batch fills row by row

    def infer(self, image: np.ndarray) -> InferenceResult:
        self.require_single_frame("infer")
        self.check_frame(image)
        return self._run(image, keep_batch=False)

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        self.check_batch(frames)
        t0 = time.perf_counter()
        if self._rows is None:  # one (N, H, W, 3) input, reused: a padded row keeps what it last held
            c = self.contract
            self._rows = np.zeros((c.batch, c.height, c.width, 3), np.uint8)
        for row, image in enumerate(frames):
            if image is not None:
                self._rows[row] = image
        return self._run(self._rows, keep_batch=True, t0=t0)

    def _run(self, images: np.ndarray, keep_batch: bool, t0: Optional[float] = None) -> InferenceResult:
        """(H, W, 3) frame or (N, H, W, 3) rows, checked -> labels; preprocess timed from ``t0`` when given."""
        t0 = time.perf_counter() if t0 is None else t0
        feed = {self.contract.input_name: to_network_input(images, self.contract)}
        t1 = time.perf_counter()
        (output,) = self._session.run([self.contract.output_name], feed)
        t2 = time.perf_counter()
        labels = to_labels(output, self.contract, keep_batch)
        t3 = time.perf_counter()
        return InferenceResult(
            labels,
            {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3},
        )

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info["providers"] = ",".join(self.providers)
        info["file"] = str(self.path)
        return info

    def close(self) -> None:
        self._session = None
