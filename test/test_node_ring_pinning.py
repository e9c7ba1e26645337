"""Frames go to the GPU straight from the camera rings (issue #31): the logic, on this CPU.

pycuda cannot run here, so SlotPipeline meets the recorded pycuda stand-in of test_runtime_slot_failure, extended
with page-locking (cuda_slots.page_lock) and with events that complete the work queued before them. Real here: the shared-memory
FrameRing, RingPinning, SlotPipeline/SlotBackend and the BatchWorker. Checked: a ring row is uploaded from the
ring's own memory and never copied on the host, anything else is copied as before, the registration is undone only
after the uploads from it completed, a ring slot goes back to its I/O process only once the upload reading it has
completed, and a backend that cannot page-lock (here a CPU one) keeps today's copying path, said once in the log.
test/test_gpu_ring_upload.py runs the same on a real GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import pytest
from node_fixtures import ReturnedSlots, post_ring_batches
from test_runtime_slot_failure import RecordedDriver, RecordedStream

from trt_segmentation.node.batch_worker import BatchWorker
from trt_segmentation.node.camera_io.frame_ring import FrameRing
from trt_segmentation.node.frames import Pending
from trt_segmentation.node.ring_pinning import RingPinning
from trt_segmentation.onnx_metadata import ModelContract
from trt_segmentation.runtime import cuda_slots
from trt_segmentation.runtime.backend import Backend, InferenceResult
from trt_segmentation.runtime.cuda_slots import SlotBackend, SlotPipeline

H, W, N = 8, 16, 2
WAIT = 30.0  # generous: only a broken worker waits this long


def address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


class PinningDriver(RecordedDriver):
    """The recorded driver, plus page-locking, uploads that remember where they read, and events whose
    ``synchronize`` completes the work queued on their stream before them."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: List[Tuple[int, int, int]] = []  # (device offset, host address, bytes)
        self.pinned: List[Tuple[int, int]] = []  # (address, bytes) registered now

        class Event:
            def __init__(self, flags: int = 0) -> None:
                self.flags = flags
                self.stream: Optional[RecordedStream] = None
                self.position = 0

            def record(self, stream: RecordedStream) -> None:
                self.stream = stream
                stream.queued.append("event")
                self.position = len(stream.queued)

            def synchronize(self) -> None:  # the work queued before this event has completed
                if self.stream is not None:
                    del self.stream.queued[:self.position]
                    self.position = 0

            def time_since(self, other: Any) -> float:
                return 0.0

        self.Event = Event

    def page_lock(self, start: int, nbytes: int) -> None:  # cuda_slots.page_lock (cuMemHostRegister)
        self.pinned.append((start, nbytes))
        self.log.append("register")

    def page_unlock(self, start: int) -> None:
        self.pinned.remove(next(entry for entry in self.pinned if entry[0] == start))
        self.log.append("unregister")

    def memcpy_htod_async(self, device: Any, host: np.ndarray, stream: RecordedStream) -> None:
        self.uploads.append((int(device) - 4096, address(host), host.nbytes))
        stream.queued.append(("htod", address(host)))

    def reading(self, memory: np.ndarray) -> bool:
        """Whether an upload still queued on any stream reads inside ``memory``."""
        first, last = address(memory), address(memory) + memory.nbytes
        return any(isinstance(item, tuple) and first <= item[1] < last
                   for stream in self.streams for item in stream.queued)


@pytest.fixture()
def driver(monkeypatch: pytest.MonkeyPatch) -> PinningDriver:
    recorded = PinningDriver()
    recorded.streams = []  # type: ignore[attr-defined]
    make = recorded.Stream

    def stream() -> RecordedStream:
        made = make()
        recorded.streams.append(made)  # type: ignore[attr-defined]
        return made

    recorded.Stream = stream
    monkeypatch.setattr(cuda_slots, "load_pycuda", lambda: recorded)
    monkeypatch.setattr(cuda_slots, "page_lock", recorded.page_lock)
    monkeypatch.setattr(cuda_slots, "page_unlock", recorded.page_unlock)
    return recorded


@pytest.fixture()
def ring(tmp_path: Path) -> FrameRing:
    made = FrameRing.create("trtseg-test-0-1", 3, H * W * 2, directory=tmp_path)
    yield made
    made.unlink()


def fill(ring: FrameRing, slot: int, value: int) -> np.ndarray:
    """Every pixel of ring slot ``slot`` set to ``value``; its (H, W, 3) view."""
    pixels = ring.pixels(slot, H, W)
    pixels[:] = value
    return pixels


def no_executor(slot: int, input_ptr: int, output_ptr: int, stream: int) -> None:
    """The network: nothing (what is checked here is what reaches the device input, and when)."""


class RecordedSlotBackend(SlotBackend):
    """A SlotBackend of a batch-N uint8 network on the recorded driver; its labels are the output buffer."""

    name = "recorded"

    def __init__(self, batch: int = N, input_format: str = "uint8_rgb") -> None:
        super().__init__(ModelContract("probe", 19, H, W, input_format, "labels_uint8", "image", "labels",
                                       (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), batch=batch))
        self.pipeline = SlotPipeline((batch, H, W, 3), np.uint8, (batch, H, W), np.uint8, no_executor, slots=2)
        self.max_in_flight = 2


class CpuBackend(Backend):
    """A backend on the CPU (the base class's answer to page-locking is what is checked)."""

    name = "cpu_probe"

    def __init__(self) -> None:
        super().__init__(ModelContract("probe", 19, H, W, "uint8_rgb", "labels_uint8", "image", "labels",
                                       (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), batch=N))

    def infer(self, image: np.ndarray) -> InferenceResult:  # pragma: no cover - a batch-N model
        raise AssertionError("batch-N")

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        return InferenceResult(np.stack([np.zeros((H, W), np.uint8) if f is None else f[..., 0] for f in frames]))


def test_ring_rows_upload_from_the_ring_and_other_rows_are_copied(driver: PinningDriver, ring: FrameRing) -> None:
    pipeline = SlotPipeline((N, H, W, 3), np.uint8, (N, H, W), np.uint8, no_executor, slots=2)
    row_bytes = H * W * 3
    for slot in range(ring.slots):
        pipeline.register_host(("ring", slot), ring.slot_memory(slot, H * W))
    assert len(driver.pinned) == 3 and all(nbytes % 4096 == 0 for _, nbytes in driver.pinned)
    driver.uploads.clear()
    first, second = fill(ring, 0, 11), fill(ring, 2, 22)
    pipeline.submit_rows([first, second], "ring rows")
    assert driver.uploads == [(0, address(first), row_bytes), (row_bytes, address(second), row_bytes)]
    assert (pipeline.rows_direct, pipeline.rows_copied) == (2, 0)
    assert not pipeline.slots[0].host_in.any()  # nothing was copied into the page-locked staging input
    assert pipeline.collect().tag == "ring rows"

    driver.uploads.clear()
    loose = np.full((H, W, 3), 5, np.uint8)  # not in a ring; then a strided view of the ring: both copied
    pipeline.submit_rows([loose, ring.pixels(1, H, W)[..., ::-1]], "copied")
    staged = pipeline.slots[1].host_in
    assert driver.uploads == [(0, address(staged[0]), row_bytes), (row_bytes, address(staged[1]), row_bytes)]
    assert (pipeline.rows_direct, pipeline.rows_copied) == (2, 2) and (staged[0] == 5).all()
    pipeline.collect()

    driver.uploads.clear()
    pipeline.submit_rows([None, first], "padded")  # a padded row is not uploaded at all
    assert driver.uploads == [(row_bytes, address(first), row_bytes)]
    pipeline.collect()
    pipeline.close()
    assert driver.pinned == []  # close() undid every registration


def test_unregistering_waits_for_the_uploads_from_that_memory(driver: PinningDriver, ring: FrameRing) -> None:
    pipeline = SlotPipeline((N, H, W, 3), np.uint8, (N, H, W), np.uint8, no_executor, slots=2)
    pipeline.register_host("slot 0", ring.slot_memory(0, H * W))
    pipeline.submit_rows([fill(ring, 0, 1), None], "in flight")
    assert driver.reading(ring.slot_memory(0, H * W))
    driver.log.clear()
    pipeline.unregister_host("slot 0")
    assert driver.log[-1] == "unregister" and all(entry.startswith("sync") for entry in driver.log[:-1])
    assert len(driver.log) == 1 + len(pipeline.slots)  # every slot's stream waited for first
    pipeline.unregister_host("slot 0")  # once only: nothing happens the second time
    assert driver.log.count("unregister") == 1
    pipeline.collect()
    pipeline.submit_rows([ring.pixels(0, H, W), None], "after")  # no longer page-locked: copied
    assert pipeline.rows_copied == 1
    pipeline.collect()
    pipeline.close()


def test_the_worker_uploads_ring_frames_without_a_host_copy_and_returns_slots_after_their_upload(
        driver: PinningDriver, ring: FrameRing) -> None:
    backend = RecordedSlotBackend()
    told: List[str] = []
    pinning = RingPinning(backend, told.append)
    assert pinning.opened(ring) and pinning.pinned_rings == 1 and len(driver.pinned) == ring.slots
    returned = ReturnedSlots(lambda slot: driver.reading(ring.slot_memory(slot, H * W)), WAIT)
    published: List[int] = []

    def publish(camera: int, pending: Pending, labels: np.ndarray) -> None:
        published.append(camera)
        pending.release()  # what the node does after publishing

    worker = BatchWorker(backend, ["a", "b"], publish, batch_timeout_s=1e6)
    worker.start()
    try:
        post_ring_batches(worker, ring, 3, N, (H, W), returned, lambda slot, value: fill(ring, slot, value))
    finally:
        worker.stop()
    assert sorted(published) == [0, 0, 0, 1, 1, 1]
    assert backend.pipeline.rows_direct == 6 and backend.pipeline.rows_copied == 0
    assert [reading for _, reading in returned.returned] == [False] * 6  # never given back under a queued upload
    pinning.closed(ring)
    assert driver.pinned == [] and driver.log[-1] == "unregister"
    assert len(told) == 1 and "straight from their rings" in told[0]
    backend.close()


def test_without_page_locking_frames_are_copied_as_before_said_once(driver: PinningDriver, tmp_path: Path) -> None:
    told: List[str] = []
    rings = [FrameRing.create(f"trtseg-test-0-{g}", 2, H * W, directory=tmp_path) for g in (1, 2)]
    pinning = RingPinning(CpuBackend(), told.append)
    assert [pinning.opened(r) for r in rings] == [False, False]
    assert told == ["camera frames are copied from their rings on the host before the upload: the cpu_probe "
                    "backend runs on the CPU"]
    pinning.closed(rings[0])  # nothing registered, nothing to undo

    float_input = RecordedSlotBackend(input_format="float_normalised")  # frames converted on the host anyway
    told.clear()
    assert not RingPinning(float_input, told.append).opened(rings[1])
    assert "float_normalised" in told[0] and driver.pinned == []
    float_input.close()

    class Refusing(PinningDriver):
        def page_lock(self, start: int, nbytes: int) -> None:
            if len(self.pinned) == 1:  # the second slot fails: the first is undone too
                raise RuntimeError("cuMemHostRegister refused 4096 bytes (CUresult 801)")
            super().page_lock(start, nbytes)

    refusing = Refusing()
    refusing.streams = []  # type: ignore[attr-defined]
    # monkeypatch (the fixture's) restores all three
    cuda_slots.load_pycuda = lambda: refusing  # type: ignore[assignment]
    cuda_slots.page_lock, cuda_slots.page_unlock = refusing.page_lock, refusing.page_unlock  # type: ignore[assignment]
    backend = RecordedSlotBackend()
    told.clear()
    assert not RingPinning(backend, told.append).opened(rings[1])
    assert refusing.pinned == [] and "CUresult 801" in told[0]
    backend.submit_batch([rings[1].pixels(0, H, W), None])  # copied, as before
    backend.collect()
    assert backend.pipeline.rows_copied == 1
    backend.close()
    for made in rings:
        made.unlink()


def test_an_undo_that_fails_is_logged_not_raised(driver: PinningDriver, ring: FrameRing) -> None:
    """The reader thread that closes a ring goes on to restart its camera: a failing unregistration must not end it."""
    backend = RecordedSlotBackend()
    told: List[str] = []
    pinning = RingPinning(backend, told.append)
    assert pinning.opened(ring)

    def refuse(start: int) -> None:
        raise RuntimeError("cuMemHostUnregister failed (CUresult 713)")

    cuda_slots.page_unlock = refuse  # type: ignore[assignment]  # the fixture's monkeypatch restores it
    pinning.closed(ring)
    assert len(told) == 1 + ring.slots and all("CUresult 713" in text for text in told[1:])
    backend.close()  # frees the slots although nothing could be unregistered
