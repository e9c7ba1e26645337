"""The small interface every inference backend implements, and the input checks they share.

A backend takes one camera frame as (H, W, 3) uint8 in the channel order its model expects and returns an
(H, W) uint8 trainId image plus per-stage timings; a backend on a batch-N model (``contract.batch``, one frame
per camera) takes N such frames per run (``None`` = a padded row) and returns (N, H, W) labels. It never imports
rclpy (the node wraps it) or torch (except the optional torch backend).
"""

from __future__ import annotations

import abc
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional, Sequence  # typing's: subscripted at run time on Python 3.8

import numpy as np

from ..errors import SegmentationError
from ..onnx_metadata import ModelContract


class BackendError(RuntimeError, SegmentationError):
    """A backend could not be created or could not run (missing file, wrong engine, missing library)."""


class InputMismatch(ValueError, SegmentationError):
    """A frame does not fit the model input (size, channels, dtype)."""


@dataclass
class InferenceResult:
    """Labels of one frame, (H, W), or of a batch, (N, H, W), and how long each stage took, in milliseconds
    (for a batch: the whole batch's stages)."""

    labels: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class Backend(abc.ABC):
    """Load once, describe the I/O, infer frame after frame."""

    name: str = "abstract"
    #: frames that may be submitted before the oldest must be collected (GPU backends: one per CUDA slot)
    max_in_flight: int = 1

    def __init__(self, contract: ModelContract) -> None:
        self.contract = contract
        self._completed: deque[tuple[Any, InferenceResult]] = deque()

    # Asynchronous API: submit() up to ``max_in_flight`` frames (or submit_batch() batches), collect() returns them
    # in submission order. Synchronous backends run the frame inside submit(); GPU backends enqueue it on a CUDA
    # stream and return.
    def submit(self, image: np.ndarray, tag: Any = None) -> None:
        """Start inference of one frame; ``tag`` comes back with its result from :meth:`collect`."""
        self.require_single_frame("submit")
        self._check_capacity()
        self._completed.append((tag, self.infer(image)))

    def submit_batch(self, frames: Sequence[Optional[np.ndarray]], tag: Any = None) -> None:
        """Start inference of ``batch`` frames (row i = ``frames[i]``; ``None`` = a padded row whose labels are
        meaningless); :meth:`collect` returns (tag, result) with (N, H, W) labels."""
        self.check_batch(frames)
        self._check_capacity()
        self._completed.append((tag, self.infer_batch(frames)))

    def _check_capacity(self) -> None:
        if self.in_flight >= self.max_in_flight:
            unit = "batches" if self.batch != 1 else "frames"
            raise BackendError(f"{self.in_flight} {unit} in flight already (max_in_flight {self.max_in_flight}); "
                               "collect() before submitting more")

    def collect(self) -> tuple[Any, InferenceResult]:
        """Wait for the oldest submitted frame and return (tag, result)."""
        if not self._completed:
            raise BackendError("nothing in flight to collect")
        return self._completed.popleft()

    @property
    def in_flight(self) -> int:
        """Frames submitted and not yet collected."""
        return len(self._completed)

    @property
    def batch(self) -> int:
        """Frames per run: 1, or N for a multi-camera model (use :meth:`submit_batch` / :meth:`infer_batch`)."""
        return self.contract.batch

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model was exported/built for."""
        return self.contract.height, self.contract.width

    def check_frame(self, image: np.ndarray) -> None:
        expected = (self.contract.height, self.contract.width, 3)
        if image.dtype != np.uint8:
            raise InputMismatch(f"frames must be uint8, got {image.dtype}")
        if image.shape != expected:
            raise InputMismatch(f"frame shape {image.shape} does not match the model input {expected} (H, W, C)")

    def check_batch(self, frames: Sequence[Optional[np.ndarray]]) -> None:
        """:class:`InputMismatch` unless ``frames`` holds ``batch`` entries, each a fitting frame or ``None`` (a
        stacked (N, H, W, 3) array is a sequence of frames too)."""
        if len(frames) != self.batch:
            raise InputMismatch(f"this model runs {self.batch} frame(s) per batch (one per camera, None for a "
                                f"camera without a new frame), got {len(frames)}")
        for row, image in enumerate(frames):
            if image is None:
                continue
            if not isinstance(image, np.ndarray):
                raise InputMismatch(f"batch row {row}: expected an (H, W, 3) uint8 array or None, got "
                                    f"{type(image).__name__}")
            try:
                self.check_frame(image)
            except InputMismatch as exc:
                raise InputMismatch(f"batch row {row}: {exc}") from None

    def require_single_frame(self, call: str) -> None:
        """:class:`InputMismatch` for ``submit``/``infer`` on a batch-N model (they take one frame)."""
        if self.batch != 1:
            batch_call = "submit_batch" if call == "submit" else "infer_batch"
            raise InputMismatch(f"{call}() takes one frame, but this model runs batches of {self.batch} frames "
                                f"(one per camera); use {batch_call}() with {self.batch} frames (None for a padded "
                                "row)")

    @abc.abstractmethod
    def infer(self, image: np.ndarray) -> InferenceResult:
        """(H, W, 3) uint8 in ``contract.channel_order`` -> (H, W) uint8 labels (batch-1 models only)."""

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        """``batch`` frames (``None`` = padded row) -> (N, H, W) uint8 labels, synchronously.

        This default serves batch-1 backends (one :meth:`infer`; a padded row gives zero labels); backends of
        batch-N models override it."""
        self.check_batch(frames)
        if self.batch != 1:
            raise BackendError(f"the {self.name} backend does not run batches of {self.batch}")
        image = frames[0]
        if image is None:
            return InferenceResult(np.zeros((1, self.contract.height, self.contract.width), np.uint8))
        result = self.infer(image)
        return InferenceResult(result.labels[None], result.timings_ms)

    def register_host_memory(self, key: Hashable, memory: np.ndarray) -> Optional[str]:
        """Page-lock ``memory`` (C-contiguous, e.g. a shared-memory frame ring's slot; its buffer outlives the
        registration) so that a frame lying in it is uploaded to the GPU straight from there, with no host copy.
        None when done; else why not (then frames in it are copied as any other), e.g. this CPU backend's."""
        return f"the {self.name} backend runs on the CPU"

    def unregister_host_memory(self, key: Hashable) -> None:  # noqa: B027 - nothing registered by default
        """Undo :meth:`register_host_memory` once every upload from ``key``'s memory has completed (waits)."""

    def describe(self) -> dict[str, str]:
        """Key facts for logs and diagnostics."""
        c = self.contract
        return {
            "backend": self.name,
            "model": c.model,
            "precision": c.precision,
            "input": f"{c.input_name} {c.input_format} {c.height}x{c.width}",
            "batch": str(c.batch),
            "output": f"{c.output_name} {c.output}",
        }

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources need not override it
        """Release resources (sessions, GPU memory). Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_labels(output: np.ndarray, contract: ModelContract, keep_batch: bool = False) -> np.ndarray:
    """Graph output (batch axis first) -> uint8 labels: (H, W) of the first frame, or with ``keep_batch`` (N, H, W)
    of every frame. Argmax here only when the graph returns logits (N, C, H, W)."""
    labels: np.ndarray
    if contract.output == "logits":
        labels = np.argmax(output, axis=1).astype(np.uint8)
    else:
        labels = output.astype(np.uint8, copy=False)
    return labels if keep_batch else labels[0]
