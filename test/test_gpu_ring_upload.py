"""Frames reach the GPU straight from the camera's shared-memory ring (issue #31), on a real GPU.

Skipped without torch+CUDA+pycuda (CI, the CPU dev machine); run on the device GPU (scripts/gpu_figures.sh).
A real FrameRing page-locked through RingPinning (cuMemHostRegister) feeds the torch backend: through the node's
BatchWorker and FrameWorker, the inference process copies no frame byte on the host (the pipeline counts every row
it copies and every row it uploads from registered memory), the labels agree with those of the copying path, each
ring slot is given back after its labels came back, and once the registration is undone frames are copied again.
test/test_node_ring_pinning.py checks the same logic on the CPU.
"""

from __future__ import annotations

import copy
import os
import time
from typing import List, Tuple

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - depends on the machine
    pytest.skip("no CUDA GPU", allow_module_level=True)
pytest.importorskip("pycuda.driver")

from node_fixtures import ReturnedSlots, post_ring_batches  # noqa: E402

from trt_segmentation.image_cdr import Header, Stamp  # noqa: E402
from trt_segmentation.node.batch_worker import BatchWorker  # noqa: E402
from trt_segmentation.node.camera_io.frame_ring import FrameRing, SlotFrame, ring_name  # noqa: E402
from trt_segmentation.node.frame_worker import FrameWorker  # noqa: E402
from trt_segmentation.node.frames import Pending  # noqa: E402
from trt_segmentation.node.ring_pinning import RingPinning  # noqa: E402
from trt_segmentation.runtime.torch_backend import TorchBackend  # noqa: E402

H, W, CAMERAS = 256, 512, 2
WAIT = 60.0


def test_ring_frames_reach_the_gpu_without_a_host_copy(random_model_factory) -> None:
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    model = random_model_factory("single_scale", "resnet18", seed=31)
    rng = np.random.default_rng(31)
    frames = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(2 * CAMERAS)]
    ring = FrameRing.create(ring_name(os.getpid(), 90, 1), 2 * CAMERAS, H * W)  # in /dev/shm, as the node's
    backend = TorchBackend(copy.deepcopy(model), H, W, slots=2, precision="fp16", batch=CAMERAS)
    told: List[str] = []
    try:
        expected = [backend.infer_batch(frames[i:i + CAMERAS]).labels for i in (0, CAMERAS)]  # the copying path
        pipeline = backend.pipeline
        assert (pipeline.rows_copied, pipeline.rows_direct) == (2 * CAMERAS, 0)
        pinning = RingPinning(backend, told.append)
        assert pinning.opened(ring), told
        for slot, frame in enumerate(frames):
            ring.pixels(slot, H, W)[:] = frame
        returned = ReturnedSlots(wait_s=WAIT)
        published: List[Tuple[int, int, np.ndarray]] = []

        def publish(camera: int, pending: Pending, labels: np.ndarray) -> None:
            published.append((camera, pending.source.slot, labels.copy()))
            pending.release()

        worker = BatchWorker(backend, ["a", "b"], publish, batch_timeout_s=1e6)
        worker.start()
        try:
            post_ring_batches(worker, ring, 2, CAMERAS, (H, W), returned)
        finally:
            worker.stop()
        assert (pipeline.rows_copied, pipeline.rows_direct) == (2 * CAMERAS, 2 * CAMERAS)  # no frame copied
        assert sorted(returned.slots) == list(range(2 * CAMERAS))
        for camera, slot, labels in published:  # the same bytes ran (a wrong row would agree on ~5 % of pixels)
            agreement = float((labels == expected[slot // CAMERAS][slot % CAMERAS]).mean())
            assert agreement > 0.999, (camera, slot, agreement)
        pinning.closed(ring)
        backend.infer_batch([ring.pixels(0, H, W), ring.pixels(1, H, W)])  # no longer registered: copied
        assert pipeline.rows_copied == 3 * CAMERAS
        assert "straight from their rings" in told[0] and len(told) == 1
    finally:
        backend.close()
        ring.unlink()


def test_one_camera_frames_reach_the_gpu_without_a_host_copy(random_model_factory) -> None:
    model = random_model_factory("single_scale", "resnet18", seed=32)
    rng = np.random.default_rng(32)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    ring = FrameRing.create(ring_name(os.getpid(), 91, 1), 3, H * W)
    backend = TorchBackend(copy.deepcopy(model), H, W, slots=2, precision="fp16")
    try:
        expected = backend.infer(frame).labels
        assert RingPinning(backend, lambda text: None).opened(ring)
        ring.pixels(1, H, W)[:] = frame
        returned = ReturnedSlots(wait_s=WAIT)
        published: List[np.ndarray] = []

        def publish(pending: Pending, labels: np.ndarray) -> None:
            published.append(labels.copy())
            pending.release()

        worker = FrameWorker(backend, publish)
        worker.start()
        try:
            worker.post_frame(0, SlotFrame(ring, 1, Header(Stamp(1, 0), b"cam"), H, W, returned, time.time_ns()))
            returned.wait(1)
        finally:
            worker.stop()
        assert (backend.pipeline.rows_copied, backend.pipeline.rows_direct) == (1, 1)
        assert returned.slots == [1] and float((published[0] == expected).mean()) > 0.999
    finally:
        backend.close()
        ring.unlink()
