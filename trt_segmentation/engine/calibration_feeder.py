"""The device-memory side of TensorRT's implicit INT8 calibrator, without TensorRT: frames in the network's input
layout, one network input at a time, in a device buffer of exactly the input's size.

TensorRT reads ``get_batch``'s pointer as the network input (N x H x W x 3 uint8 for our camera-byte exports,
N x 3 x H x W float32 for a float-normalised one; N = the contract's static batch, 1 for one camera), so each run
of N frames is converted to that layout with the runtime's own preprocessing and its byte size checked against the
input before anything is copied: an input that does not fit is an error, never a read past the allocation. Kept apart from implicit_calibrator.py (which subclasses
TensorRT's calibrator) so that it runs, and is tested, with pycuda on any CUDA GPU.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import InputError
from ..onnx_metadata import ModelContract, to_network_input

LOG = logging.getLogger(__name__)


def network_input_spec(contract: ModelContract) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) of the graph input the contract describes (its static batch first)."""
    if not contract.input_format.camera:
        return (contract.batch, 3, contract.height, contract.width), np.dtype(np.float32)
    return (contract.batch, contract.height, contract.width, 3), np.dtype(np.uint8)


class CalibrationFeeder:
    """``frames`` (M x H x W x 3 uint8 camera frames in the contract's channel order) -> device buffer, one network
    input (``contract.batch`` consecutive frames; a leftover short of a whole input is not fed) at a time."""

    def __init__(self, frames: np.ndarray, contract: ModelContract, device: int = 0) -> None:
        from ..cuda_driver import load_pycuda

        expected = (contract.height, contract.width, 3)
        if frames.ndim != 4 or frames.dtype != np.uint8 or len(frames) == 0 or frames.shape[1:] != expected:
            raise ValueError(f"calibration frames must be a non-empty N x {expected[0]} x {expected[1]} x 3 uint8 "
                             f"array (the network input size), got {frames.shape} {frames.dtype}")
        if len(frames) < contract.batch:
            raise InputError(f"{len(frames)} calibration frame(s) are fewer than one input of the batch-"
                             f"{contract.batch} network")
        self.contract = contract
        self.shape, self.dtype = network_input_spec(contract)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        cuda = load_pycuda()
        self._cuda: Any = cuda
        self._context: Any = cuda.Device(device).retain_primary_context()  # TensorRT builds in the current context
        self._context.push()
        self._frames = frames
        self._next = 0
        self._device: Any = cuda.mem_alloc(self.nbytes)

    def __len__(self) -> int:
        """The number of network inputs fed (whole runs of ``contract.batch`` frames)."""
        return len(self._frames) // self.contract.batch

    def check_network_input(self, tensor: dict[str, Any]) -> None:
        """``tensor`` ({name, shape, dtype} of the parsed network's input) must be what the buffer holds."""
        dtype = {"UINT8": np.uint8, "FLOAT": np.float32, "HALF": np.float16}.get(str(tensor["dtype"]).upper())
        if tuple(tensor["shape"]) != self.shape or dtype is None or np.dtype(dtype) != self.dtype:
            raise ValueError(f"the network input {tensor['name']} is {tensor['dtype']} {tuple(tensor['shape'])}, the "
                             f"calibration frames are {self.dtype} {self.shape} (contract input format "
                             f"{self.contract.input_format}); re-export or pass the matching contract")

    def network_input(self, index: int) -> np.ndarray:
        """Network input ``index`` (frames ``index * batch`` onwards) in the network's layout, contiguous, its size
        checked."""
        batch = self.contract.batch
        frames = self._frames[index * batch : (index + 1) * batch]
        array = np.ascontiguousarray(to_network_input(frames, self.contract), dtype=self.dtype)
        if array.shape != self.shape or array.nbytes != self.nbytes:
            raise ValueError(f"calibration input {index} became {array.dtype} {array.shape}, the network input is "
                             f"{self.dtype} {self.shape}")
        return array

    def next_pointer(self) -> int | None:
        """Copy the next network input to the device; its device pointer, or None when all were fed."""
        if self._next >= len(self):
            return None
        if self._next % 16 == 0:
            LOG.info("implicit INT8 calibration: input %d/%d", self._next + 1, len(self))
        self._cuda.memcpy_htod(self._device, self.network_input(self._next))
        self._next += 1
        return int(self._device)

    def close(self) -> None:
        """Free the buffer and release the context. Safe to call twice."""
        if self._device is None:
            return
        self._device.free()
        self._device = None
        self._context.pop()
        self._context.detach()


__all__ = ["CalibrationFeeder", "network_input_spec"]
