"""Counts across the process boundary, directly: a camera I/O process (io_supervisor + io_process, real rclpy in a
process of its own) tells the inference process about every frame it takes exactly once, bad ones included, and in
order. A publisher process sends good and bad frames back to back (reliable, no pacing on the node's answers); the
supervisor's sink must account for each of them within a few seconds, not by a publisher giving up.
"""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

import numpy as np
from node_harness import encode_frame, finish, save_frames, start_publisher

from trt_segmentation.node.camera_io.frame_ring import FrameRing, SlotFrame
from trt_segmentation.node.camera_io.io_supervisor import CameraIoSpec, IoSettings, IoSupervisor

H, W = 60, 80
TOPIC = "/io_counts/image"


class RecordingSink:
    """The FrameSink and IoSink of a supervisor: records what the I/O process tells, in arrival order, and gives
    every slot straight back."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, str]] = []
        self._lock = threading.Lock()

    def _add(self, kind: str, detail: str) -> None:
        with self._lock:
            self.events.append((kind, detail))

    def post_frame(self, camera: int, frame: SlotFrame) -> None:
        pixels = frame.pixels()
        self._add("frame", f"{frame.header.frame_id} {pixels.shape[0]}x{pixels.shape[1]} {int(pixels[0, 0, 0])}")
        frame.release()

    def refuse(self, camera: int, text: str) -> None:
        self._add("refused", text)

    def drop_taken(self, camera: int) -> None:
        self._add("ring_full", "")

    def qos_problem(self, camera: int, text: str) -> None:
        self._add("qos", text)

    def io_state(self, camera: int, error: str) -> None:
        if error:
            self._add("io_error", error)

    def ring_opened(self, camera: int, ring: FrameRing) -> None:
        pass

    def ring_closed(self, camera: int, ring: FrameRing) -> None:
        pass

    def counted(self) -> List[Tuple[str, str]]:
        with self._lock:
            return [e for e in self.events if e[0] in ("frame", "refused", "ring_full")]


def frame(value: int, **override: object) -> dict:
    rgb = np.full((H, W, 3), value, np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    return dict({"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data}, **override)


def test_every_frame_an_io_process_takes_is_told_once_in_order_bad_ones_included(tmp_path) -> None:
    good = [frame(10), frame(20), frame(30)]
    plan = [good[0], dict(good[0], data=good[0]["data"][:100]), good[1], frame(0, encoding="16UC1"),
            frame(0, height=H * 100, width=W * 100, step=W * 300), good[2]]
    kinds = ["frame", "refused", "frame", "refused", "refused", "frame"]
    path = save_frames(tmp_path / "frames.npz", plan)
    sink = RecordingSink()
    settings = IoSettings(node_name="io_counts", namespace="/", compressed=False, order="rgb",
                          max_pixels=H * W * 4, slots=4, reliability="reliable", depth=10)
    supervisor = IoSupervisor([CameraIoSpec("", TOPIC)], settings, sink, sink)
    try:
        assert supervisor.start(wait_s=60), "the I/O process did not subscribe in 60 s"
        publisher = start_publisher(path, TOPIC, rate=50.0, reliable=True, frame_id_prefix="f")
        deadline = time.monotonic() + 20
        while len(sink.counted()) < len(plan) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "sent 6" in finish(publisher, 60)
        time.sleep(0.5)  # anything told twice would arrive now
        counted = sink.counted()
    finally:
        supervisor.stop()
    assert [kind for kind, _ in counted] == kinds, sink.events
    frames = [detail for kind, detail in counted if kind == "frame"]
    assert frames == [f"f0 {H}x{W} 10", f"f2 {H}x{W} 20", f"f5 {H}x{W} 30"], frames
    refusals = [detail for kind, detail in counted if kind == "refused"]
    assert "data" in refusals[0] and "16UC1" in refusals[1] and "max_input_pixels" in refusals[2], refusals
