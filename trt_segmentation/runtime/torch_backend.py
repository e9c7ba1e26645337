"""PyTorch backend on the CUDA slot machinery: the TensorRT backend's streams, buffers and events, with PyTorch
enqueuing the network on each slot's stream instead of ``execute_async_v3``.

It exists to prove the slot machinery (copies, ordering, event timing) on any CUDA GPU where TensorRT is not
available, and as a debugging aid. torch is imported only when this backend is created.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..onnx_metadata import ModelContract
from .backend import BackendError, InferenceResult
from .cuda_slots import CudaUnavailable, SlotBackend, SlotPipeline, stage_timings

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class _DeviceArray:
    """Exposes a raw device pointer through ``__cuda_array_interface__`` so torch views it without a copy."""

    def __init__(self, pointer: int, shape: tuple[int, ...], typestr: str) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape, "typestr": typestr, "data": (pointer, False), "version": 3, "strides": None,
        }


class TorchExecutor:
    """``module(uint8 NHWC frame on the GPU) -> uint8 labels``, enqueued on the slot's stream.

    ``module`` maps a (1, 3, H, W) float 0..255 RGB tensor to (1, C, H, W) logits (SwiftNet.forward does).
    """

    def __init__(self, module: Any, height: int, width: int, channel_order: str = "rgb") -> None:
        import torch

        self.torch = torch
        self.module = module
        self.shape_in = (1, height, width, 3)
        self.shape_out = (1, height, width)
        self.flip = channel_order == "bgr"
        self._streams: dict[int, Any] = {}

    def __call__(self, slot: int, input_ptr: int, output_ptr: int, stream_handle: int) -> None:
        torch = self.torch
        stream = self._streams.get(stream_handle)
        if stream is None:
            stream = self._streams[stream_handle] = torch.cuda.ExternalStream(stream_handle)
        with torch.cuda.stream(stream), torch.inference_mode():
            frame = torch.as_tensor(_DeviceArray(input_ptr, self.shape_in, "|u1"), device="cuda")
            labels = torch.as_tensor(_DeviceArray(output_ptr, self.shape_out, "|u1"), device="cuda")
            rgb = frame.permute(0, 3, 1, 2)
            if self.flip:
                rgb = rgb.flip(1)
            logits = self.module(rgb.float())
            labels.copy_(logits.argmax(1).to(torch.uint8))


def _load_module(source: Any) -> Any:
    if isinstance(source, (str, Path)):
        from ..models import load_checkpoint

        path = Path(source)
        if not path.is_file():
            raise BackendError(f"PyTorch checkpoint not found: {path}")
        return load_checkpoint(path)
    return source


class TorchBackend(SlotBackend):
    """SwiftNet (or any module with the same call signature) on CUDA, through :class:`SlotPipeline`."""

    name = "torch"

    def __init__(self, source: Any, height: int = 1024, width: int = 2048, slots: int = 2, device: int = 0,
                 input_format: str = "uint8_rgb", num_classes: int = 19) -> None:
        import torch

        if not torch.cuda.is_available():
            raise BackendError("the torch backend needs a CUDA GPU (torch.cuda.is_available() is False)")
        module = _load_module(source)
        torch.cuda.set_device(device)
        torch.cuda.init()  # PyTorch creates the primary context that pycuda then shares
        module = module.eval().to(f"cuda:{device}")
        name = getattr(getattr(module, "arch", None), "name", type(module).__name__)
        contract = ModelContract(
            model=name, num_classes=num_classes, height=height, width=width, input_format=input_format,
            output="labels_uint8", input_name="image", output_name="labels", mean=IMAGENET_MEAN, std=IMAGENET_STD,
            precision="fp32",
        )
        super().__init__(contract)
        self.executor = TorchExecutor(module, height, width, contract.channel_order)
        try:
            self.pipeline = SlotPipeline((1, height, width, 3), np.uint8, (1, height, width), np.uint8,
                                         self.executor, slots=slots, device=device)
        except CudaUnavailable as exc:
            raise BackendError(str(exc)) from exc
        self.max_in_flight = slots
        self.device_name = str(self.pipeline.device.name())

    def collect(self) -> tuple[Any, InferenceResult]:
        result = self.pipeline.collect()
        timings = stage_timings(result.timings_ms)
        timings.update({f"gpu_{k}": v for k, v in result.timings_ms.items()})
        return result.tag, InferenceResult(result.output[0], timings)

    def describe(self) -> dict[str, str]:
        info = super().describe()
        info["device"] = self.device_name
        info["slots"] = str(self.pipeline.capacity)
        return info


__all__ = ["TorchBackend", "TorchExecutor"]
