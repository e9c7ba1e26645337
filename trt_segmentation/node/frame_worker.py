"""The node's single-camera worker: a one-slot newest-frame mailbox, the converter and collector threads
(worker_threads.py) and the statistics. No ROS in here (tested without ROS in test/test_node_worker.py and on a GPU
in test/test_gpu_slots.py); ros_node.SegmentationNode wraps it in rclpy.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Optional, Tuple

import numpy as np

from ..image_codec import DEFAULT_MAX_PIXELS, ImageDecodeError, resize_nearest
from ..runtime import Backend, InferenceResult
from .diagnostics import Counters
from .frames import Frame, InputFrame, Pending, convert_frame
from .worker_threads import WorkerThreads


class FrameWorker(WorkerThreads[InputFrame]):
    """The newest-frame mailbox, the converter and collector threads (worker_threads) and the statistics; no ROS in
    here (tested on a GPU with the torch backend). ``post`` is called from the subscription; ``publish(pending,
    labels)`` from the collector thread.

    Messages are duck-typed: ``encoding/height/width/step/data/header`` (Image) or ``format/data/header``
    (CompressedImage)."""

    def __init__(self, backend: Backend, publish: Callable[[Pending, np.ndarray], None], *, keep_rgb: bool = False,
                 latency_window: int = 300, log_throttle_s: float = 5.0, max_pixels: int = DEFAULT_MAX_PIXELS,
                 log: Callable[[str, bool], None] = lambda text, warn: None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(backend, keep_rgb=keep_rgb, latency_window=latency_window, log_throttle_s=log_throttle_s,
                         max_pixels=max_pixels, log=log, now_ns=now_ns)
        self.publish = publish
        self.counters = Counters()
        self.last_frame: float | None = None
        self.last_input_size = ""
        self._mailbox: InputFrame | None = None
        self._in_flight: deque[Pending] = deque()  # submitted, in the backend's collect() order

    def _drop_waiting(self) -> None:
        if self._mailbox is not None:
            self._mailbox.release()
            self._mailbox = None
            with self.lock:
                self.counters.dropped += 1

    def snapshot(self) -> Counters:
        with self.lock:
            return Counters(**vars(self.counters))

    # ---------------------------------------------------------------- subscription side
    def post(self, msg: Any, compressed: bool = False, received_ns: Optional[int] = None) -> None:
        """Put the camera message ``msg`` into the mailbox (:meth:`post_frame`). ``received_ns``: when it was
        taken, where that was another process (else now)."""
        self.post_frame(0, Frame(msg, compressed, self.now_ns() if received_ns is None else received_ns,
                                 time.monotonic_ns()))

    def post_frame(self, camera: int, frame: InputFrame) -> None:
        """Put ``frame`` into the mailbox (``camera``: 0); a frame still waiting there is released, replaced and
        counted as dropped."""
        with self._cv:
            with self.lock:
                self.counters.received += 1
                if self._mailbox is not None:
                    self.counters.dropped += 1
            if self._mailbox is not None:
                self._mailbox.release()
            self.last_frame = time.monotonic()
            self._mailbox = frame
            self._cv.notify()

    def refuse(self, camera: int, text: str) -> None:
        """A frame its I/O process took and refused as bad input: received, failed, reported (``camera``: 0)."""
        with self.lock:
            self.counters.received += 1
        self.last_frame = time.monotonic()
        self._fail("input", f"bad image dropped: {text}")

    def drop_taken(self, camera: int) -> None:
        """A frame its I/O process took but had no free ring slot for: received and dropped."""
        with self.lock:
            self.counters.received += 1
            self.counters.dropped += 1
        self.last_frame = time.monotonic()

    # ---------------------------------------------------------------- converter thread
    def _take(self) -> InputFrame | None:
        with self._cv:
            while self._mailbox is None and not self._stop:
                self._cv.wait(0.2)
            frame, self._mailbox = self._mailbox, None
            return frame

    def _start(self, frame: InputFrame) -> bool:
        """Convert and submit one frame; False (counted, logged) when it was refused or failed before submitting."""
        try:
            pending, network_image = convert_frame(frame, self.backend.contract.channel_order,
                                                   self.backend.input_size, self.max_pixels, self.keep_rgb,
                                                   time.monotonic_ns(), self.stamp_tolerance_ns)
        except ImageDecodeError as exc:  # the rule of both workers (frames): a conversion failure is bad input
            frame.release()
            self._fail("input", f"bad image dropped: {exc}")
            return False
        self.last_input_size = f"{pending.height}x{pending.width}"
        try:
            self.backend.submit(network_image, pending)
        except Exception as exc:  # an inference failure must not kill the worker; it is reported as ERROR
            frame.release()
            self._fail("runtime", f"inference failed: {type(exc).__name__}: {exc}", runtime=True)
            return False
        self._in_flight.append(pending)
        return True

    # ---------------------------------------------------------------- collector thread
    def _collect_oldest(self) -> Optional[Tuple[Pending, InferenceResult]]:
        oldest = self._in_flight.popleft()  # the frame collect() returns (or fails on)
        try:
            return self.backend.collect()
        except Exception as exc:  # GPU/runtime failure of an in-flight frame
            oldest.release()
            self._fail("runtime", f"inference failed: {type(exc).__name__}: {exc}", runtime=True)
            return None

    def _publish_collected(self, pending: Pending, result: InferenceResult) -> None:
        t0 = time.perf_counter()
        try:
            labels = resize_nearest(result.labels, pending.height, pending.width)
            self.publish(pending, labels)
        except Exception as exc:  # publishing problems (e.g. shutting down) are reported, not raised
            pending.release()
            self._fail("runtime", f"publishing failed: {type(exc).__name__}: {exc}", runtime=True)
            return
        self._add_run_stages(pending.preprocess_ms, result.timings_ms, t0)
        self._add_frame_stages(self.latency, pending)  # after postprocess: age counts the publishing
        self.fps.tick()
        with self.lock:
            self.counters.processed += 1
        self.runtime_error = ""

    def _fail(self, key: str, text: str, runtime: bool = False) -> None:
        with self.lock:
            self.counters.failed += 1
        self._report(key, text, runtime)


__all__ = ["FrameWorker"]
