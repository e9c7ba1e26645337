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

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .diagnostics import CAMERA_STAGES, STAGES, Counters
from .image_codec import DEFAULT_MAX_PIXELS, ImageDecodeError, resize_nearest
from .latency import RateMeter, RollingWindow, StageLatency
from .node_frames import Frame, Pending, age_ms, convert_frame
from .runtime import Backend, InputMismatch

BATCH_STAGES = ("preprocess", "inference", "postprocess")  # the whole batch's stages


class CameraState:
    """One camera's mailbox and statistics."""

    def __init__(self, name: str, window: int) -> None:
        self.name = name
        self.mailbox: Optional[Frame] = None
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


class BatchWorker:
    """Mailboxes per camera, the converter and collector threads and the statistics (per camera, per batch and
    in total). ``post(camera, msg)`` is called from the subscriptions; ``publish(camera, pending, labels)`` from
    the collector thread."""

    def __init__(self, backend: Backend, cameras: Sequence[str],
                 publish: Callable[[int, Pending, np.ndarray], None], *, batch_timeout_s: float = 0.03,
                 keep_rgb: bool = False, latency_window: int = 300, log_throttle_s: float = 5.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, log: Callable[[str, bool], None] = lambda text, warn: None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        if backend.batch != len(cameras):
            raise InputMismatch(f"the model runs batches of {backend.batch}, {len(cameras)} camera(s) given")
        self.backend = backend
        self.publish = publish
        self.batch_timeout_s = batch_timeout_s
        self.keep_rgb = keep_rgb
        self.max_pixels = max_pixels
        self.log_throttle_s = log_throttle_s
        self.log = log
        self.now_ns = now_ns
        self.cameras = [CameraState(name, latency_window) for name in cameras]
        # the whole node: every camera's transport/wait/age plus the batch's stages
        self.latency = StageLatency(tuple(STAGES), latency_window)
        self.fps = RateMeter()
        self.fill = RollingWindow(latency_window)  # real rows / batch of each batch
        self.batches = 0
        self.runtime_error = ""
        self.last_error = ""
        self.lock = threading.Lock()  # counters
        self._last_log: dict[str, float] = {}
        self._cv = threading.Condition()
        self._stop = False
        self._free_slots = threading.Semaphore(max(1, backend.max_in_flight))
        self._submitted: queue.Queue[bool] = queue.Queue()  # True per submitted batch; False: stop() has begun
        # the submitted batches' tags in submission order (the backend's collect() order), so a batch whose
        # collect() raises is still counted as failed on each of its cameras
        self._in_flight: deque[BatchPending] = deque()
        self._thread = threading.Thread(target=self._convert_loop, name="segmentation-batch", daemon=True)
        self._collector = threading.Thread(target=self._collect_loop, name="segmentation-collect", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._collector.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or self._collector.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is in flight, then end both threads; frames still waiting count as dropped."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self._submitted.put(False)
        if self._collector.is_alive():
            self._collector.join(timeout=timeout)
        with self._cv:
            for camera in self.cameras:
                if camera.mailbox is not None:
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
    def post(self, camera: int, msg: object, compressed: bool = False) -> None:
        """Put ``msg`` into camera ``camera``'s mailbox; a frame of that camera still waiting is replaced and
        counted as its drop."""
        state = self.cameras[camera]
        with self._cv:
            with self.lock:
                state.counters.received += 1
                if state.mailbox is not None:
                    state.counters.dropped += 1
            now = time.monotonic()
            if state.mailbox is None:
                state.waiting_since = now
            state.last_frame = now
            state.mailbox = Frame(msg, compressed, self.now_ns())
            self._cv.notify()

    # ---------------------------------------------------------------- converter thread
    def _take(self) -> Optional[List[Optional[Frame]]]:
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

    def _convert_loop(self) -> None:
        """Free slot -> due batch -> rows -> submit_batch. It takes the frames only once a slot is free, so each
        row is the newest frame its camera sent."""
        while not self._stop:
            while not self._free_slots.acquire(timeout=0.2):
                if self._stop:
                    return
            frames = self._take()
            if frames is not None and self._start(frames):
                self._submitted.put(True)
            else:
                self._free_slots.release()

    def _start(self, frames: List[Optional[Frame]]) -> bool:
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
                    pending, row = convert_frame(frame, order, size, self.max_pixels, self.keep_rgb, self.now_ns())
                    self.cameras[index].last_input_size = f"{pending.height}x{pending.width}"
                except ImageDecodeError as exc:  # this camera's bad input (convert_frame's rule): row padded
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
    def _collect_loop(self) -> None:
        while self._submitted.get():
            self._finish_oldest()
            self._free_slots.release()

    def _finish_oldest(self) -> None:
        batch = self._in_flight.popleft()  # the batch collect() returns (or fails on): the oldest submitted
        try:
            tag, result = self.backend.collect()
        except Exception as exc:  # GPU/runtime failure of an in-flight batch: its frames count as failed
            self._fail_batch(batch, f"inference failed: {type(exc).__name__}: {exc}")
            return
        t0 = time.perf_counter()
        batch = tag
        published = 0
        for index, pending in enumerate(batch.rows):
            if pending is None:
                continue
            state = self.cameras[index]
            try:
                labels = resize_nearest(result.labels[index], pending.height, pending.width)
                self.publish(index, pending, labels)
            except Exception as exc:  # publishing problems (e.g. shutting down) are reported, not raised
                self._fail_runtime(f"publishing failed: {type(exc).__name__}: {exc}", camera=index)
                continue
            published += 1
            for window in (state.latency, self.latency):
                if pending.transport_ms == pending.transport_ms:  # not NaN: the header had a stamp
                    window.add("transport", pending.transport_ms)
                window.add("wait", pending.wait_ms)
                age = age_ms(pending.header, self.now_ns())
                if age == age:
                    window.add("age", age)
            state.fps.tick()
            self.fps.tick()
            with self.lock:
                state.counters.processed += 1
        t = result.timings_ms
        self.latency.add("preprocess", batch.convert_ms + t.get("preprocess", 0.0))
        self.latency.add("inference", t.get("inference", 0.0))
        self.latency.add("postprocess", t.get("postprocess", 0.0) + (time.perf_counter() - t0) * 1e3)
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
        state.last_error = self.last_error = f"camera {state.name}: {text}"
        self.throttled(f"input {state.name}", state.last_error)

    def _fail_batch(self, batch: BatchPending, text: str) -> None:
        """A batch that could not run: every camera in it counts a failed frame (and names why); reported as
        ERROR."""
        with self.lock:
            for index, pending in enumerate(batch.rows):
                if pending is not None:
                    self.cameras[index].counters.failed += 1
                    self.cameras[index].last_error = text
        self.runtime_error = self.last_error = text
        self.throttled("runtime", text)

    def _fail_runtime(self, text: str, camera: Optional[int] = None) -> None:
        if camera is not None:
            with self.lock:
                self.cameras[camera].counters.failed += 1
            self.cameras[camera].last_error = text
        self.runtime_error = self.last_error = text
        self.throttled("runtime", text)

    def throttled(self, key: str, text: str, warn: bool = False) -> None:
        """Log ``text`` unless the same ``key`` was logged less than ``log_throttle_s`` ago."""
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= self.log_throttle_s:
            self._last_log[key] = now
            self.log(text, warn)


__all__ = ["BATCH_STAGES", "BatchPending", "BatchWorker", "CameraState"]
