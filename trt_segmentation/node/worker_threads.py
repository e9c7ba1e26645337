"""The threading both node workers share (single camera: frame_worker.FrameWorker; several cameras: batch_worker.BatchWorker).

A converter thread waits for a free backend slot, takes the work that is due and submits it; a collector thread
finishes the submitted work in submission order and gives the slot back; ``stop`` lets both drain. Here also: the
whole node's latency and rate statistics, the last errors and throttled logging. A subclass says what is taken
(``_take``), how it is submitted (``_start``), how the oldest submission is collected (``_collect_oldest``) and
published (``_publish_collected``), and what ``stop`` drops of the frames still waiting (``_drop_waiting``). No ROS
in here.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Dict, Generic, Optional, Tuple, TypeVar

from ..image_codec import DEFAULT_MAX_PIXELS
from ..runtime import Backend, InferenceResult
from .diagnostics import STAGES
from .frames import DEFAULT_STAMP_TOLERANCE_NS, Pending, age_ms
from .latency import RateMeter, RollingWindow, StageLatency

Work = TypeVar("Work")  # what the converter takes per submission: a frame, or a batch's frames


class WorkerThreads(Generic[Work]):
    """The converter and collector threads around ``backend``, with a permit per submission the backend may hold
    (the converter takes one per submit, the collector gives it back)."""

    def __init__(self, backend: Backend, *, keep_rgb: bool = False, latency_window: int = 300,
                 log_throttle_s: float = 5.0, max_pixels: int = DEFAULT_MAX_PIXELS,
                 log: Callable[[str, bool], None] = lambda text, warn: None,
                 now_ns: Callable[[], int] = time.time_ns, converter_name: str = "segmentation-convert") -> None:
        self.backend = backend
        self.keep_rgb = keep_rgb
        self.max_pixels = max_pixels
        self.log_throttle_s = log_throttle_s
        self.log = log
        self.now_ns = now_ns
        self.stamp_tolerance_ns = DEFAULT_STAMP_TOLERANCE_NS  # the node sets stamp_tolerance_s
        self.foreign_stamps = 0  # published frames whose stamp was another clock's
        self.last_stamp_foreign = False
        self.latency = StageLatency(tuple(STAGES), latency_window)  # the whole node's
        self.fps = RateMeter()
        # per submission, how long the converter waited for a free backend slot (long: the GPU or the collector is
        # the bound) and then for due work (long: the cameras are)
        self.slot_wait = RollingWindow(latency_window)
        self.work_wait = RollingWindow(latency_window)
        self.last_error = ""
        self.runtime_error = ""
        self.lock = threading.Lock()  # counters
        self._last_log: Dict[str, float] = {}
        self._cv = threading.Condition()  # guards the mailboxes
        self._stop = False
        self._free_slots = threading.Semaphore(max(1, backend.max_in_flight))
        self._submitted: queue.Queue[bool] = queue.Queue()  # True per submission; False: stop() has begun
        self._thread = threading.Thread(target=self._convert_loop, name=converter_name, daemon=True)
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
        self._submitted.put(False)  # after the converter's last token: the collector drains, then ends
        if self._collector.is_alive():
            self._collector.join(timeout=timeout)
        with self._cv:  # a frame still waiting will never be processed
            self._drop_waiting()

    # ---------------------------------------------------------------- what a subclass says
    def _take(self) -> Optional[Work]:
        """Wait for the next work (holding no lock); None once stopping or when there is none."""
        raise NotImplementedError

    def _start(self, work: Work) -> bool:
        """Convert and submit ``work``; False (counted, logged) when nothing was submitted."""
        raise NotImplementedError

    def _collect_oldest(self) -> Optional[Tuple[Any, InferenceResult]]:
        """The oldest submission's (tag, result) from the backend; None when its ``collect()`` failed (counted and
        reported here)."""
        raise NotImplementedError

    def _publish_collected(self, tag: Any, result: InferenceResult) -> None:
        """Publish what :meth:`_collect_oldest` returned."""
        raise NotImplementedError

    def _drop_waiting(self) -> None:
        """Empty the mailboxes, counting each frame as dropped (called holding ``_cv``)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- converter thread
    def _convert_loop(self) -> None:
        """Free slot -> due work -> submit. The work is taken only once a slot is free, so each frame in it is
        the newest its camera sent."""
        while not self._stop:
            t0 = time.perf_counter()
            while not self._free_slots.acquire(timeout=0.2):
                if self._stop:
                    return
            t1 = time.perf_counter()
            work = self._take()
            t2 = time.perf_counter()
            if work is not None and self._start(work):
                self.slot_wait.add((t1 - t0) * 1e3)
                self.work_wait.add((t2 - t1) * 1e3)
                self._submitted.put(True)
            else:
                self._free_slots.release()

    # ---------------------------------------------------------------- collector thread
    def _collect_loop(self) -> None:
        """Oldest submission -> labels -> publish, in submission order, until ``stop`` has drained them."""
        while self._submitted.get():
            collected = self._collect_oldest()
            # its backend slot is free once collect() returned or raised: the converter may submit the next work
            # while this thread still publishes (publishing holds only the frames' ring slots, which have room)
            self._free_slots.release()
            if collected is not None:
                self._publish_collected(*collected)

    def _add_run_stages(self, convert_ms: float, timings_ms: Dict[str, float], t0: float) -> None:
        """One backend run's preprocess (conversion + the backend's), inference and postprocess (the backend's +
        since ``t0``, the perf_counter() when collect() returned) to the whole node's latency."""
        self.latency.add("preprocess", convert_ms + timings_ms.get("preprocess", 0.0))
        self.latency.add("inference", timings_ms.get("inference", 0.0))
        self.latency.add("postprocess", timings_ms.get("postprocess", 0.0) + (time.perf_counter() - t0) * 1e3)

    def _add_frame_stages(self, window: StageLatency, pending: Pending) -> None:
        """A published frame's transport, wait, receipt to publish ("node") and age (now) to ``window``; transport
        and age only when its header had a stamp of the node's clock, at receipt and at publishing (a node on sim
        time whose /clock has not come yet reads 0), else they are NaN or not measured."""
        now = self.now_ns()
        age = age_ms(pending.header, now)
        foreign = pending.foreign or (age == age and abs(age) * 1e6 > self.stamp_tolerance_ns)
        if not foreign and pending.transport_ms == pending.transport_ms:  # not NaN
            window.add("transport", pending.transport_ms)
        window.add("wait", pending.wait_ms)
        if pending.received_mono_ns > 0:  # in-host: CLOCK_MONOTONIC, never sim time (steps of /clock, --rate)
            window.add("node", (time.monotonic_ns() - pending.received_mono_ns) * 1e-6)
        if window is self.latency:  # once per frame (a batch adds it to its camera's window too)
            self.last_stamp_foreign = foreign
            self.foreign_stamps += foreign
        if not foreign and age == age:  # not NaN
            window.add("age", age)

    # ---------------------------------------------------------------- failures
    def _report(self, key: str, text: str, runtime: bool = False) -> None:
        """Remember ``text`` as the last error (and, ``runtime``, as the inference error: ERROR) and log it."""
        self.last_error = text
        if runtime:
            self.runtime_error = text
        self.throttled(key, text)

    def report_runtime(self, text: str) -> None:
        """A failure outside this process's threads (an I/O process could not publish): ERROR, logged."""
        self._report("runtime", text, runtime=True)

    def throttled(self, key: str, text: str, warn: bool = False) -> None:
        """Log ``text`` unless the same ``key`` was logged less than ``log_throttle_s`` ago."""
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= self.log_throttle_s:
            self._last_log[key] = now
            self.log(text, warn)


__all__ = ["WorkerThreads"]
