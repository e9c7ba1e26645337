"""What the segmentation node does before it subscribes: pick the model file for backend + precision
(:func:`resolve_model_file`: the one file of that precision, so switching precision can never pick up another
precision's file), check it against what was asked (precision, sidecar), build a missing TensorRT engine when
asked to, create the backend.

Every problem becomes one :class:`StartupError` whose message says which file and how to make it, so that
``node.main`` can log it as one FATAL line and exit 1. Imports no rclpy; TensorRT only when an engine is built.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Tuple

from ..artifacts import ArtifactFolder, BackendKind, Precision, batch_from_name, size_from_name
from ..engine.metadata import build_hint
from ..errors import SegmentationError
from ..runtime import Backend, BackendError, create_backend
from .params import NodeParams


class StartupError(RuntimeError, SegmentationError):
    """The node cannot start (missing/mismatched model file, bad parameter); the message says how to fix it."""


class ModelFileError(FileNotFoundError, SegmentationError):
    """No usable model file for the chosen backend/precision; the message says which file and how to make it."""


def _find_size(directory: Path, model: str, precision: Precision, suffix: str, batch: int = 1) -> tuple[int, int]:
    sizes = ArtifactFolder(directory).sizes(model, batch=batch, precision=precision, suffix=suffix)
    if len(sizes) == 1:
        return sizes[0]
    if not sizes:
        pattern = f"{model}_*x*_{'b%d_' % batch if batch > 1 else ''}{precision}{suffix}"
        cameras = f" (batch {batch}: one frame per camera)" if batch > 1 else ""
        raise ModelFileError(
            f"no {pattern} in {directory}{cameras}; set engine_height/engine_width (or engine_path/onnx_path) or "
            f"build it: {build_hint(model, None, precision, directory, batch=batch)}"
        )
    listed = ", ".join(f"{h}x{w}" for h, w in sizes)
    raise ModelFileError(f"several sizes of {model} {precision} in {directory} ({listed}); set engine_height and "
                         f"engine_width to pick one")


def resolve_model_file(params: NodeParams) -> Path:
    """The file the node loads for ``params``: the explicit path if given, else the precision's artifact name
    (with ``_b<N>_`` for N > 1 cameras)."""
    precision, backend = params.precision, params.backend
    if backend is BackendKind.ONNXRUNTIME and params.onnx_path:
        return Path(params.onnx_path)
    if backend in (BackendKind.TENSORRT, BackendKind.TORCH) and params.engine_path:
        return Path(params.engine_path)
    if backend is BackendKind.TORCH:
        raise ModelFileError("backend torch needs engine_path: a PyTorch checkpoint (.pt)")
    suffix = ".onnx" if backend is BackendKind.ONNXRUNTIME else ".engine"
    directory = Path(params.engine_dir)
    if params.engine_height and params.engine_width:
        size = (params.engine_height, params.engine_width)
    else:
        try:
            size = _find_size(directory, params.model, precision, suffix, params.batch)
        except ModelFileError as no_engine:
            if suffix != ".engine":
                raise
            # no engine yet: the ONNX it is built from gives the size (build_engine_if_missing, clearer errors)
            try:
                size = _find_size(directory, params.model, precision, ".onnx", params.batch)
            except ModelFileError:
                raise no_engine from None
    return ArtifactFolder(directory).path(params.model, size[0], size[1], precision, suffix, batch=params.batch)


def load_backend(params: NodeParams, log: Any) -> Tuple[Backend, Path]:
    """Resolve the model file for backend+precision, check it and create the backend, or raise StartupError."""
    precision, kind = params.precision, params.backend  # parsed into types by the parameters' edge
    if kind is BackendKind.TENSORRT and not precision.tensorrt:
        raise StartupError(f"precision {precision} is an ONNX Runtime CPU variant and never runs in TensorRT (there is "
                           f"no {precision} engine); use backend onnxruntime with it, or a TensorRT precision "
                           "(int8 or mixed on a Jetson)")
    try:
        path = resolve_model_file(params)
    except ModelFileError as exc:
        raise StartupError(str(exc)) from exc
    size = None
    if params.engine_height and params.engine_width:
        size = (params.engine_height, params.engine_width)
    hint = build_hint(params.model, size, precision, params.engine_dir, batch=params.batch)
    named_batch = batch_from_name(path.name)
    if named_batch > 1 and named_batch != params.batch:  # before loading it: an engine takes long to deserialise
        raise StartupError(batch_mismatch(path, named_batch, params, hint))
    if kind is BackendKind.TENSORRT and ((params.build_engine_if_missing and not path.is_file())
                                         or (params.rebuild_engine and path.is_file())):
        build_missing_engine(params, path, log)
    if not path.is_file():
        what = {BackendKind.ONNXRUNTIME: "ONNX file", BackendKind.TENSORRT: "TensorRT engine"}.get(kind, "checkpoint")
        expect = ""
        if kind is BackendKind.TENSORRT:
            expect = (f" (expected: a {precision} engine built by {installed_tensorrt()} for this GPU, with its "
                      f".json sidecar next to it)")
        raise StartupError(f"{what} not found: {path}{expect}. Build it with: {hint}")
    options: dict[str, Any] = {}
    if kind is BackendKind.ONNXRUNTIME:
        options["threads"] = params.ort_threads
    elif kind is BackendKind.TENSORRT:
        # the backend hashes the ONNX the engine was built from (named in its sidecar): a re-export is refused
        options.update(slots=params.inflight_slots, precision=precision)
    else:  # torch: the checkpoint in FP32 or FP16 as one CUDA graph per slot; it refuses int8/mixed itself
        # a checkpoint has no static batch: the torch backend is told it (one frame per camera)
        options.update(slots=params.inflight_slots, precision=precision, batch=params.batch)
        if params.engine_height and params.engine_width:
            options.update(height=params.engine_height, width=params.engine_width)
    try:
        backend = create_backend(kind, path, **options)
    except BackendError as exc:
        raise StartupError(str(exc)) from exc
    if backend.batch != params.batch:
        backend.close()
        raise StartupError(batch_mismatch(path, backend.batch, params, hint))
    if kind is BackendKind.ONNXRUNTIME and backend.contract.precision != precision:
        backend.close()
        raise StartupError(f"{path} holds a {backend.contract.precision} model, precision {precision} was asked "
                           f"for; rebuild it: {hint}")
    return backend, path


def batch_mismatch(path: Path, batch: int, params: NodeParams, hint: str) -> str:
    """The start-up error for a model whose static batch is not the number of cameras."""
    cameras = (f"cameras has {len(params.cameras)} name(s) ({', '.join(params.cameras)})" if params.cameras
               else "cameras is empty (single-camera mode, batch 1)")
    return (f"{path} runs batches of {batch} frames (one per camera), but {cameras}: name {batch} cameras, or make "
            f"the batch-{params.batch} file: {hint}")


def installed_tensorrt() -> str:
    """'TensorRT 10.3.0' or 'TensorRT (not installed here)' for messages."""
    from ..engine.tensorrt_adapter import real_tensorrt

    found = real_tensorrt()
    return f"TensorRT {found.version}" if found else "TensorRT (not installed here)"


def build_missing_engine(params: NodeParams, engine_path: Path, log: Any) -> None:
    """build_engine_if_missing / rebuild_engine: build ``engine_path`` when it is missing, or rebuild it when it does
    not fit this machine, from the ONNX variants beside it the way the installed TensorRT needs (explicit, or implicit
    on TensorRT 8.5/8.6 with the variant's Q/DQ scales as calibration table), progress in the log."""
    from ..engine.on_target import ensure_engine  # imports TensorRT only here

    precision = params.precision
    t0 = time.monotonic()
    try:
        action = ensure_engine(engine_path, precision, rebuild=params.rebuild_engine,
                               workspace_mib=None if params.build_workspace_mib < 0 else params.build_workspace_mib,
                               progress=lambda text: log.info(f"build: {text}"), log=log.info)
    except FileNotFoundError as exc:
        size = size_from_name(engine_path.name)
        hint = build_hint(params.model, size, precision, engine_path.parent, batch=batch_from_name(engine_path.name))
        raise StartupError(f"{exc}; make it with: {hint}") from exc
    except Exception as exc:  # the builder reports TensorRT/calibration problems with its own exception types
        raise StartupError(f"building {engine_path} failed: {exc}") from exc
    if action != "fits":
        log.info(f"{action} {engine_path} in {time.monotonic() - t0:.0f} s")


__all__ = ["ModelFileError", "StartupError", "batch_mismatch", "build_missing_engine", "installed_tensorrt", "load_backend",
           "resolve_model_file"]
