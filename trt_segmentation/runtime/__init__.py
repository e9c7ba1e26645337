"""Inference backends behind one interface, made by one factory (:func:`create_backend`, or
:func:`open_model_file` that tells the kind from the file name); heavy libraries are imported only when a backend
is chosen."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import NODE_BACKENDS, BackendKind
from .backend import Backend, BackendError, InferenceResult, InputMismatch

#: the node's backends (a torch CUDA-slot backend among them); create_backend also makes BackendKind.CHECKPOINT
BACKENDS = tuple(k.value for k in NODE_BACKENDS)


def create_backend(kind: BackendKind | str, path: str | Path, **options: object) -> Backend:
    """Create the backend ``kind`` for the model file ``path`` (an .onnx, an .engine for tensorrt, a checkpoint for
    torch and checkpoint). Its batch (frames per run, ``Backend.batch``) is the file's: the ONNX contract or the
    engine's sidecar; the torch backend takes it as ``batch=N``; checkpoint runs one frame per call. A kind given
    as text is parsed here (the runtime's edge)."""
    try:
        kind = BackendKind.parse(kind)
    except ValueError:
        raise BackendError(f"unknown or unavailable backend {kind!r}; choose one of {', '.join(BACKENDS)}") from None
    if kind is BackendKind.ONNXRUNTIME:
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, **options)  # type: ignore[arg-type]
    if kind is BackendKind.TENSORRT:
        from .tensorrt_backend import TensorRtBackend  # imports tensorrt and pycuda only when constructed

        return TensorRtBackend(path, **options)  # type: ignore[arg-type]
    if kind is BackendKind.TORCH:
        from .torch_backend import TorchBackend  # imports torch only when constructed

        return TorchBackend(path, **options)  # type: ignore[arg-type]
    from .checkpoint_backend import CheckpointBackend  # imports torch only when constructed

    return CheckpointBackend(path, **options)  # type: ignore[arg-type]


def open_model_file(path: str | Path, kind: BackendKind | None = None, **options: object) -> Backend:
    """:func:`create_backend` with the kind told by the file name (``.onnx`` -> onnxruntime, ``.engine``/``.plan``
    -> tensorrt, ``.pt``/``.pth``/``.ckpt``/``.tar`` -> checkpoint) unless ``kind`` is given; a backend library
    missing here is a BackendError too."""
    path = Path(path)
    kind = kind or BackendKind.for_file(path)
    if kind is None:
        raise BackendError(f"cannot tell the model kind of {path}; pass backend='onnxruntime'|'tensorrt'|'checkpoint'")
    try:
        return create_backend(kind, path, **options)
    except BackendError:
        raise
    except ImportError as exc:  # e.g. TensorRT or pycuda missing on this machine
        raise BackendError(f"the {kind} backend is not available here ({exc}); {path} cannot be evaluated") from exc


__all__ = ["BACKENDS", "BackendKind", "Backend", "BackendError", "InferenceResult", "InputMismatch", "create_backend",
           "open_model_file"]
