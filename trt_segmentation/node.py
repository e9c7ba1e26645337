"""The ROS 2 segmentation node: camera images in, per-pixel trainId labels (+ colour/overlay) and diagnostics out.

Threads: the rclpy executor only stores the newest message in a one-slot mailbox (the one it replaces is
counted as dropped) and runs the diagnostics timer, so the node stays responsive however slow inference is. A
converter thread takes the newest frame whenever a backend slot is free, converts it and submits it (TensorRT/
torch: uploads it and enqueues the network on that slot's CUDA stream); a collector thread waits for the oldest
submitted frame, resizes its labels and publishes them. So while the GPU runs frame N and its labels go out,
frame N+1 is already being converted into the next slot.
``FrameWorker`` holds that logic without ROS (tested on a GPU); ``SegmentationNode`` wraps it in rclpy; what
happens before the first subscription (model file, checks, engine build, backend) is node_startup.py.
Imports only numpy, Pillow, rclpy, message packages and, lazily through the backend, onnxruntime or
tensorrt/pycuda.

Run: ``ros2 launch trt_segmentation segmentation.launch.py precision:=int8`` or
``python -m trt_segmentation.node --ros-args --params-file config/segmentation.yaml -p backend:=onnxruntime``.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .diagnostics import LEVEL_NAMES, STAGES, Counters, Thresholds, build_report, hardware_id, status_name
from .image_cdr import (
    Header,
    ImageSerializer,
    compressed_from_message,
    fields_from_message,
    parse_compressed,
    parse_image,
)
from .image_codec import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_compressed,
    image_to_array,
    resize_image,
    resize_nearest,
)
from .latency import RateMeter, StageLatency
from .node_params import NodeParams, declare_parameters
from .node_startup import StartupError, load_backend
from .palette import colorize, overlay
from .runtime import Backend, InputMismatch

NODE_NAME = "segmentation"
SWITCH_INTERVAL_S = 0.0005


@dataclass
class Frame:
    """A message taken from the mailbox: its serialized bytes (raw subscriptions) or an rclpy message object."""

    msg: Any
    compressed: bool
    received_ns: int = 0  # wall-clock time (ns) the subscription callback handed it over


@dataclass
class Pending:
    """What the worker remembers about a submitted frame until its labels come back."""

    header: Header
    height: int
    width: int
    rgb: np.ndarray | None  # kept only when an overlay is published
    preprocess_ms: float
    transport_ms: float = float("nan")
    wait_ms: float = float("nan")


class FrameWorker:
    """The newest-frame mailbox, the converter and collector threads and the statistics; no ROS in here (tested on
    a GPU with the torch backend). ``post`` is called from the subscription; ``publish(pending, labels)`` from the
    collector thread.

    Messages are duck-typed: ``encoding/height/width/step/data/header`` (Image) or ``format/data/header``
    (CompressedImage)."""

    def __init__(self, backend: Backend, publish: Callable[[Pending, np.ndarray], None], *, keep_rgb: bool = False,
                 latency_window: int = 300, log_throttle_s: float = 5.0, max_pixels: int = DEFAULT_MAX_PIXELS,
                 log: Callable[[str, bool], None] = lambda text, warn: None,
                 now_ns: Callable[[], int] = time.time_ns) -> None:
        self.backend = backend
        self.publish = publish
        self.keep_rgb = keep_rgb
        self.max_pixels = max_pixels
        self.log_throttle_s = log_throttle_s
        self.log = log
        self.now_ns = now_ns
        self.counters = Counters()
        self.latency = StageLatency(tuple(STAGES), latency_window)
        self.fps = RateMeter()
        self.last_frame: float | None = None
        self.last_input_size = ""
        self.last_error = ""
        self.runtime_error = ""
        self.lock = threading.Lock()  # counters
        self._last_log: dict[str, float] = {}
        self._mailbox: Frame | None = None
        self._cv = threading.Condition()
        self._stop = False
        # a permit per frame the backend may hold; the converter takes one per submit, the collector gives it back
        self._free_slots = threading.Semaphore(max(1, backend.max_in_flight))
        self._submitted: queue.Queue[bool] = queue.Queue()  # True per submitted frame; False: stop() has begun
        self._thread = threading.Thread(target=self._convert_loop, name="segmentation-convert", daemon=True)
        self._collector = threading.Thread(target=self._collect_loop, name="segmentation-collect", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._collector.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() or self._collector.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish what is in flight, then end both threads."""
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self._submitted.put(False)  # after the converter's last token: the collector drains, then ends
        if self._collector.is_alive():
            self._collector.join(timeout=timeout)
        with self._cv:  # a frame still waiting will never be processed
            if self._mailbox is not None:
                self._mailbox = None
                with self.lock:
                    self.counters.dropped += 1

    def snapshot(self) -> Counters:
        with self.lock:
            return Counters(**vars(self.counters))

    # ---------------------------------------------------------------- subscription side
    def post(self, msg: Any, compressed: bool = False) -> None:
        """Put ``msg`` into the mailbox; a frame still waiting there is replaced and counted as dropped."""
        with self._cv:
            with self.lock:
                self.counters.received += 1
                if self._mailbox is not None:
                    self.counters.dropped += 1
            self.last_frame = time.monotonic()
            self._mailbox = Frame(msg, compressed, self.now_ns())
            self._cv.notify()

    # ---------------------------------------------------------------- converter thread
    def _take(self) -> Frame | None:
        with self._cv:
            while self._mailbox is None and not self._stop:
                self._cv.wait(0.2)
            frame, self._mailbox = self._mailbox, None
            return frame

    def _convert_loop(self) -> None:
        """Newest frame -> array -> a free slot of the backend. While the GPU runs frame N (and the collector
        waits for it), this thread already converts and uploads frame N+1; it takes the frame from the mailbox
        only once a slot is free, so the frame it works on is the newest the camera sent."""
        while not self._stop:
            while not self._free_slots.acquire(timeout=0.2):
                if self._stop:
                    return
            frame = self._take()
            if frame is not None and self._start(frame):
                self._submitted.put(True)
            else:
                self._free_slots.release()

    # ---------------------------------------------------------------- collector thread
    def _collect_loop(self) -> None:
        """Oldest submitted frame -> labels -> publish, in submission order, until ``stop`` has drained them."""
        while self._submitted.get():
            self._finish_oldest()
            self._free_slots.release()

    def _start(self, frame: Frame) -> bool:
        """Convert and submit one frame; False (counted, logged) when it was refused or failed before submitting."""
        wait_end_ns = self.now_ns()
        t0 = time.perf_counter()
        msg = frame.msg
        order = self.backend.contract.channel_order
        try:
            serialized = isinstance(msg, (bytes, bytearray, memoryview))
            if frame.compressed:
                packed = parse_compressed(msg) if serialized else compressed_from_message(msg)
                header = packed.header
                rgb = decode_compressed(packed.format, packed.data, self.max_pixels)
                image = rgb if order == "rgb" else rgb[..., ::-1]
            else:
                fields = parse_image(msg) if serialized else fields_from_message(msg)
                header = fields.header
                image = image_to_array(fields.encoding, fields.height, fields.width, fields.step, fields.data, order,
                                       self.max_pixels)
                rgb = image if order == "rgb" else image[..., ::-1]
            height, width = image.shape[:2]
            self.last_input_size = f"{height}x{width}"
            eh, ew = self.backend.input_size
            network_image = resize_image(image, eh, ew)
            stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
            pending = Pending(header, height, width, rgb if self.keep_rgb else None,
                              (time.perf_counter() - t0) * 1e3,
                              (frame.received_ns - stamp_ns) * 1e-6 if stamp_ns > 0 else float("nan"),
                              (wait_end_ns - frame.received_ns) * 1e-6)
            self.backend.submit(network_image, pending)
            return True
        except (ImageDecodeError, InputMismatch) as exc:
            self._fail("input", f"bad image dropped: {exc}")
        except Exception as exc:  # an inference failure must not kill the worker; it is reported as ERROR
            self._fail("runtime", f"inference failed: {type(exc).__name__}: {exc}", runtime=True)
        return False

    def _finish_oldest(self) -> None:
        try:
            pending, result = self.backend.collect()
        except Exception as exc:  # GPU/runtime failure of an in-flight frame
            self._fail("runtime", f"inference failed: {type(exc).__name__}: {exc}", runtime=True)
            return
        t0 = time.perf_counter()
        try:
            labels = resize_nearest(result.labels, pending.height, pending.width)
            self.publish(pending, labels)
        except Exception as exc:  # publishing problems (e.g. shutting down) are reported, not raised
            self._fail("runtime", f"publishing failed: {type(exc).__name__}: {exc}", runtime=True)
            return
        t = result.timings_ms
        if pending.transport_ms == pending.transport_ms:  # not NaN: the header had a stamp
            self.latency.add("transport", pending.transport_ms)
        self.latency.add("wait", pending.wait_ms)
        self.latency.add("preprocess", pending.preprocess_ms + t.get("preprocess", 0.0))
        self.latency.add("inference", t.get("inference", 0.0))
        self.latency.add("postprocess", t.get("postprocess", 0.0) + (time.perf_counter() - t0) * 1e3)
        stamp = pending.header.stamp
        stamp_s = stamp.sec + stamp.nanosec * 1e-9
        if stamp_s > 0:
            self.latency.add("age", (self.now_ns() * 1e-9 - stamp_s) * 1e3)
        self.fps.tick()
        with self.lock:
            self.counters.processed += 1
        self.runtime_error = ""

    def _fail(self, key: str, text: str, runtime: bool = False) -> None:
        with self.lock:
            self.counters.failed += 1
        self.last_error = text
        if runtime:
            self.runtime_error = text
        self.throttled(key, text)

    def throttled(self, key: str, text: str, warn: bool = False) -> None:
        """Log ``text`` unless the same ``key`` was logged less than ``log_throttle_s`` ago."""
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= self.log_throttle_s:
            self._last_log[key] = now
            self.log(text, warn)


class SegmentationNode:
    """The rclpy side: parameters, publishers, the subscription (+ QoS events) and the diagnostics timer around a
    :class:`FrameWorker`."""

    def __init__(self, node: Any, params: NodeParams, backend: Backend, model_file: Path) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CompressedImage, Image

        self.node = node
        self.params = params
        self.backend = backend
        self.model_file = model_file
        self.log = node.get_logger()
        self._diag_type = DiagnosticArray
        self._mono8 = ImageSerializer("mono8")
        self._rgb8 = ImageSerializer("rgb8")
        self.thresholds = Thresholds(params.warn_latency_ms, params.warn_drop_ratio, params.warn_no_frames_s)
        self.started = time.monotonic()
        self._failed_reported = 0
        self._qos_problems: dict[str, str] = {}
        self.worker = FrameWorker(
            backend, self._publish, keep_rgb=params.publish_overlay, latency_window=params.latency_window,
            log_throttle_s=params.log_throttle_s, max_pixels=params.max_input_pixels,
            log=lambda text, warn: (self.log.warning if warn else self.log.error)(text),
            now_ns=lambda: int(node.get_clock().now().nanoseconds),
        )

        qos = self._image_qos()
        out_qos = 10
        self.pub_labels = node.create_publisher(Image, "~/labels", out_qos)
        self.pub_color = node.create_publisher(Image, "~/color", out_qos) if params.publish_color else None
        self.pub_overlay = node.create_publisher(Image, "~/overlay", out_qos) if params.publish_overlay else None
        self.pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        callbacks = self._event_callbacks()
        if params.input_type == "compressed":
            self.sub, self.serialized_input = self._subscribe(CompressedImage, "~/image/compressed",
                                                              lambda msg: self.worker.post(msg, compressed=True),
                                                              qos, callbacks)
        else:
            self.sub, self.serialized_input = self._subscribe(Image, "~/image", self.worker.post, qos, callbacks)
        info = backend.describe()
        h, w = backend.input_size
        self.info = {
            "backend": params.backend,
            "precision": backend.contract.precision,
            "engine_file": str(model_file),
            "model": backend.contract.model,
            "engine_input_size": f"{h}x{w}",
            "device": info.get("device", info.get("providers", "cpu")),
        }
        self.hardware_id = hardware_id(info)  # the GPU's name, or the CPU model for ONNX Runtime on the CPU
        self.status_name = status_name(node.get_name())
        self.log.info(
            f"{params.backend} {backend.contract.precision} {model_file} ({h}x{w}); subscribed to "
            f"{self.sub.topic_name} ({params.qos_reliability}, depth {params.qos_depth}); publishing "
            f"{self.pub_labels.topic_name}"
        )
        self.log.info("backend: " + ", ".join(f"{k}={v}" for k, v in info.items()))
        if self.serialized_input:
            self.log.info("transport: serialized images in and out (no per-frame message objects)")
        self.timer = node.create_timer(params.diagnostics_period, self.publish_diagnostics)
        self.worker.start()

    def _subscribe(self, msg_type: Any, topic: str, callback: Callable[[Any], None], qos: Any,
                   callbacks: Any) -> tuple[Any, bool]:
        """A subscription that hands over the serialized bytes (no Python message object per frame); where this
        rclpy cannot, one that hands over message objects, said in the log. Either way the worker parses them."""
        try:
            return self.node.create_subscription(msg_type, topic, callback, qos, event_callbacks=callbacks,
                                                 raw=True), True
        except TypeError:
            self.log.warning("this rclpy cannot subscribe to serialized messages (raw=True): converting every frame "
                             "to a Python message object, which costs milliseconds per large frame")
            return self.node.create_subscription(msg_type, topic, callback, qos, event_callbacks=callbacks), False

    def _image_qos(self) -> Any:
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

        reliability = (ReliabilityPolicy.RELIABLE if self.params.qos_reliability == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.params.qos_depth, reliability=reliability,
                          durability=qos_profile_sensor_data.durability)

    def _event_callbacks(self) -> Any:
        try:
            from rclpy.event_handler import SubscriptionEventCallbacks
        except ImportError:  # Humble
            from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef,unused-ignore]
        return SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)

    def _on_incompatible_qos(self, event: Any) -> None:
        from rclpy.qos import QoSPolicyKind

        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:
            policy = str(event.last_policy_kind)
        topic = getattr(getattr(self, "sub", None), "topic_name", "the image topic")
        text = (f"a publisher of {topic} has incompatible QoS ({policy}; {event.total_count} so far): "
                f"this node subscribes {self.params.qos_reliability}; set qos_reliability to match the camera")
        self._qos_problems["incompatible"] = text
        self.worker.throttled("qos", text, warn=True)

    # ---------------------------------------------------------------- publishing (worker thread)
    def _publish(self, pending: Pending, labels: np.ndarray) -> None:
        """Publish serialized images built around the input's header (rclpy sends ``bytes`` as they are)."""
        self.pub_labels.publish(self._mono8.serialize(pending.header, labels))
        if self.pub_color is not None:
            self.pub_color.publish(self._rgb8.serialize(pending.header, colorize(labels)))
        if self.pub_overlay is not None and pending.rgb is not None:
            blended = overlay(pending.rgb, labels, self.params.overlay_alpha)
            self.pub_overlay.publish(self._rgb8.serialize(pending.header, blended))

    # ---------------------------------------------------------------- diagnostics (executor thread)
    def publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        worker = self.worker
        counters = worker.snapshot()
        new_failures = counters.failed - self._failed_reported
        self._failed_reported = counters.failed
        now = time.monotonic()
        try:
            publishers: int | None = self.node.count_publishers(self.sub.topic_name)
        except Exception:  # graph queries can fail while shutting down
            publishers = None
        report = build_report(
            info=self.info,
            counters=counters,
            fps=worker.fps.rate(),
            latency=worker.latency.summaries(),
            seconds_since_last_frame=None if worker.last_frame is None else now - worker.last_frame,
            seconds_since_start=now - self.started,
            publishers=publishers,
            last_input_size=worker.last_input_size,
            qos_problems=list(self._qos_problems.values()),
            failed_since_last_report=new_failures,
            runtime_error=worker.runtime_error,
            last_error=worker.last_error,
            thresholds=self.thresholds,
        )
        status = DiagnosticStatus(level=getattr(DiagnosticStatus, LEVEL_NAMES[report.level]), name=self.status_name,
                                  message=report.message, hardware_id=self.hardware_id)
        status.values = [KeyValue(key=k, value=v) for k, v in report.values]
        array = self._diag_type()
        array.header.stamp = self.node.get_clock().now().to_msg()
        array.status = [status]
        self.pub_diag.publish(array)

    def shutdown(self) -> None:
        self.worker.stop()
        if self.worker.alive:
            # never free GPU buffers under a thread that may still use them; the process is ending anyway
            self.node.get_logger().error("the inference worker did not stop in time; backend not closed")
            return
        self.backend.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point ``segmentation_node``: exit code 0 on Ctrl-C, 1 when the node cannot start."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    # three threads hand each frame on (executor -> converter -> collector); CPython lets a thread that wants the
    # GIL wait up to the switch interval (5 ms by default) for one that holds it: 0.5 ms cut the node's age at
    # 1024x2048 from 2.1x to 1.5-1.7x the raw-CDR relay's on 2 cores (tools/benchmark_node.py, docs/benchmarks.md)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    rclpy.init(args=sys.argv if argv is None else argv)
    node = rclpy.create_node(NODE_NAME)
    app: SegmentationNode | None = None
    code = 0
    try:
        params = declare_parameters(node)
        backend, path = load_backend(params, node.get_logger())
        app = SegmentationNode(node, params, backend, path)
        executor = SingleThreadedExecutor()  # callbacks only post to the mailbox or publish diagnostics
        executor.add_node(node)
        executor.spin()
    except (StartupError, ValueError) as exc:
        node.get_logger().fatal(f"cannot start: {exc}")
        code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if app is not None:
            app.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
