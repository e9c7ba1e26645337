"""The node's multi-camera worker without ROS (node_batch.BatchWorker), driven by a CPU backend of a batch-3 model
that implements the real ``Backend`` batch interface: a batch runs once every camera has a frame, or after the
timeout with the cameras that have one (padded rows publish nothing); each row goes back to its own camera with its
header and size; bad input and drops are counted on the camera they happen on. Events, not sleeps, order every
step (the timeouts used are 0 or far beyond any wait), so the tests are deterministic on a loaded machine."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from trt_segmentation.node.batch_worker import BatchWorker
from trt_segmentation.node.frames import Pending
from trt_segmentation.onnx_metadata import ModelContract
from trt_segmentation.runtime.backend import Backend, InferenceResult, InputMismatch

H, W = 8, 16
CAMERAS = ("front", "left", "right")
CONTRACT = ModelContract("probe", 19, H, W, "uint8_rgb", "labels_uint8", "image", "labels", (0.0, 0.0, 0.0),
                         (1.0, 1.0, 1.0), batch=len(CAMERAS))
WAIT = 30.0  # generous: only a broken worker ever waits this long
NEVER = 1e6  # a batch timeout no test reaches: a batch runs only once every camera has a frame


class ProbeBatchBackend(Backend):
    """Labels = red channel mod 19 per row; records which rows each batch had; ``hold`` keeps the first batch
    inside inference until the test releases it."""

    name = "probe_batch"

    def __init__(self) -> None:
        super().__init__(CONTRACT)
        self.batches: List[List[Optional[int]]] = []
        self.hold: Optional[threading.Event] = None
        self.entered = threading.Event()

    def infer(self, image: np.ndarray) -> InferenceResult:  # pragma: no cover - a batch-3 model
        raise AssertionError("the batch worker must use submit_batch")

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        self.check_batch(frames)
        self.batches.append([None if f is None else int(f[0, 0, 0]) for f in frames])
        self.entered.set()
        if self.hold is not None and len(self.batches) == 1:
            assert self.hold.wait(WAIT)
        labels = np.stack([np.zeros((H, W), np.uint8) if f is None else (f[..., 0] % 19).astype(np.uint8)
                           for f in frames])
        return InferenceResult(labels, {"inference": 1.0})


def frame(value: int, height: int = H, width: int = W, encoding: str = "rgb8") -> SimpleNamespace:
    """An Image-shaped message whose pixels all equal ``value``, stamped so its age is measured."""
    channels = 3 if encoding == "rgb8" else 2
    data = np.full((height, width, channels), value, np.uint8).tobytes()
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=width * channels, data=data,
                           header=SimpleNamespace(frame_id=f"f{value}", stamp=SimpleNamespace(sec=1, nanosec=0)))


class Sink:
    """Collects (camera, frame_id, labels) of what the worker publishes."""

    def __init__(self) -> None:
        self.published: List[Tuple[int, str, np.ndarray]] = []
        self.cv = threading.Condition()

    def __call__(self, camera: int, pending: Pending, labels: np.ndarray) -> None:
        with self.cv:
            self.published.append((camera, pending.header.frame_id, labels.copy()))
            self.cv.notify_all()

    def wait(self, n: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.published) >= n, WAIT), self.published


def worker_for(backend: Backend, sink: Sink, timeout_s: float, **kwargs: Any) -> BatchWorker:
    worker = BatchWorker(backend, CAMERAS, sink, batch_timeout_s=timeout_s, now_ns=lambda: 2_000_000_000,
                         **kwargs)
    worker.start()
    return worker


def test_a_batch_runs_when_every_camera_has_a_frame_and_each_row_goes_back_to_its_camera() -> None:
    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, NEVER)
    try:
        worker.post(0, frame(1))
        worker.post(2, frame(3, 24, 40))  # another size: resized to the engine's and the labels back
        assert backend.batches == []  # one camera still without a frame, and the timeout is never reached
        worker.post(1, frame(2, 5, 9))
        sink.wait(3)
    finally:
        worker.stop()
    assert backend.batches == [[1, 2, 3]]
    by_camera = {camera: (fid, labels) for camera, fid, labels in sink.published}
    assert {c: fid for c, (fid, _) in by_camera.items()} == {0: "f1", 1: "f2", 2: "f3"}
    assert [by_camera[c][1].shape for c in range(3)] == [(H, W), (5, 9), (24, 40)]
    assert all(np.all(by_camera[c][1] == c + 1) for c in range(3))
    for index in range(3):
        counters = worker.snapshot(index)
        assert (counters.received, counters.processed, counters.dropped, counters.failed) == (1, 1, 0, 0)
        assert worker.cameras[index].latency.summaries()["age"]["n"] == 1  # 1 s stamp, published "at" 2 s
    assert worker.batches == 1 and worker.fill.values().tolist() == [1.0]
    assert worker.cameras[1].last_input_size == "5x9"


def test_the_converter_s_wait_for_a_due_batch_is_measured_per_batch() -> None:
    """batch_due_wait: from a free slot to the last camera's frame (a lower bound, so a loaded machine only adds)."""
    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, NEVER)
    try:
        worker.post(0, frame(1))
        worker.post(1, frame(2))
        time.sleep(0.2)
        worker.post(2, frame(3))
        sink.wait(3)
    finally:
        worker.stop()
    assert len(worker.work_wait) == 1 and len(worker.slot_wait) == 1
    assert worker.work_wait.values()[0] >= 200.0
    assert 0.0 <= worker.slot_wait.values()[0] < worker.work_wait.values()[0]


def test_after_the_timeout_the_cameras_with_a_frame_run_and_padded_rows_publish_nothing() -> None:
    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, 0.0)
    try:
        worker.post(1, frame(7))
        sink.wait(1)
    finally:
        worker.stop()
    assert backend.batches == [[None, 7, None]]
    assert [(camera, fid) for camera, fid, _ in sink.published] == [(1, "f7")]
    assert [worker.snapshot(i).processed for i in range(3)] == [0, 1, 0]
    assert worker.fill.values().tolist() == pytest.approx([1 / 3])


def test_bad_input_on_one_camera_is_counted_there_and_the_others_are_published() -> None:
    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, NEVER)
    try:
        worker.post(0, frame(4))
        worker.post(1, frame(5, encoding="16UC1"))  # unsupported encoding
        worker.post(2, frame(6))
        sink.wait(2)
    finally:
        worker.stop()
    assert backend.batches == [[4, None, 6]]
    assert sorted((camera, fid) for camera, fid, _ in sink.published) == [(0, "f4"), (2, "f6")]
    assert [worker.snapshot(i).failed for i in range(3)] == [0, 1, 0]
    assert [worker.snapshot(i).processed for i in range(3)] == [1, 0, 1]
    assert "camera left" in worker.cameras[1].last_error and "16UC1" in worker.cameras[1].last_error
    assert worker.runtime_error == ""  # bad input is no inference failure


def test_a_malformed_message_is_that_cameras_bad_image_as_in_single_camera_mode() -> None:
    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, NEVER)
    malformed = frame(5)
    del malformed.encoding  # a duck-typed message without a field: AttributeError inside the conversion
    try:
        worker.post(0, frame(4))
        worker.post(1, malformed)
        worker.post(2, frame(6))
        sink.wait(2)
    finally:
        worker.stop()
    assert [worker.snapshot(i).failed for i in range(3)] == [0, 1, 0]
    assert worker.cameras[1].last_error.startswith("camera left: bad image dropped: AttributeError: ")
    assert worker.runtime_error == ""


class CollectFailingBackend(ProbeBatchBackend):
    """A batch whose first row is 13 fails in ``collect`` (a GPU fault found when its result is awaited)."""

    name = "collect_failing"

    def __init__(self) -> None:
        super().__init__()
        self.fails: List[bool] = []

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        result = super().infer_batch(frames)
        self.fails.append(frames[0] is not None and int(frames[0][0, 0, 0]) == 13)
        return result

    def collect(self) -> Tuple[Any, InferenceResult]:
        tag, result = super().collect()
        if self.fails.pop(0):
            raise RuntimeError("device lost")
        return tag, result


def test_a_batch_failing_in_collect_counts_a_failed_frame_on_each_of_its_cameras() -> None:
    backend, sink = CollectFailingBackend(), Sink()
    backend.hold = threading.Event()
    worker = worker_for(backend, sink, NEVER)
    try:
        for camera in range(3):
            worker.post(camera, frame(13 + camera))
        assert backend.entered.wait(WAIT)  # the failing batch is inside inference: the next frames wait
        for camera in range(3):
            worker.post(camera, frame(20 + camera))
        backend.hold.set()
        sink.wait(3)  # the next batch, collected after the failing one
    finally:
        worker.stop()
    assert backend.batches == [[13, 14, 15], [20, 21, 22]]
    assert sorted(fid for _, fid, _ in sink.published) == ["f20", "f21", "f22"]
    for index in range(3):
        c = worker.snapshot(index)
        assert (c.received, c.processed, c.dropped, c.failed) == (2, 1, 0, 1)
        assert c.received == c.processed + c.dropped + c.failed  # no frame unaccounted for
        assert worker.cameras[index].last_error == "inference failed: RuntimeError: device lost"  # why it failed
    assert worker.last_error == "inference failed: RuntimeError: device lost"
    assert worker.runtime_error == ""  # cleared by the batch that followed


def test_a_replaced_frame_is_that_cameras_drop_and_the_newest_one_runs() -> None:
    backend, sink = ProbeBatchBackend(), Sink()
    backend.hold = threading.Event()
    worker = worker_for(backend, sink, NEVER)
    try:
        for camera in range(3):
            worker.post(camera, frame(10 + camera))
        assert backend.entered.wait(WAIT)  # the first batch is held inside inference
        worker.post(0, frame(20))
        worker.post(0, frame(21))  # replaces 20 while it waits
        worker.post(1, frame(22))
        worker.post(2, frame(23))
        backend.hold.set()
        sink.wait(6)
    finally:
        worker.stop()
    assert backend.batches == [[10, 11, 12], [21, 22, 23]]
    assert [worker.snapshot(i).dropped for i in range(3)] == [1, 0, 0]
    assert worker.snapshot().received == 7 and worker.snapshot().processed == 6


def test_the_model_batch_must_match_the_cameras() -> None:
    with pytest.raises(InputMismatch, match="batches of 3, 2 camera"):
        BatchWorker(ProbeBatchBackend(), ("front", "rear"), Sink())


def test_compressed_frames_of_different_cameras_share_a_batch() -> None:
    import io

    from PIL import Image

    def png(value: int, height: int, width: int) -> SimpleNamespace:
        buffer = io.BytesIO()
        Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
        return SimpleNamespace(format="png", data=buffer.getvalue(),
                               header=SimpleNamespace(frame_id=f"p{value}", stamp=SimpleNamespace(sec=1, nanosec=0)))

    backend, sink = ProbeBatchBackend(), Sink()
    worker = worker_for(backend, sink, NEVER)
    try:
        for camera, (value, height, width) in enumerate(((30, H, W), (31, 6, 10), (32, 20, 30))):
            worker.post(camera, png(value, height, width), compressed=True)
        sink.wait(3)
    finally:
        worker.stop()
    assert backend.batches == [[30, 31, 32]]
    assert sorted((c, fid, labels.shape) for c, fid, labels in sink.published) == [
        (0, "p30", (H, W)), (1, "p31", (6, 10)), (2, "p32", (20, 30))]
