"""Inference backends behind one interface; heavy libraries are imported only when a backend is chosen."""

from __future__ import annotations

from pathlib import Path

from .backend import Backend, BackendError, InferenceResult, InputMismatch

BACKENDS = ("onnxruntime", "tensorrt", "torch")


def create_backend(kind: str, path: str | Path, **options: object) -> Backend:
    """Create the backend ``kind`` for the model file ``path`` (an .onnx, an .engine for tensorrt, a checkpoint for
    torch). Its batch (frames per run, ``Backend.batch``) is the file's: the ONNX contract or the engine's sidecar;
    the torch backend takes it as ``batch=N``."""
    if kind == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)  # type: ignore[arg-type]
    if kind == "tensorrt":
        from .tensorrt_backend import TensorRtBackend  # imports tensorrt and pycuda only when constructed

        return TensorRtBackend(path, **options)  # type: ignore[arg-type]
    if kind == "torch":
        from .torch_backend import TorchBackend  # imports torch only when constructed

        return TorchBackend(path, **options)  # type: ignore[arg-type]
    raise BackendError(f"unknown or unavailable backend {kind!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "BackendError", "InferenceResult", "InputMismatch", "create_backend"]
