"""What the node tests share besides the harness: the model size and name, the folder behind the
``engine_dir`` fixture (declared in conftest.py, so every test module gets it without importing it), and ring
frames posted through a batch worker (the ring-upload tests, CPU and GPU)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

from node_harness import small_model_dir

from trt_segmentation.image_cdr import Header, Stamp
from trt_segmentation.node.camera_io.frame_ring import FrameRing, SlotFrame

H, W = 256, 512
MODEL = "swiftnet_ss_rn18"


def module_models(request: Any, tmp_path_factory: Any, random_model_factory: Any) -> Path:
    """A folder of the requesting test module holding ``swiftnet_ss_rn18_256x512_fp32.onnx`` (random weights,
    seed 0; exported once per session)."""
    module = request.module.__name__.rpartition(".")[2]
    return small_model_dir(tmp_path_factory, random_model_factory, f"{module.removeprefix('test_')}_models", (H, W))


class ReturnedSlots:
    """Stands for a camera I/O process's link: records each slot given back with ``probe(slot)`` at that moment."""

    def __init__(self, probe: Callable[[int], Any] = lambda slot: None, wait_s: float = 60.0) -> None:
        self.probe = probe
        self.wait_s = wait_s
        self.returned: List[Tuple[int, Any]] = []
        self.cv = threading.Condition()

    def release(self, slot: int) -> None:
        with self.cv:
            self.returned.append((slot, self.probe(slot)))
            self.cv.notify_all()

    @property
    def slots(self) -> List[int]:
        return [slot for slot, _ in self.returned]

    def wait(self, count: int) -> None:
        with self.cv:
            assert self.cv.wait_for(lambda: len(self.returned) >= count, self.wait_s), self.returned


def post_ring_batches(worker: Any, ring: FrameRing, batches: int, cameras: int, size: Tuple[int, int],
                      link: ReturnedSlots, write: Callable[[int, int], Any] = lambda slot, value: None) -> None:
    """Post ``batches`` rounds of one ring frame per camera (slots in turn; ``write(slot, 10 * batch + camera)``
    first) into a BatchWorker, waiting after each round until its slots came back."""
    header = Header(Stamp(1, 0), b"cam")
    for batch in range(batches):
        for camera in range(cameras):
            slot = (batch * cameras + camera) % ring.slots
            write(slot, 10 * batch + camera)
            worker.post_frame(camera, SlotFrame(ring, slot, header, size[0], size[1], link, time.time_ns(),
                                                time.monotonic_ns()))
        link.wait(cameras * (batch + 1))
