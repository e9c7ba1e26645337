"""The small interface every inference backend implements, and the input checks they share.

A backend takes one camera frame as (H, W, 3) uint8 in the channel order its model expects and returns an
(H, W) uint8 trainId image plus per-stage timings. It never imports rclpy (the node wraps it) or torch
(except the optional torch backend).
"""

from __future__ import annotations

import abc
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..onnx_metadata import ModelContract


class BackendError(RuntimeError):
    """A backend could not be created or could not run (missing file, wrong engine, missing library)."""


class InputMismatch(ValueError):
    """A frame does not fit the model input (size, channels, dtype)."""


@dataclass
class InferenceResult:
    """Labels of one frame and how long each stage took, in milliseconds."""

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

    # Asynchronous API: submit() up to ``max_in_flight`` frames, collect() returns them in submission order.
    # Synchronous backends run the frame inside submit(); GPU backends enqueue it on a CUDA stream and return.
    def submit(self, image: np.ndarray, tag: Any = None) -> None:
        """Start inference of one frame; ``tag`` comes back with its result from :meth:`collect`."""
        if self.in_flight >= self.max_in_flight:
            raise BackendError(f"{self.in_flight} frames in flight already; collect() before submitting more")
        self._completed.append((tag, self.infer(image)))

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
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model was exported/built for."""
        return self.contract.height, self.contract.width

    def check_frame(self, image: np.ndarray) -> None:
        expected = (self.contract.height, self.contract.width, 3)
        if image.dtype != np.uint8:
            raise InputMismatch(f"frames must be uint8, got {image.dtype}")
        if image.shape != expected:
            raise InputMismatch(f"frame shape {image.shape} does not match the model input {expected} (H, W, C)")

    @abc.abstractmethod
    def infer(self, image: np.ndarray) -> InferenceResult:
        """(H, W, 3) uint8 in ``contract.channel_order`` -> (H, W) uint8 labels."""

    def describe(self) -> dict[str, str]:
        """Key facts for logs and diagnostics."""
        c = self.contract
        return {
            "backend": self.name,
            "model": c.model,
            "precision": c.precision,
            "input": f"{c.input_name} {c.input_format} {c.height}x{c.width}",
            "output": f"{c.output_name} {c.output}",
        }

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources need not override it
        """Release resources (sessions, GPU memory). Safe to call twice."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_labels(output: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Graph output -> (H, W) uint8 labels (argmax here only when the graph returns logits)."""
    labels: np.ndarray
    if contract.output == "logits":
        labels = np.argmax(output[0], axis=0).astype(np.uint8)
    else:
        labels = output[0].astype(np.uint8, copy=False)
    return labels
