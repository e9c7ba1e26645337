"""In-flight CUDA slots with pycuda: page-locked host buffers, device buffers, a stream and timing events each.

A frame (or a batch: N frames, one per camera, row i of the slot's input) goes through one slot as: host copy
into the page-locked input (CPU; a batch row by row, no stacking copy) -> async host-to-device copy ->
the executor's kernels (TensorRT ``execute_async_v3`` or PyTorch on the same stream) -> async device-to-host
copy, with CUDA events between the steps. A row that already lies in host memory page-locked with
:meth:`SlotPipeline.register_host` (the node's shared-memory frame rings) skips the host copy: its bytes are
uploaded straight from there, one async copy per row. With two or more slots the CPU prepares frame N+1 while the GPU
runs frame N; results are collected strictly in submission order. The executor is a small callable so the
same machinery serves TensorRT (on the Jetson) and PyTorch (on any CUDA machine, where it is tested).

pycuda is imported when a pipeline is created, never at module import: this module loads on CPU-only machines.
Works from any thread: every call makes the device's primary context (shared with PyTorch) current.
:class:`SlotBackend` is what the TensorRT and PyTorch backends share on top of a pipeline.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

# typing's, not collections.abc's: Executor below is subscripted at import time, which collections.abc.Callable
# supports only from Python 3.9 (JetPack 5 runs 3.8)
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..artifacts import InputFormat
from ..cuda_driver import CudaUnavailable, load_pycuda
from ..onnx_metadata import to_network_input
from .backend import Backend, BackendError, InferenceResult, to_labels

#: ``executor(slot_index, input_device_pointer, output_device_pointer, stream_handle)`` enqueues the network
#: on the stream; it must not synchronise. An executor may also have a ``prepare`` method of the same signature,
#: called once per slot when the pipeline is created (warm-up, CUDA graph capture); it may synchronise.
Executor = Callable[[int, int, int, int], None]


@dataclass
class Slot:
    """Buffers, stream and events of one frame in flight."""

    index: int
    stream: Any
    host_in: np.ndarray
    device_in: Any
    host_out: np.ndarray
    device_out: Any
    events: tuple[Any, Any, Any, Any]  # start, after host-to-device, after executor, after device-to-host
    tag: Any = None
    host_ms: float = 0.0
    busy: bool = False


@dataclass
class SlotResult:
    tag: Any
    output: np.ndarray
    timings_ms: dict[str, float] = field(default_factory=dict)


class SlotPipeline:
    """``slots`` frames in flight on one GPU; :meth:`submit` enqueues, :meth:`collect` returns the oldest."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        input_dtype: np.dtype[Any] | type,
        output_shape: tuple[int, ...],
        output_dtype: np.dtype[Any] | type,
        executor: Executor,
        slots: int = 2,
        device: int = 0,
    ) -> None:
        if slots < 1:
            raise ValueError(f"need at least one slot, got {slots}")
        cuda = load_pycuda()
        self._cuda = cuda
        self.device = cuda.Device(device)
        self._context = self.device.retain_primary_context()
        self.executor = executor
        self._order: deque[Slot] = deque()
        self._submitted = 0
        # page-locked host memory of others (frame rings): key -> (first address, end address, the memory)
        self._registered: Dict[Hashable, Tuple[int, int, Any]] = {}
        self._lock = threading.Lock()  # the registrations against an upload enqueued from them
        self.rows_copied = 0  # rows copied on the host into a slot's page-locked input (what a test counts)
        self.rows_direct = 0  # rows uploaded straight from registered memory
        with self.active():
            self.slots = [self._make_slot(i, input_shape, input_dtype, output_shape, output_dtype) for i in
                          range(slots)]
            prepare = getattr(executor, "prepare", None)
            for slot in self.slots:  # an executor may set itself up per slot (e.g. capture a CUDA graph)
                if prepare is not None:
                    prepare(slot.index, int(slot.device_in), int(slot.device_out), slot.stream.handle)
                slot.stream.synchronize()

    def _make_slot(self, index: int, in_shape: tuple[int, ...], in_dtype: Any, out_shape: tuple[int, ...],
                   out_dtype: Any) -> Slot:
        cuda = self._cuda
        host_in = cuda.pagelocked_empty(in_shape, in_dtype)
        host_in.fill(0)  # a padded batch row (never written) holds zeros, not stale page contents such as NaNs
        host_out = cuda.pagelocked_empty(out_shape, out_dtype)
        # the collector waits on the last one (collect): a blocking-sync event puts its thread to sleep until the
        # GPU signals, where a default event in the primary context (CU_CTX_SCHED_AUTO) spins a CPU core for the
        # whole inference (on an Orin Nano one of its 6 cores, and power); the timing events stay default
        events = (cuda.Event(), cuda.Event(), cuda.Event(), cuda.Event(cuda.event_flags.BLOCKING_SYNC))
        stream, device_in = cuda.Stream(), cuda.mem_alloc(host_in.nbytes)
        # zeros on the device too: a padded row is never uploaded (submit_rows), so it holds these until written
        cuda.memcpy_htod_async(device_in, host_in, stream)
        return Slot(index, stream, host_in, device_in, host_out, cuda.mem_alloc(host_out.nbytes), events)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make the device's primary context current in this thread for the block."""
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    @property
    def capacity(self) -> int:
        return len(self.slots)

    @property
    def in_flight(self) -> int:
        return len(self._order)

    def submit(self, array: np.ndarray, tag: Any = None) -> None:
        """Copy ``array`` (network input layout; any strides) into the next slot and enqueue its work."""
        slot = self._next_slot()
        t0 = time.perf_counter()
        np.copyto(slot.host_in, array.reshape(slot.host_in.shape), casting="same_kind")
        with self._lock:
            self._enqueue(slot, tag, (time.perf_counter() - t0) * 1e3, [slot.host_in])

    def submit_rows(self, rows: Sequence[Optional[np.ndarray]], tag: Any = None) -> None:
        """Row i of the next slot's input is ``rows[i]`` (one frame in network input layout without the batch axis;
        any strides); enqueue its work. A row inside registered memory (:meth:`register_host`), C-contiguous and of
        the input's row type, is uploaded straight from there; any other is copied into the slot's page-locked
        input first. A ``None`` row is not uploaded (padding: the device row holds what that slot ran last, or
        zeros). The caller keeps a directly uploaded row's memory unchanged until :meth:`collect` returned it."""
        slot = self._next_slot()
        if len(rows) != slot.host_in.shape[0]:
            raise ValueError(f"{len(rows)} rows for a slot input of {slot.host_in.shape[0]} (shape {slot.host_in.shape})")
        t0 = time.perf_counter()
        with self._lock:
            sources: List[Optional[np.ndarray]] = []
            for index, row in enumerate(rows):
                if row is None:
                    sources.append(None)
                elif self._is_registered(row, slot.host_in[index]):
                    sources.append(row)
                    self.rows_direct += 1
                else:
                    target = slot.host_in[index]
                    np.copyto(target, row.reshape(target.shape), casting="same_kind")
                    sources.append(target)
                    self.rows_copied += 1
            self._enqueue(slot, tag, (time.perf_counter() - t0) * 1e3, sources)

    # ---------------------------------------------------------------- registered host memory
    def register_host(self, key: Hashable, memory: np.ndarray) -> None:
        """Page-lock ``memory`` (a C-contiguous array whose buffer outlives the registration, e.g. a frame ring's
        slot) for the device, so that rows inside it upload without a host copy; raises what the driver raised
        (the caller falls back to copying)."""
        if not memory.flags.c_contiguous:
            raise ValueError("only C-contiguous memory can be registered")
        with self._lock, self.active():
            if key in self._registered:
                raise ValueError(f"{key!r} is registered already")
            start = memory.__array_interface__["data"][0]
            page_lock(start, memory.nbytes)
            self._registered[key] = (start, start + memory.nbytes, memory)  # the registration keeps its memory

    def unregister_host(self, key: Hashable) -> None:
        """Give ``key``'s memory its page lock back, once every upload enqueued from it has completed (waits for
        every slot's stream); nothing when it is not registered."""
        with self._lock:
            entry = self._registered.pop(key, None)
            if entry is not None:
                self._unpin(entry[0])

    def _unpin(self, address: int) -> None:
        with self.active():
            for slot in self.slots:
                slot.stream.synchronize()  # no upload enqueued from it is still reading
            page_unlock(address)

    def _is_registered(self, row: np.ndarray, target: np.ndarray) -> bool:
        if not self._registered or row.dtype != target.dtype or row.size != target.size or not row.flags.c_contiguous:
            return False
        start = row.__array_interface__["data"][0]
        end = start + row.nbytes
        return any(first <= start and end <= last for first, last, _ in self._registered.values())

    def _next_slot(self) -> Slot:
        if self.in_flight >= self.capacity:
            raise RuntimeError(f"all {self.capacity} slots are in flight; collect() first")
        return self.slots[self._submitted % self.capacity]

    def _enqueue(self, slot: Slot, tag: Any, host_ms: float, sources: Sequence[Optional[np.ndarray]]) -> None:
        """Record the start, upload ``sources`` (row i of the input from ``sources[i]``, or the whole input from
        one source of its size; ``None`` rows skipped), run the executor, download (call holding ``_lock``)."""
        slot.host_ms = host_ms
        start, uploaded, computed, downloaded = slot.events
        cuda = self._cuda
        row_bytes = slot.host_in.nbytes // slot.host_in.shape[0]
        with self.active():
            start.record(slot.stream)
            for index, source in enumerate(sources):
                if source is not None:
                    cuda.memcpy_htod_async(int(slot.device_in) + index * row_bytes, source, slot.stream)
            uploaded.record(slot.stream)
            try:
                self.executor(slot.index, int(slot.device_in), int(slot.device_out), slot.stream.handle)
            except BaseException:
                # the upload is already queued and still reads the page-locked input: wait for the slot's stream
                # before the slot counts as free again, so the next submit never rewrites memory being read
                slot.stream.synchronize()
                raise
            computed.record(slot.stream)
            cuda.memcpy_dtoh_async(slot.host_out, slot.device_out, slot.stream)
            downloaded.record(slot.stream)
        slot.tag = tag
        slot.busy = True
        self._order.append(slot)
        self._submitted += 1

    def collect(self) -> SlotResult:
        """Wait for the oldest frame; its output (a copy: the slot is reused) and stage timings in ms."""
        if not self._order:
            raise RuntimeError("nothing in flight to collect")
        slot = self._order.popleft()
        start, uploaded, computed, downloaded = slot.events
        with self.active():
            downloaded.synchronize()
            timings = {
                "host_copy": slot.host_ms,
                "h2d": uploaded.time_since(start),
                "inference": computed.time_since(uploaded),
                "d2h": downloaded.time_since(computed),
            }
        output = slot.host_out.copy()
        slot.busy = False
        slot.tag, tag = None, slot.tag
        return SlotResult(tag, output, timings)

    def close(self) -> None:
        """Wait for pending work and free the device buffers. Safe to call twice."""
        if not getattr(self, "slots", None):
            return
        with self._lock:
            for entry in self._registered.values():
                try:
                    self._unpin(entry[0])
                except RuntimeError:  # best effort: the buffers below are freed either way
                    pass
            self._registered.clear()
        with self.active():
            for slot in self.slots:
                slot.stream.synchronize()
                slot.device_in.free()
                slot.device_out.free()
        self.slots = []
        self._order.clear()
        self._context.detach()


@functools.lru_cache(maxsize=None)
def _libcuda() -> ctypes.CDLL:
    lib = ctypes.CDLL("libcuda.so.1")
    lib.cuMemHostRegister_v2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]
    lib.cuMemHostUnregister.argtypes = [ctypes.c_void_p]
    return lib


def page_lock(address: int, nbytes: int) -> None:
    """Page-lock ``nbytes`` of host memory at ``address`` for the current CUDA context (cuMemHostRegister, called
    through ctypes: pycuda's register_host_memory raised SystemError on a view of a shared-memory mapping, H100
    2026-12-07); RuntimeError with the driver's code when it refuses."""
    code = _libcuda().cuMemHostRegister_v2(address, nbytes, 0)
    if code != 0:
        raise RuntimeError(f"cuMemHostRegister refused {nbytes} bytes (CUresult {code})")


def page_unlock(address: int) -> None:
    """Undo :func:`page_lock` of the memory at ``address`` (cuMemHostUnregister)."""
    code = _libcuda().cuMemHostUnregister(address)
    if code != 0:
        raise RuntimeError(f"cuMemHostUnregister failed (CUresult {code})")


def stage_timings(gpu_ms: dict[str, float]) -> dict[str, float]:
    """A slot's timings as the backend stages: host copy + upload, the executor, the download."""
    return {"preprocess": gpu_ms["host_copy"] + gpu_ms["h2d"], "inference": gpu_ms["inference"],
            "postprocess": gpu_ms["d2h"]}


class SlotBackend(Backend):
    """A backend whose frames run on ``self.pipeline`` (a :class:`SlotPipeline` the subclass creates, its input
    the network input of ``contract.batch`` frames): submit, submit_batch, collect, in-flight count, synchronous
    infer and close are the pipeline's. ``max_in_flight`` is the pipeline's slot count (the subclass sets it)."""

    pipeline: SlotPipeline
    #: also report the slot's raw stage timings as ``gpu_<stage>`` (the torch backend does)
    gpu_timings: bool = False

    def submit(self, image: np.ndarray, tag: Any = None) -> None:
        self.require_single_frame("submit")
        self.check_frame(image)
        self._check_capacity()
        # the slot carries (batched?, tag): whether labels keep the batch axis travels with its own submission;
        # a batch of one row, so a frame in registered memory is uploaded straight from there too
        self.pipeline.submit_rows([to_network_input(image, self.contract, contiguous=False)[0]], (False, tag))

    def submit_batch(self, frames: Sequence[Optional[np.ndarray]], tag: Any = None) -> None:
        self.check_batch(frames)
        self._check_capacity()
        rows = [None if image is None else to_network_input(image, self.contract, contiguous=False)[0]
                for image in frames]
        self.pipeline.submit_rows(rows, (True, tag))  # (batched?, tag), as in submit()

    def collect(self) -> tuple[Any, InferenceResult]:
        result = self.pipeline.collect()
        keep_batch, tag = result.tag
        timings = stage_timings(result.timings_ms)
        if self.gpu_timings:
            timings.update({f"gpu_{k}": v for k, v in result.timings_ms.items()})
        return tag, InferenceResult(to_labels(result.output, self.contract, keep_batch), timings)

    @property
    def in_flight(self) -> int:
        return self.pipeline.in_flight

    def register_host_memory(self, key: Hashable, memory: np.ndarray) -> Optional[str]:
        if not InputFormat.parse(self.contract.input_format).camera:
            return (f"the network input is {self.contract.input_format}: every frame is converted on the host "
                    "first")
        try:
            self.pipeline.register_host(key, memory)
        except Exception as exc:  # noqa: BLE001 - the driver's refusal is the reason given; the caller copies
            return f"page-locking failed: {type(exc).__name__}: {exc}"
        return None

    def unregister_host_memory(self, key: Hashable) -> None:
        if self.pipeline is not None:
            self.pipeline.unregister_host(key)

    def infer(self, image: np.ndarray) -> InferenceResult:
        self.require_single_frame("infer")
        self._require_idle("infer")
        self.submit(image)
        return self.collect()[1]

    def infer_batch(self, frames: Sequence[Optional[np.ndarray]]) -> InferenceResult:
        self._require_idle("infer_batch")
        self.submit_batch(frames)
        return self.collect()[1]

    def _require_idle(self, call: str) -> None:
        if self.in_flight:
            raise BackendError(f"{call}() while frames are in flight; collect() them first")

    def close(self) -> None:
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            pipeline.close()
            self.pipeline = None  # type: ignore[assignment]


__all__ = ["CudaUnavailable", "Executor", "Slot", "SlotBackend", "SlotPipeline", "SlotResult", "load_pycuda",
           "stage_timings"]
