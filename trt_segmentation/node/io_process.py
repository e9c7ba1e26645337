"""A camera's I/O process: ``python -m trt_segmentation.node.io_process`` started and owned by the node
(io_supervisor.py).

It subscribes to the camera (serialized messages), takes each frame (rcl copies it out of the middleware while
holding this process's GIL, not the inference process's), reads header and fields from the CDR bytes
(image_cdr), checks and converts them (image_codec) and copies the pixels once into a free slot of the
shared-memory ring (frame_ring), then tells the inference process the slot number and header (io_messages). When
the inference process gives a slot back with labels in it, this process publishes labels (colour, overlay) around
that frame's own header. It ends when the inference process closes the link or dies (PR_SET_PDEATHSIG, and the
link's end of file), or on SIGINT/SIGTERM.
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
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..image_cdr import (
    Header,
    ImageSerializer,
    compressed_from_message,
    fields_from_message,
    parse_compressed,
    parse_image,
)
from ..image_codec import decode_compressed, image_to_array
from ..palette import colorize, overlay
from .frame_ring import FrameRing
from .io_messages import BadFrame, FrameReady, PublishFailed, QosProblem, Ready, Release, RingFull

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


class CameraIo:
    """The take -> ring -> link path and the link -> publish path of one camera (the rclpy parts passed in)."""

    def __init__(self, link: Connection, ring: FrameRing, order: str, max_pixels: int, overlay_alpha: float,
                 publishers: Tuple[Any, Any, Any]) -> None:
        self.link = link
        self.ring = ring
        self.order = order
        self.max_pixels = max_pixels
        self.overlay_alpha = overlay_alpha
        self.pub_labels, self.pub_color, self.pub_overlay = publishers
        self.free: List[int] = list(range(ring.slots))
        self.held: Dict[int, Tuple[Header, int, int]] = {}
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self._mono8 = ImageSerializer("mono8")
        self._rgb8 = ImageSerializer("rgb8")

    def send(self, message: Any) -> None:
        with self.send_lock:
            self.link.send(message)

    # ---------------------------------------------------------------- executor thread
    def take(self, msg: Any, compressed: bool) -> None:
        received_ns = time.time_ns()
        try:
            header, image = self._convert(msg, compressed)
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
        with self.lock:
            self.held[slot] = (header, height, width)
        self.send(FrameReady(slot, header, height, width, received_ns))

    def _convert(self, msg: Any, compressed: bool) -> Tuple[Header, np.ndarray]:
        serialized = isinstance(msg, (bytes, bytearray, memoryview))
        if compressed:
            packed = parse_compressed(msg) if serialized else compressed_from_message(msg)
            rgb = decode_compressed(packed.format, packed.data, self.max_pixels)
            return packed.header, rgb if self.order == "rgb" else rgb[..., ::-1]
        fields = parse_image(msg) if serialized else fields_from_message(msg)
        return fields.header, image_to_array(fields.encoding, fields.height, fields.width, fields.step, fields.data,
                                             self.order, self.max_pixels)

    # ---------------------------------------------------------------- link thread
    def serve(self) -> None:
        """Slots coming back: publish their labels, free them; returns when the link closes."""
        while True:
            try:
                message = self.link.recv()
            except (EOFError, OSError):
                return
            if isinstance(message, Release):
                self._finish(message)

    def _finish(self, message: Release) -> None:
        with self.lock:
            held = self.held.pop(message.slot, None)
        if held is not None and message.publish:
            header, height, width = held
            try:
                self._publish(message.slot, header, height, width)
            except Exception as exc:  # noqa: BLE001 - e.g. shutting down; reported, the slot still comes back
                self.send(PublishFailed(f"publishing failed: {type(exc).__name__}: {exc}"))
        with self.lock:
            self.free.append(message.slot)

    def _publish(self, slot: int, header: Header, height: int, width: int) -> None:
        labels = self.ring.labels(slot, height, width)
        self.pub_labels.publish(self._mono8.serialize(header, labels))
        if self.pub_color is not None:
            self.pub_color.publish(self._rgb8.serialize(header, colorize(labels)))
        if self.pub_overlay is not None:
            pixels = self.ring.pixels(slot, height, width)
            rgb = pixels if self.order == "rgb" else pixels[..., ::-1]
            self.pub_overlay.publish(self._rgb8.serialize(header, overlay(rgb, labels, self.overlay_alpha)))


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
    parser.add_argument("--labels-topic", required=True)
    parser.add_argument("--color-topic", default="")
    parser.add_argument("--overlay-topic", default="")
    parser.add_argument("--compressed", action="store_true")
    parser.add_argument("--order", choices=("rgb", "bgr"), default="rgb")
    parser.add_argument("--overlay-alpha", type=float, default=0.5)
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="best_effort")
    parser.add_argument("--depth", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    die_with_parent(args.parent_pid)
    # two threads hand frames on (executor: take; link thread: publish): the node's switch interval (ros_node.py)
    sys.setswitchinterval(0.0005)
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    link = Connection(args.fd)
    ring = FrameRing.attach(args.ring, args.slots, args.max_pixels)
    rclpy.init(args=["--ros-args"])
    node = rclpy.create_node(args.node_name, namespace=args.namespace)
    pubs = (node.create_publisher(Image, args.labels_topic, 10),
            node.create_publisher(Image, args.color_topic, 10) if args.color_topic else None,
            node.create_publisher(Image, args.overlay_topic, 10) if args.overlay_topic else None)
    io = CameraIo(link, ring, args.order, args.max_pixels, args.overlay_alpha, pubs)
    reliability = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.depth, reliability=reliability,
                     durability=qos_profile_sensor_data.durability)
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef,unused-ignore]

    def on_qos(event: Any) -> None:
        from rclpy.qos import QoSPolicyKind

        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:
            policy = str(event.last_policy_kind)
        io.send(QosProblem(f"a publisher of {args.image_topic} has incompatible QoS ({policy}; {event.total_count} "
                           f"so far): this node subscribes {args.reliability}; set qos_reliability to match the "
                           "camera"))

    msg_type = CompressedImage if args.compressed else Image
    events = SubscriptionEventCallbacks(incompatible_qos=on_qos)
    try:
        node.create_subscription(msg_type, args.image_topic, lambda msg: io.take(msg, args.compressed), qos,
                                 event_callbacks=events, raw=True)
    except TypeError:  # an rclpy without raw subscriptions: message objects (frames.py reads both)
        node.create_subscription(msg_type, args.image_topic, lambda msg: io.take(msg, args.compressed), qos,
                                 event_callbacks=events)
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def serve() -> None:
        io.serve()
        os.kill(os.getpid(), signal.SIGTERM)  # the inference process closed the link or died: end (rclpy's handler)

    threading.Thread(target=serve, name="io-serve", daemon=True).start()
    io.send(Ready(os.getpid()))
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
