"""The node's multi-camera worker: the newest frame of each camera, run as one batch through a batch-N model.

Each camera has a one-slot mailbox like the single-camera worker (node.FrameWorker): a frame still waiting is
replaced by a newer one and counted as that camera's drop. A converter thread waits for a free backend slot, then
for a batch to be due: every camera has a new frame, or ``batch_timeout_s`` passed since the oldest waiting frame
arrived. It converts each waiting frame (resized to the engine's size) into its row (rows in camera order; a camera
without a new frame, or whose frame was bad input, is a ``None`` row: padded, nothing published for it) and
submits the batch; a collector thread takes the oldest batch's (N, H, W) labels and publishes each real row on its
camera's topics with its own header and size. A slow or stopped camera therefore never holds up the others for
longer than the timeout, and bad input on one camera is counted on that camera only.
No ROS in here (tested with CPU backends in test/test_node_batch_worker.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from ..image_codec import DEFAULT_MAX_PIXELS, ImageDecodeError, resize_nearest
from ..runtime import Backend, InferenceResult, InputMismatch
from .diagnostics import CAMERA_STAGES, Counters
from .frames import Frame, InputFrame, Pending, convert_frame
from .latency import RateMeter, RollingWindow, StageLatency
from .worker_threads import WorkerThreads


class CameraState:
    """One camera's mailbox and statistics."""

    def __init__(self, name: str, window: int) -> None:
        self.name = name
        self.mailbox: Optional[InputFrame] = None
        self.waiting_since = 0.0  # time.monotonic() when the mailbox last became full
        self.counters = Counters()
        self.latency = StageLatency(CAMERA_STAGES, window)
        self.fps = RateMeter()
        self.last_frame: Optional[float] = None
        self.last_input_size = ""
        self.last_error = ""


@dataclass
class BatchPending:
    """A submitted batch: the rows' :class:`Pending` (``None`` for padded rows) and the conversion time."""

    rows: List[Optional[Pending]]
    convert_ms: float

    @property
    def filled(self) -> int:
        return sum(row is not None for row in self.rows)


class BatchWorker(WorkerThreads[List[Optional[InputFrame]]]):
    """Mailboxes per camera, the converter and collector threads (worker_threads) and the statistics (per camera, per
    batch and in total). ``post(camera, msg)`` is called from the subscriptions; ``publish(camera, pending,
    labels)`` from the collector thread."""

    def __init__(self, backend: Backend, cameras: Sequence[str],
                 publish: Callable[[int, Pending, np.ndarray], None], *, batch_timeout_s: float = 0.03,
                 keep_rgb: bool = False, latency_window: int = 300, log_throttle_s: float = 5.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, log: Callable[[str, bool], None] = lambda text, warn: None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        if backend.batch != len(cameras):
            raise InputMismatch(f"the model runs batches of {backend.batch}, {len(cameras)} camera(s) given")
        super().__init__(backend, keep_rgb=keep_rgb, latency_window=latency_window, log_throttle_s=log_throttle_s,
                         max_pixels=max_pixels, log=log, now_ns=now_ns, converter_name="segmentation-batch")
        self.publish = publish
        self.batch_timeout_s = batch_timeout_s
        self.cameras = [CameraState(name, latency_window) for name in cameras]
        # self.latency (the whole node's): every camera's transport/wait/age plus the batch's stages
        self.fill = RollingWindow(latency_window)  # real rows / batch of each batch
        self.batches = 0
        # the submitted batches' tags in submission order (the backend's collect() order), so a batch whose
        # collect() raises is still counted as failed on each of its cameras
        self._in_flight: deque[BatchPending] = deque()

    def _drop_waiting(self) -> None:
        for camera in self.cameras:
            if camera.mailbox is not None:
                camera.mailbox.release()
                camera.mailbox = None
                with self.lock:
                    camera.counters.dropped += 1

    def snapshot(self, camera: Optional[int] = None) -> Counters:
        """One camera's counters, or (``None``) the sum over the cameras."""
        with self.lock:
            if camera is not None:
                return Counters(**vars(self.cameras[camera].counters))
            total = Counters()
            for state in self.cameras:
                for key, value in vars(state.counters).items():
                    setattr(total, key, getattr(total, key) + value)
            return total

    @property
    def last_frame(self) -> Optional[float]:
        """time.monotonic() of the newest frame of any camera."""
        stamps = [c.last_frame for c in self.cameras if c.last_frame is not None]
        return max(stamps) if stamps else None

    @property
    def last_input_size(self) -> str:
        return ", ".join(f"{c.name} {c.last_input_size}" for c in self.cameras if c.last_input_size)

    # ---------------------------------------------------------------- subscription side
    def post(self, camera: int, msg: object, compressed: bool = False, received_ns: Optional[int] = None) -> None:
        """Put the camera message ``msg`` into camera ``camera``'s mailbox (:meth:`post_frame`). ``received_ns``:
        when it was taken, where that was another process (else now)."""
        self.post_frame(camera, Frame(msg, compressed, self.now_ns() if received_ns is None else received_ns,
                                      time.monotonic_ns()))

    def post_frame(self, camera: int, frame: InputFrame) -> None:
        """Put ``frame`` into camera ``camera``'s mailbox; a frame of that camera still waiting is released,
        replaced and counted as its drop."""
        state = self.cameras[camera]
        with self._cv:
            with self.lock:
                state.counters.received += 1
                if state.mailbox is not None:
                    state.counters.dropped += 1
            now = time.monotonic()
            if state.mailbox is None:
                state.waiting_since = now
            else:
                state.mailbox.release()
            state.last_frame = now
            state.mailbox = frame
            self._cv.notify()

    def refuse(self, camera: int, text: str) -> None:
        """A frame camera ``camera``'s I/O process took and refused as bad input: received, failed, reported."""
        state = self.cameras[camera]
        with self.lock:
            state.counters.received += 1
        state.last_frame = time.monotonic()
        self._fail_camera(camera, f"bad image dropped: {text}")

    def drop_taken(self, camera: int) -> None:
        """A frame camera ``camera``'s I/O process took but had no free ring slot for: received and dropped."""
        state = self.cameras[camera]
        with self.lock:
            state.counters.received += 1
            state.counters.dropped += 1
        state.last_frame = time.monotonic()

    # ---------------------------------------------------------------- converter thread
    def _take(self) -> Optional[List[Optional[InputFrame]]]:
        """Wait until a batch is due (every camera has a frame, or the oldest waited ``batch_timeout_s``) and take
        the mailboxes; None once stopping."""
        with self._cv:
            while not self._stop:
                waiting = [c.waiting_since for c in self.cameras if c.mailbox is not None]
                if len(waiting) == len(self.cameras):
                    break
                if waiting:
                    remaining = min(waiting) + self.batch_timeout_s - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                else:
                    self._cv.wait(0.2)
            if self._stop:
                return None
            frames = [c.mailbox for c in self.cameras]
            for camera in self.cameras:
                camera.mailbox = None
            return frames

    def _start(self, frames: List[Optional[InputFrame]]) -> bool:
        """Convert every camera's frame into its row and submit the batch; False when no row is left."""
        t0 = time.perf_counter()
        order = self.backend.contract.channel_order
        size = self.backend.input_size
        rows: List[Optional[np.ndarray]] = []
        pendings: List[Optional[Pending]] = []
        for index, frame in enumerate(frames):
            row: Optional[np.ndarray] = None
            pending: Optional[Pending] = None
            if frame is not None:
                try:
                    pending, row = convert_frame(frame, order, size, self.max_pixels, self.keep_rgb,
                                                 time.monotonic_ns(), self.stamp_tolerance_ns)
                    self.cameras[index].last_input_size = f"{pending.height}x{pending.width}"
                except ImageDecodeError as exc:  # this camera's bad input (convert_frame's rule): row padded
                    frame.release()
                    self._fail_camera(index, f"bad image dropped: {exc}")
            rows.append(row)
            pendings.append(pending)
        if not any(p is not None for p in pendings):
            return False
        tag = BatchPending(pendings, (time.perf_counter() - t0) * 1e3)
        try:
            self.backend.submit_batch(rows, tag)
        except Exception as exc:  # an inference failure must not kill the worker; it is reported as ERROR
            self._fail_batch(tag, f"inference failed: {type(exc).__name__}: {exc}")
            return False
        self._in_flight.append(tag)
        return True

    # ---------------------------------------------------------------- collector thread
    def _collect_oldest(self) -> Optional[Tuple[BatchPending, InferenceResult]]:
        batch = self._in_flight.popleft()  # the batch collect() returns (or fails on): the oldest submitted
        try:
            return self.backend.collect()
        except Exception as exc:  # GPU/runtime failure of an in-flight batch: its frames count as failed
            self._fail_batch(batch, f"inference failed: {type(exc).__name__}: {exc}")
            return None

    def _publish_collected(self, batch: BatchPending, result: InferenceResult) -> None:
        t0 = time.perf_counter()
        published = 0
        for index, pending in enumerate(batch.rows):
            if pending is None:
                continue
            state = self.cameras[index]
            try:
                labels = resize_nearest(result.labels[index], pending.height, pending.width)
                self.publish(index, pending, labels)
            except Exception as exc:  # publishing problems (e.g. shutting down) are reported, not raised
                pending.release()
                self._fail_rows([index], f"publishing failed: {type(exc).__name__}: {exc}")
                continue
            published += 1
            for window in (state.latency, self.latency):
                self._add_frame_stages(window, pending)
            state.fps.tick()
            self.fps.tick()
            with self.lock:
                state.counters.processed += 1
        self._add_run_stages(batch.convert_ms, result.timings_ms, t0)
        self.fill.add(batch.filled / len(batch.rows))
        with self.lock:
            self.batches += 1
        if published:
            self.runtime_error = ""

    # ---------------------------------------------------------------- failures
    def _fail_camera(self, camera: int, text: str) -> None:
        state = self.cameras[camera]
        with self.lock:
            state.counters.failed += 1
        state.last_error = f"camera {state.name}: {text}"
        self._report(f"input {state.name}", state.last_error)

    def _fail_batch(self, batch: BatchPending, text: str) -> None:
        """A batch that could not run: every camera in it counts a failed frame (and gives its slot back)."""
        for pending in batch.rows:
            if pending is not None:
                pending.release()
        self._fail_rows([index for index, pending in enumerate(batch.rows) if pending is not None], text)

    def _fail_rows(self, cameras: Sequence[int], text: str) -> None:
        """Frames of ``cameras`` lost to the backend or to publishing: each counts a failed frame and names why;
        reported as ERROR."""
        with self.lock:
            for index in cameras:
                self.cameras[index].counters.failed += 1
                self.cameras[index].last_error = text
        self._report("runtime", text, runtime=True)


__all__ = ["BatchPending", "BatchWorker", "CameraState"]
