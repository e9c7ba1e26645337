"""The node's worker without ROS, driven by small CPU backends that implement the real ``Backend`` interface:
the newest-frame mailbox, two frames in flight (the path the GPU backends take), in-order publishing, and bad
input told apart from inference failures. Events, not sleeps, order every step, so the tests are deterministic
on a loaded machine."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, List, Tuple

import numpy as np
import pytest
from node_harness import jpeg_claiming, png_claiming

from trt_segmentation.node import FrameWorker, Pending
from trt_segmentation.onnx_metadata import ModelContract
from trt_segmentation.runtime.backend import Backend, InferenceResult

H, W = 8, 16
CONTRACT = ModelContract("probe", 19, H, W, "uint8_rgb", "labels_uint8", "image", "labels", (0.0, 0.0, 0.0),
                         (1.0, 1.0, 1.0))
WAIT = 30.0  # generous: only a broken worker ever waits this long


def labels_of(image: np.ndarray) -> np.ndarray:
    """What the probe backends compute: the red channel mod 19 (so every frame's labels identify it)."""
    return (image[..., 0] % 19).astype(np.uint8)


class GatedBackend(Backend):
    """A synchronous backend whose ``infer`` waits until the test opens a gate for that frame."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__(CONTRACT)
        self.started: List[int] = []
        self.gates: dict = {}
        self.entered = threading.Condition()

    def gate(self, frame_value: int) -> threading.Event:
        return self.gates.setdefault(frame_value, threading.Event())

    def infer(self, image: np.ndarray) -> InferenceResult:
        value = int(image[0, 0, 0])
        with self.entered:
            self.started.append(value)
            self.entered.notify_all()
        assert self.gate(value).wait(WAIT), f"gate of frame {value} never opened"
        return InferenceResult(labels_of(image), {"inference": 1.0})


class TwoSlotBackend(Backend):
    """Two frames in flight like the CUDA slots: ``submit`` starts a thread per frame, ``collect`` joins the oldest.
    Records the order of submits and collects and the most frames ever in flight."""

    name = "two_slot"
    max_in_flight = 2

    def __init__(self) -> None:
        super().__init__(CONTRACT)
        self.events: List[str] = []
        self.most_in_flight = 0
        self.submit_gates: dict = {}
        self.submitted: dict = {}
        self.collect_after: dict = {}  # frame value -> the frame whose submit its collect waits for
        self._slots: List[Tuple[Any, threading.Thread, dict]] = []

    def submit_gate(self, value: int) -> threading.Event:
        return self.submit_gates.setdefault(value, threading.Event())

    def submit(self, image: np.ndarray, tag: Any = None) -> None:
        value = int(image[0, 0, 0])
        self.events.append(f"submit {value}")
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault("labels", labels_of(image)))
        thread.start()
        self._slots.append((tag, thread, result))
        self.most_in_flight = max(self.most_in_flight, len(self._slots))
        gate = self.submit_gates.get(value)
        if gate is not None:  # hold the worker here (as a slow conversion would) so the next frame arrives
            assert gate.wait(WAIT)
        self.submitted.setdefault(value, threading.Event()).set()

    def collect(self) -> Tuple[Any, InferenceResult]:
        tag, thread, result = self._slots[0]
        thread.join()
        later = self.collect_after.get(int(result["labels"][0, 0]))
        if later is not None:  # as a GPU still busy with this frame would: the next one is submitted meanwhile
            assert self.submitted.setdefault(later, threading.Event()).wait(WAIT)
        self._slots.pop(0)
        self.events.append(f"collect {int(result['labels'][0, 0])}")
        return tag, InferenceResult(result["labels"], {"inference": 1.0})

    @property
    def in_flight(self) -> int:
        return len(self._slots)

    def infer(self, image: np.ndarray) -> InferenceResult:  # pragma: no cover - the worker uses submit/collect
        raise AssertionError("the worker must use submit/collect on a multi-slot backend")


def wait_until(predicate: Any, what: str) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def frame(value: int, height: int = H, width: int = W) -> SimpleNamespace:
    """An Image-shaped message whose pixels all equal ``value`` (so labels say which frame they came from)."""
    data = np.full((height, width, 3), value, np.uint8).tobytes()
    return SimpleNamespace(encoding="rgb8", height=height, width=width, step=width * 3, data=data,
                           header=SimpleNamespace(frame_id=f"f{value}", stamp=SimpleNamespace(sec=0, nanosec=0)))


class Sink:
    """Collects what the worker publishes; ``wait(n)`` blocks until n frames were published."""

    def __init__(self) -> None:
        self.published: List[Tuple[str, np.ndarray]] = []
        self.cv = threading.Condition()

    def __call__(self, pending: Pending, labels: np.ndarray) -> None:
        with self.cv:
            self.published.append((pending.header.frame_id, labels.copy()))
            self.cv.notify_all()

    def wait(self, n: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.published) >= n, WAIT), self.published


def test_mailbox_keeps_the_newest_frame_and_counts_the_one_it_replaces() -> None:
    backend, sink = GatedBackend(), Sink()
    worker = FrameWorker(backend, sink)
    worker.start()
    try:
        worker.post(frame(1))
        with backend.entered:  # frame 1 is being inferred: the worker is busy
            assert backend.entered.wait_for(lambda: backend.started == [1], WAIT)
        # the subscription side never waits for inference: these return while frame 1 is still being inferred
        poster = threading.Thread(target=lambda: (worker.post(frame(2)), worker.post(frame(3))))
        poster.start()
        poster.join(WAIT)
        assert not poster.is_alive() and backend.started == [1]  # frame 3 replaced frame 2, never processed
        backend.gate(1).set()
        with backend.entered:
            assert backend.entered.wait_for(lambda: backend.started == [1, 3], WAIT), backend.started
        backend.gate(3).set()
        sink.wait(2)
    finally:
        worker.stop()
    assert [fid for fid, _ in sink.published] == ["f1", "f3"]
    assert all(np.all(labels == v % 19) for (_, labels), v in zip(sink.published, (1, 3)))
    counters = worker.snapshot()
    assert (counters.received, counters.processed, counters.dropped, counters.failed) == (3, 2, 1, 0)


def test_two_frames_in_flight_are_published_in_order() -> None:
    backend, sink = TwoSlotBackend(), Sink()
    worker = FrameWorker(backend, sink)
    hold_first = backend.submit_gate(1)
    backend.collect_after[1] = 2
    worker.start()
    try:
        worker.post(frame(1))
        wait_until(lambda: "submit 1" in backend.events, "submit of frame 1")  # held inside submit by the gate
        worker.post(frame(2))  # arrives while frame 1 is being submitted
        hold_first.set()
        sink.wait(2)
        worker.post(frame(4))
        sink.wait(3)
    finally:
        worker.stop()
    assert backend.events[:4] == ["submit 1", "submit 2", "collect 1", "collect 2"], backend.events
    assert backend.most_in_flight == 2
    assert [fid for fid, _ in sink.published] == ["f1", "f2", "f4"]
    counters = worker.snapshot()
    assert (counters.received, counters.processed, counters.dropped, counters.failed) == (3, 3, 0, 0)


class HeldSink(Sink):
    """A :class:`Sink` whose publishing of ``frame_id`` waits until the test releases it (a slow publisher)."""

    def __init__(self, frame_id: str) -> None:
        super().__init__()
        self.frame_id, self.entered, self.release = frame_id, threading.Event(), threading.Event()

    def __call__(self, pending: Pending, labels: np.ndarray) -> None:
        if pending.header.frame_id == self.frame_id:
            self.entered.set()
            assert self.release.wait(WAIT)
        super().__call__(pending, labels)


def test_the_next_frame_runs_while_the_previous_one_is_published() -> None:
    """The backend slot is given back when collect() returns, not when publishing ends: on a one-slot backend the
    next frame is submitted while the collector still publishes the previous one (the node's publishing and its
    network overlap), and the order and counts stay exact."""
    backend, sink = GatedBackend(), HeldSink("f1")
    assert backend.max_in_flight == 1
    worker = FrameWorker(backend, sink)
    worker.start()
    try:
        worker.post(frame(1))
        backend.gate(1).set()
        assert sink.entered.wait(WAIT)  # frame 1's labels are being published, and that is held
        worker.post(frame(2))
        with backend.entered:  # frame 2 reaches the backend while frame 1 is still being published
            assert backend.entered.wait_for(lambda: backend.started == [1, 2], WAIT), backend.started
        assert sink.published == []
        backend.gate(2).set()
        sink.release.set()
        sink.wait(2)
    finally:
        worker.stop()
    assert [fid for fid, _ in sink.published] == ["f1", "f2"]
    counters = worker.snapshot()
    assert (counters.received, counters.processed, counters.dropped, counters.failed) == (2, 2, 0, 0)


class FailingBackend(Backend):
    """Raises inside inference (a GPU or runtime fault) for frames whose pixels are 13."""

    name = "failing"

    def __init__(self) -> None:
        super().__init__(CONTRACT)

    def infer(self, image: np.ndarray) -> InferenceResult:
        if image[0, 0, 0] == 13:
            raise RuntimeError("device lost")
        return InferenceResult(labels_of(image))


@pytest.mark.parametrize("case", ["raw_claims_too_many_pixels", "png_6000x6000", "jpeg_65500x65500", "short_data",
                                  "unsupported_encoding", "malformed_message"])
def test_bad_input_is_bad_input_not_an_inference_failure(case: str) -> None:
    sink = Sink()
    worker = FrameWorker(FailingBackend(), sink, max_pixels=4096 * 4096)
    compressed = case.startswith(("png", "jpeg"))
    if case == "raw_claims_too_many_pixels":
        msg: Any = SimpleNamespace(**vars(frame(1)))
        msg.__dict__.update(height=6000, width=6000, step=18000)
        expected = "6000x6000 = 36000000 pixels exceeds max_input_pixels = 16777216"
    elif case == "png_6000x6000":
        msg = SimpleNamespace(format="png", data=png_claiming(6000, 6000), header=frame(1).header)
        assert len(msg.data) < 200_000
        expected = "png image of 6000x6000 = 36000000 pixels exceeds max_input_pixels"
    elif case == "jpeg_65500x65500":
        msg = SimpleNamespace(format="jpeg", data=jpeg_claiming(65500, 65500), header=frame(1).header)
        expected = "jpeg image exceeds max_input_pixels"
    elif case == "short_data":
        msg = frame(1)
        msg.data = msg.data[:-1]
        expected = "data has"
    elif case == "malformed_message":  # a duck-typed message without its encoding: the same rule as multi-camera
        msg = frame(1)
        del msg.encoding
        expected = "AttributeError: "
    else:
        msg = frame(1)
        msg.encoding = "yuv422"
        expected = "unsupported encoding"
    worker.start()
    try:
        worker.post(msg, compressed=compressed)
        wait_until(lambda: worker.snapshot().failed == 1, "the bad frame to be refused")
        worker.post(frame(2))  # a good frame after the bad one is processed
        sink.wait(1)
    finally:
        worker.stop()
    counters = worker.snapshot()
    assert (counters.failed, counters.processed) == (1, 1)
    assert worker.last_error.startswith("bad image dropped: ") and expected in worker.last_error, worker.last_error
    assert worker.runtime_error == ""  # bad input never turns diagnostics into the ERROR "inference failing"


def test_an_inference_failure_is_reported_as_such_and_the_worker_goes_on() -> None:
    sink = Sink()
    worker = FrameWorker(FailingBackend(), sink)
    worker.start()
    try:
        worker.post(frame(13))
        wait_until(lambda: worker.snapshot().failed == 1, "the failing frame")
        assert worker.runtime_error == "inference failed: RuntimeError: device lost"
        worker.post(frame(2))
        sink.wait(1)
    finally:
        worker.stop()
    assert worker.snapshot().failed == 1
    assert worker.last_error == "inference failed: RuntimeError: device lost"
    assert worker.runtime_error == ""  # cleared by the good frame that followed
    assert [fid for fid, _ in sink.published] == ["f2"]
