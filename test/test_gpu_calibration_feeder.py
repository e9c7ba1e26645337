"""The implicit INT8 calibrator's device buffer and the TensorRT dtype table, with pycuda on a real CUDA GPU.

Skipped without pycuda and a CUDA device (CI, the CPU dev machine); run on the device GPU like test_gpu_slots.py.
TensorRT is not needed: :class:`CalibrationFeeder` is everything of the calibrator but TensorRT's base class.
Proves, for a uint8 camera-byte export and a float-normalised one: the buffer has exactly the network input's
size, what TensorRT would read at ``get_batch``'s pointer equals the runtime's own preprocessing of each frame
byte for byte, the feed ends after the last frame (a batch-3 network gets 3 frames per input), and every dtype of the table survives page-locked host ->
device -> host memory unchanged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

from trt_segmentation.runtime.cuda_slots import CudaUnavailable, load_pycuda  # noqa: E402

try:
    cuda = load_pycuda()
except CudaUnavailable as exc:  # pragma: no cover - depends on the machine
    pytest.skip(f"no pycuda/CUDA: {exc}", allow_module_level=True)

from trt_segmentation.engine.calibration_feeder import CalibrationFeeder  # noqa: E402
from trt_segmentation.onnx_metadata import (
    ModelContract,  # noqa: E402
    to_network_input,  # noqa: E402
)
from trt_segmentation.runtime.tensorrt_backend import NUMPY_DTYPES, numpy_dtype  # noqa: E402

H, W = 96, 160
CONTRACT = ModelContract(model="m", num_classes=19, height=H, width=W, input_format="uint8_rgb",
                         output="labels_uint8", input_name="image", output_name="labels",
                         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _frames(count: int = 5) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (count, H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("input_format,shape,dtype", [("uint8_rgb", (1, H, W, 3), np.uint8),
                                                      ("uint8_bgr", (1, H, W, 3), np.uint8),
                                                      ("float_normalised", (1, 3, H, W), np.float32)])
def test_feeder_puts_exactly_the_network_input_on_the_device(input_format: str, shape: tuple, dtype: type) -> None:
    contract = replace(CONTRACT, input_format=input_format)
    frames = _frames()
    feeder = CalibrationFeeder(frames, contract, device=0)
    try:
        assert feeder.shape == shape and feeder.dtype == np.dtype(dtype)
        assert feeder.nbytes == int(np.prod(shape)) * np.dtype(dtype).itemsize  # 4x the frame for float input
        feeder.check_network_input({"name": "image", "shape": list(shape), "dtype": "FLOAT" if dtype is np.float32
                                    else "UINT8"})
        with pytest.raises(ValueError, match="the calibration frames are"):
            feeder.check_network_input({"name": "image", "shape": [1, H, W, 3] if dtype is np.float32 else
                                        [1, 3, H, W], "dtype": "UINT8" if dtype is np.float32 else "FLOAT"})
        for i, frame in enumerate(frames):
            pointer = feeder.next_pointer()
            assert pointer is not None
            back = np.empty(shape, dtype)
            cuda.memcpy_dtoh(back, pointer)  # what TensorRT reads at the pointer, from device memory
            expected = np.ascontiguousarray(to_network_input(frame, contract), dtype=dtype)
            assert np.array_equal(back, expected), (input_format, i)
        assert feeder.next_pointer() is None  # TensorRT ends calibration on an empty batch
    finally:
        feeder.close()
        feeder.close()


@pytest.mark.parametrize("input_format", ["uint8_rgb", "float_normalised"])
def test_batch_3_feeder_puts_three_frames_per_network_input(input_format: str) -> None:
    """A static batch-3 network (multi-camera engine): each pointer holds one (3, ...) input, whole inputs only."""
    contract = replace(CONTRACT, input_format=input_format, batch=3)
    frames = _frames(7)  # two whole inputs; the seventh frame cannot fill a third one
    feeder = CalibrationFeeder(frames, contract, device=0)
    try:
        shape = (3, 3, H, W) if input_format == "float_normalised" else (3, H, W, 3)
        assert feeder.shape == shape and len(feeder) == 2
        for i in range(2):
            pointer = feeder.next_pointer()
            assert pointer is not None
            back = np.empty(shape, feeder.dtype)
            cuda.memcpy_dtoh(back, pointer)
            expected = to_network_input(frames[3 * i : 3 * i + 3], contract)
            assert np.array_equal(back, np.ascontiguousarray(expected, dtype=feeder.dtype)), i
        assert feeder.next_pointer() is None
    finally:
        feeder.close()


@pytest.mark.parametrize("name", sorted(NUMPY_DTYPES))
def test_dtype_table_round_trips_through_device_memory(name: str) -> None:
    dtype = numpy_dtype(name)
    context = cuda.Device(0).retain_primary_context()
    context.push()
    try:
        host = cuda.pagelocked_empty((4, 33), dtype)
        values = np.random.default_rng(3).integers(0, 2 if dtype == np.bool_ else 120, host.shape)
        host[...] = values.astype(dtype)
        device = cuda.mem_alloc(host.nbytes)
        cuda.memcpy_htod(device, host)
        back = cuda.pagelocked_empty(host.shape, dtype)
        cuda.memcpy_dtoh(back, device)
        device.free()
        assert back.dtype == dtype and host.nbytes == host.size * dtype.itemsize and np.array_equal(back, host)
    finally:
        cuda.Context.pop()
        context.detach()
