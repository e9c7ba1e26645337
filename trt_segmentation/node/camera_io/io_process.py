"""A camera's I/O process: ``python -m trt_segmentation.node.camera_io.io_process`` started and owned by the node
(io_supervisor.py).

It subscribes to the camera (serialized messages), takes each frame (rcl copies it out of the middleware while
holding this process's GIL, not the inference process's), decodes it (frames.decode_message, the one decode of
both programs: header and fields from the CDR bytes, image_cdr; checks and conversion, image_codec) and copies the
pixels once into a free slot of the shared-memory ring (frame_ring), then tells the inference process the slot
number and header (io_messages); the inference process gives the slot back once that frame's labels are published.
This process publishes nothing: its interpreter lock is left to the takes, which hold it for a whole frame copy (on
a saturated GPU node the takes alone held it 78 % of the time, and the first design, which also published the
labels here, starved its publisher behind them; docs/benchmarks.md). It ends when the inference process closes the
link or dies (PR_SET_PDEATHSIG, and the link's end of file), or on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, List, Optional

import numpy as np

from ...image_codec import CHANNEL_ORDERS
from ..frames import decode_message
from ..heap import keep_frames_on_heap
from ..qos import RELIABILITIES, subscribe_images
from ..teardown import teardown_ros
from .frame_ring import FrameRing
from .io_messages import BadFrame, FrameReady, QosProblem, Ready, Release, RingFull

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when its parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(0)


class RingFeeder:
    """Feeds one camera's frames into its ring: take -> convert -> free slot -> tell the link, and frees the slots
    the inference process gives back (no rclpy in here)."""

    def __init__(self, link: Connection, ring: FrameRing, order: str, max_pixels: int,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.link = link
        self.now_ns = now_ns  # the node's ROS clock (use_sim_time honoured), as the inference process's
        self.ring = ring
        self.order = order
        self.max_pixels = max_pixels
        self.free: List[int] = list(range(ring.slots))
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()

    def send(self, message: Any) -> None:
        with self.send_lock:
            self.link.send(message)

    # ---------------------------------------------------------------- executor thread
    def take(self, msg: Any, compressed: bool) -> None:
        received_ns, received_mono_ns = self.now_ns(), time.monotonic_ns()
        try:
            header, image = decode_message(msg, compressed, self.order, self.max_pixels)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is this frame's fault (frames.convert_frame)
            self.send(BadFrame(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)))
            return
        with self.lock:
            slot = self.free.pop(0) if self.free else None
        if slot is None:
            self.send(RingFull())
            return
        height, width = image.shape[:2]
        np.copyto(self.ring.pixels(slot, height, width), image)
        self.send(FrameReady(slot, header, height, width, received_ns, received_mono_ns))

    # ---------------------------------------------------------------- link thread
    def serve(self) -> None:
        """Slots coming back (their frames' labels are published): free them; returns when the link closes."""
        while True:
            try:
                message = self.link.recv()
            except (EOFError, OSError):
                return
            if isinstance(message, Release):
                with self.lock:
                    self.free.append(message.slot)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A camera's I/O process of the segmentation node (started by it)")
    parser.add_argument("--fd", type=int, required=True, help="the link's socket (inherited)")
    parser.add_argument("--parent-pid", type=int, required=True)
    parser.add_argument("--ring", required=True, help="the ring's name in /dev/shm")
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--max-pixels", type=int, required=True)
    parser.add_argument("--node-name", required=True)
    parser.add_argument("--namespace", default="/")
    parser.add_argument("--image-topic", required=True, help="fully resolved")
    parser.add_argument("--compressed", action="store_true")
    parser.add_argument("--order", choices=CHANNEL_ORDERS, default="rgb")
    parser.add_argument("--reliability", choices=RELIABILITIES, default="best_effort")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--use-sim-time", action="store_true", help="the node's use_sim_time: arrival times from /clock")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    die_with_parent(args.parent_pid)
    keep_frames_on_heap()  # the takes are this process's whole job: each frame's bytes reuse heap pages (heap.py)
    # two threads hand frames on (executor: take; link thread: publish): the node's switch interval (ros_node.py)
    sys.setswitchinterval(0.0005)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from sensor_msgs.msg import CompressedImage, Image

    link = Connection(args.fd)
    ring = FrameRing.attach(args.ring, args.slots, args.max_pixels)
    rclpy.init(args=["--ros-args", "-p", f"use_sim_time:={'true' if args.use_sim_time else 'false'}"])
    node = rclpy.create_node(args.node_name, namespace=args.namespace)
    clock = node.get_clock()
    feeder = RingFeeder(link, ring, args.order, args.max_pixels, lambda: int(clock.now().nanoseconds))
    subscribe_images(node, CompressedImage if args.compressed else Image, args.image_topic,
                     lambda msg: feeder.take(msg, args.compressed), args.reliability, args.depth,
                     lambda text: feeder.send(QosProblem(text)))
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def serve() -> None:
        feeder.serve()
        os.kill(os.getpid(), signal.SIGTERM)  # the inference process closed the link or died: end (rclpy's handler)

    threading.Thread(target=serve, name="io-serve", daemon=True).start()
    feeder.send(Ready(os.getpid()))
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        teardown_ros(node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
