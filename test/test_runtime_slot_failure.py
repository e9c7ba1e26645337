"""A slot whose TensorRT enqueue fails is left consistent (issue #18, defect 6).

TensorRT and pycuda cannot run here, so the two thin adapters meet recorded stand-ins: a pycuda driver that
records what each stream still has queued, and a TensorRT execution context whose ``set_tensor_address`` /
``execute_async_v3`` answer as told. What is checked is SlotPipeline's and TensorRtBackend._enqueue's own logic:
a False from TensorRT raises, and the already queued host-to-device copy of the page-locked input is waited for
before the slot can be reused (before the fix the slot was neither busy nor queued while its upload was pending,
so the next submit rewrote memory the GPU was still reading).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, List

import numpy as np
import pytest

from trt_segmentation.runtime import cuda_slots
from trt_segmentation.runtime.backend import BackendError
from trt_segmentation.runtime.cuda_slots import SlotPipeline
from trt_segmentation.runtime.tensorrt_backend import TensorRtBackend


class RecordedStream:
    """A CUDA stream that remembers the asynchronous work queued on it until ``synchronize``."""

    def __init__(self, log: List[str], index: int) -> None:
        self.log = log
        self.handle = 1000 + index
        self.queued: List[str] = []

    def synchronize(self) -> None:
        self.log.append(f"sync {self.handle}")
        self.queued.clear()


class RecordedDriver:
    """The part of ``pycuda.driver`` that SlotPipeline uses, recording calls instead of running them."""

    def __init__(self) -> None:
        self.log: List[str] = []
        self._streams = 0
        self.events: List[Any] = []  # every event made, with its flags
        self.event_flags = SimpleNamespace(DEFAULT=0, BLOCKING_SYNC=1)  # pycuda.driver.event_flags' values
        driver = self

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            def retain_primary_context(self) -> Any:
                return Context()

            def name(self) -> str:
                return "recorded"

        class Context:
            def push(self) -> None:
                pass

            def detach(self) -> None:
                pass

            @staticmethod
            def pop() -> None:
                pass

        class Event:
            def __init__(self, flags: int = 0) -> None:
                self.flags = flags
                driver.events.append(self)

            def record(self, stream: RecordedStream) -> None:
                stream.queued.append("event")

            def synchronize(self) -> None:
                pass

            def time_since(self, other: Any) -> float:
                return 0.0

        class Buffer:
            def __init__(self, nbytes: int) -> None:
                self.nbytes = nbytes

            def __int__(self) -> int:
                return 4096

            def free(self) -> None:
                pass

        def stream() -> RecordedStream:
            driver._streams += 1
            return RecordedStream(driver.log, driver._streams)

        self.Device, self.Context, self.Event, self.Stream = Device, Context, Event, stream
        self.mem_alloc = Buffer
        self.pagelocked_empty = np.empty

    def memcpy_htod_async(self, device: Any, host: np.ndarray, stream: RecordedStream) -> None:
        self.log.append(f"htod {stream.handle}")
        stream.queued.append("htod reads the page-locked input")

    def memcpy_dtoh_async(self, host: np.ndarray, device: Any, stream: RecordedStream) -> None:
        stream.queued.append("dtoh")


class RecordedContext:
    """A TensorRT execution context that answers as told and records its calls."""

    def __init__(self, bind: bool = True, execute: bool = True) -> None:
        self.bind, self.execute = bind, execute
        self.calls: List[str] = []

    def set_tensor_address(self, name: str, pointer: int) -> bool:
        self.calls.append(f"set_tensor_address {name}")
        return self.bind

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.calls.append("execute_async_v3")
        return self.execute


def _backend(contexts: List[RecordedContext]) -> TensorRtBackend:
    backend = TensorRtBackend.__new__(TensorRtBackend)  # its __init__ needs TensorRT; _enqueue needs only these
    backend._contexts = contexts  # type: ignore[attr-defined]
    backend.input_name, backend.output_name = "input", "logits"
    backend.path = Path("recorded.engine")
    return backend


@pytest.fixture()
def driver(monkeypatch: pytest.MonkeyPatch) -> RecordedDriver:
    recorded = RecordedDriver()
    monkeypatch.setattr(cuda_slots, "load_pycuda", lambda: recorded)
    return recorded


@pytest.mark.parametrize("failure", ["execute", "bind"])
def test_a_failed_enqueue_waits_for_the_queued_upload_and_frees_the_slot(driver: RecordedDriver,
                                                                          failure: str) -> None:
    contexts = [RecordedContext(bind=failure != "bind", execute=failure != "execute"), RecordedContext()]
    pipeline = SlotPipeline((4, 6, 3), np.uint8, (4, 6), np.uint8, _backend(contexts)._enqueue, slots=2)
    frame = np.full((4, 6, 3), 7, np.uint8)
    with pytest.raises(BackendError, match="execute_async_v3" if failure == "execute" else "set_tensor_address"):
        pipeline.submit(frame, "first")
    failed = pipeline.slots[0]
    assert driver.log[-2:] == [f"htod {failed.stream.handle}", f"sync {failed.stream.handle}"]
    assert failed.stream.queued == []  # nothing of the failed submission still reads the page-locked input
    assert not failed.busy and pipeline.in_flight == 0
    if failure == "bind":
        assert "execute_async_v3" not in contexts[0].calls  # never enqueued with a half-bound context
    contexts[0].bind = contexts[0].execute = True  # TensorRT recovers: the same slot is used again, in order
    pipeline.submit(frame, "second")
    assert pipeline.in_flight == 1 and pipeline.slots[0].busy
    assert pipeline.collect().tag == "second"
    pipeline.close()


def test_the_collector_sleeps_on_a_blocking_sync_event(driver: RecordedDriver) -> None:
    """Guards the Jetson CPU fix of #32: the event collect() synchronizes on is BLOCKING_SYNC (the thread sleeps
    until the GPU signals instead of spinning a core); the three timing events stay default."""
    pipeline = SlotPipeline((4, 6, 3), np.uint8, (4, 6), np.uint8, _backend([RecordedContext()] * 2)._enqueue, slots=2)
    for slot in pipeline.slots:
        start, uploaded, computed, downloaded = slot.events
        assert downloaded.flags == driver.event_flags.BLOCKING_SYNC
        assert start.flags == uploaded.flags == computed.flags == driver.event_flags.DEFAULT
    pipeline.submit(np.full((4, 6, 3), 7, np.uint8), "frame")
    assert pipeline.collect().tag == "frame"
    pipeline.close()
