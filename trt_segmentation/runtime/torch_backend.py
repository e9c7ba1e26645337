"""PyTorch backend on the CUDA slot machinery: the TensorRT backend's streams, buffers and events, with PyTorch
enqueuing the network on each slot's stream instead of ``execute_async_v3``.

On any CUDA GPU without TensorRT it runs a SwiftNet checkpoint fast: FP32 or FP16, channels-last, and the whole
network (uint8 frame in, uint8 labels out) captured once per slot as a CUDA graph over the slot's own device
buffers and replayed on the slot's stream, so a frame costs one graph launch instead of ~150 kernel launches
from Python. It also proves the slot machinery (copies, ordering, event timing) where TensorRT is absent.
torch is imported only when this backend is created.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from ..artifacts import InputFormat, Precision
from ..onnx_metadata import ModelContract
from .backend import BackendError
from .cuda_slots import CudaUnavailable, SlotBackend, SlotPipeline
from .torch_model import frames_to_labels, load_module, model_name, normalisation

#: what this backend can run; int8 and mixed need TensorRT (or ONNX Runtime on the Q/DQ files)
TORCH_PRECISIONS = (Precision.FP32, Precision.FP16)


def check_precision(precision: str | Precision) -> Precision:
    """``precision`` as the member this backend runs (a name, from the backend's options, is parsed here); refuse,
    clearly, a precision it cannot run."""
    try:
        member = Precision.parse(precision)
    except ValueError:
        member = None
    if member is None or member not in TORCH_PRECISIONS:
        raise BackendError(f"the torch backend runs {' or '.join(TORCH_PRECISIONS)}, not {precision}; int8 and "
                           "mixed need the tensorrt backend (or onnxruntime on their ONNX files)")
    return member


class _DeviceArray:
    """Exposes a raw device pointer through ``__cuda_array_interface__`` so torch views it without a copy."""

    def __init__(self, pointer: int, shape: Tuple[int, ...], typestr: str) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape, "typestr": typestr, "data": (pointer, False), "version": 3, "strides": None,
        }


class TorchExecutor:
    """``module(uint8 NHWC frames on the GPU) -> uint8 labels``, enqueued on the slot's stream.

    ``module`` maps a (N, 3, H, W) float 0..255 RGB tensor to (N, C, H, W) logits (SwiftNet.forward does); a slot
    holds ``batch`` frames (N). With
    ``cuda_graph`` each slot's forward pass is captured in :meth:`prepare` (after a warm-up that lets cuDNN pick
    its kernels) and replayed by :meth:`__call__`. All slots' graphs share ONE graph memory pool (the network's
    intermediate tensors exist once, not once per slot: a batch-4 1024x2048 network's activations are the bulk of
    the GPU memory), so their replays must never overlap: each replay waits on its slot's stream for the end of
    the previous one (a CUDA event). The slots' uploads and downloads still overlap the other slot's compute, and
    the GPU runs one network at a time anyway. The labels go to each slot's own output buffer, never to the pool.
    """

    def __init__(self, module: Any, height: int, width: int, channel_order: str = "rgb",
                 precision: str | Precision = Precision.FP32, cuda_graph: bool = True, batch: int = 1) -> None:
        import torch

        precision = check_precision(precision)
        self.torch = torch
        self.dtype = torch.float16 if precision is Precision.FP16 else torch.float32
        self.module = module.to(dtype=self.dtype, memory_format=torch.channels_last)
        if batch < 1:
            raise BackendError(f"batch must be at least 1, got {batch}")
        self.shape_in = (batch, height, width, 3)
        self.shape_out = (batch, height, width)
        self.flip = channel_order == "bgr"
        self.cuda_graph = cuda_graph
        self._streams: Dict[int, Any] = {}
        self._graphs: Dict[int, Tuple[Any, int, int]] = {}
        self._pool: Any = None  # the one graph memory pool of every slot's graph
        # every graph is captured on this one stream: PyTorch's caching allocator reuses a freed block only on the
        # stream it was allocated on, so captures on the slots' own streams could not share the pool's blocks
        # (measured on the H200 2026-12-04: 302 MiB per extra batch-4 512x1024 slot); a graph replays on any stream
        self._capture_stream: Any = None
        self._done: Dict[int, Any] = {}  # per slot: a CUDA event recorded after its replay
        self._last: Any = None  # the event of the replay enqueued last
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN time its algorithms once

    def _stream(self, handle: int) -> Any:
        stream = self._streams.get(handle)
        if stream is None:
            stream = self._streams[handle] = self.torch.cuda.ExternalStream(handle)  # type: ignore[no-untyped-call]
        return stream

    def _forward(self, input_ptr: int, output_ptr: int) -> None:
        torch = self.torch
        frame = torch.as_tensor(_DeviceArray(input_ptr, self.shape_in, "|u1"), device="cuda")
        labels = torch.as_tensor(_DeviceArray(output_ptr, self.shape_out, "|u1"), device="cuda")
        labels.copy_(frames_to_labels(self.module, frame, self.dtype, self.flip, channels_last=True))

    def prepare(self, slot: int, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        """Warm up on the slot's stream and, with ``cuda_graph``, capture its forward pass."""
        torch = self.torch
        stream = self._stream(stream_handle)
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                self._forward(input_ptr, output_ptr)
        stream.synchronize()
        if not self.cuda_graph:
            return
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
            self._capture_stream = torch.cuda.Stream()
        graph = torch.cuda.CUDAGraph()
        capture = self._capture_stream
        capture.wait_stream(stream)  # the warm-up on the slot's stream is done before the capture reads its buffers
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self._pool, stream=capture):
            self._forward(input_ptr, output_ptr)
        capture.synchronize()
        self._graphs[slot] = (graph, input_ptr, output_ptr)
        self._done[slot] = torch.cuda.Event()

    def __call__(self, slot: int, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        torch = self.torch
        stream = self._stream(stream_handle)
        entry = self._graphs.get(slot)
        with torch.cuda.stream(stream):
            if entry is not None and entry[1:] == (input_ptr, output_ptr):
                if self._last is not None:  # the shared pool: never two replays at once
                    stream.wait_event(self._last)
                entry[0].replay()
                done = self._done[slot]
                done.record(stream)
                self._last = done
                return
            with torch.inference_mode():
                self._forward(input_ptr, output_ptr)


class TorchBackend(SlotBackend):
    """SwiftNet (or any module with the same call signature) on CUDA, through :class:`SlotPipeline`; ``batch``
    frames per run (the contract records it: :meth:`submit_batch` for N > 1)."""

    name = "torch"
    gpu_timings = True

    def __init__(self, source: Any, height: int = 1024, width: int = 2048, slots: int = 2, device: int = 0,
                 input_format: InputFormat = InputFormat.UINT8_RGB, num_classes: int = 19,
                 precision: str | Precision = Precision.FP32, cuda_graph: bool = True, batch: int = 1) -> None:
        import torch

        precision = check_precision(precision)
        if not InputFormat.parse(input_format).camera:  # the executor reads uint8 frames from the slot
            raise BackendError(f"the torch backend takes uint8_rgb or uint8_bgr frames, not {input_format}")
        if batch < 1:
            raise BackendError(f"batch must be at least 1, got {batch}")
        if not torch.cuda.is_available():
            raise BackendError("the torch backend needs a CUDA GPU (torch.cuda.is_available() is False)")
        module = load_module(source)
        torch.cuda.set_device(device)
        torch.cuda.init()  # type: ignore[no-untyped-call]  # PyTorch creates the primary context that pycuda then shares
        module = module.eval().to(f"cuda:{device}")
        name = model_name(module)
        mean, std = normalisation(module)
        contract = ModelContract(
            model=name, num_classes=num_classes, height=height, width=width, input_format=input_format,
            output="labels_uint8", input_name="image", output_name="labels", mean=mean, std=std,
            precision=precision.value, extra={"executor": "cuda_graph" if cuda_graph else "eager"}, batch=batch,
        )
        super().__init__(contract)
        self.executor = TorchExecutor(module, height, width, contract.channel_order, precision, cuda_graph, batch)
        try:
            self.pipeline = SlotPipeline(self.executor.shape_in, np.uint8, self.executor.shape_out, np.uint8,
                                         self.executor, slots=slots, device=device)
        except CudaUnavailable as exc:
            raise BackendError(str(exc)) from exc
        self.max_in_flight = slots
        self.device_name = str(self.pipeline.device.name())
        # the warm-up's eager passes left their activations in PyTorch's cache; the graphs replay from their own
        # pool, so give that cache back (the GPU memory a node holds is then weights + one pool + slot buffers)
        torch.cuda.empty_cache()

    def describe(self) -> Dict[str, str]:
        info = super().describe()
        info["device"] = self.device_name
        info["slots"] = str(self.pipeline.capacity)
        info["executor"] = self.contract.extra["executor"]
        return info


__all__ = ["TORCH_PRECISIONS", "TorchBackend", "TorchExecutor"]
