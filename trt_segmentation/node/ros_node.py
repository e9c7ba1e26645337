"""The ROS 2 segmentation node: camera images in, per-pixel trainId labels (+ colour/overlay) and diagnostics out.

Threads: the rclpy executor only stores the newest message in a one-slot mailbox (the one it replaces is
counted as dropped) and runs the diagnostics timer, so the node stays responsive however slow inference is. A
converter thread takes the newest frame whenever a backend slot is free, converts it and submits it (TensorRT/
torch: uploads it and enqueues the network on that slot's CUDA stream); a collector thread waits for the oldest
submitted frame, resizes its labels and publishes them. So while the GPU runs frame N and its labels go out,
frame N+1 is already being converted into the next slot.
``FrameWorker`` holds that logic without ROS (tested on a GPU); with ``cameras`` set, batch_worker.BatchWorker does
the same for several cameras through one batch-N model. ``SegmentationNode`` wraps either in rclpy; what happens
before the first subscription (model file, checks, engine build, backend) is startup.py.
Imports only numpy, Pillow, rclpy, message packages and, lazily through the backend, onnxruntime or
tensorrt/pycuda.

Run: ``ros2 launch trt_segmentation segmentation.launch.py precision:=int8`` or
``python -m trt_segmentation.node --ros-args --params-file config/segmentation.yaml -p backend:=onnxruntime``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..image_cdr import Header
from ..image_codec import encode_compressed
from ..palette import colorize, overlay
from ..runtime import Backend
from .batch_worker import BatchWorker
from .camera_io.frame_ring import SHM_DIR, FrameRing, slot_size
from .camera_io.io_supervisor import CameraIoSpec, IoSettings, IoSupervisor
from .camera_io.shm_budget import free_bytes, plan_rings, segment_bytes
from .diagnostics import (
    INFERENCE_TASK,
    LEVEL_NAMES,
    DiagnosticReport,
    Thresholds,
    batch_values,
    build_camera_report,
    build_report,
    camera_task,
    hardware_id,
    stamps_value,
    status_name,
)
from .frame_worker import FrameWorker
from .frames import Pending
from .heap import keep_frames_on_heap
from .image_publisher import ImagePublisher
from .params import InputType, IoMode, NodeParams, declare_parameters, refusal
from .qos import subscribe_images
from .ring_pinning import RingPinning
from .startup import StartupError, load_backend
from .teardown import teardown_ros

NODE_NAME = "segmentation"
SWITCH_INTERVAL_S = 0.0005


class CameraTopics:
    """One camera's topics in the inference process: the image subscription (io_mode inprocess) or the topic its
    I/O process subscribes to, the label (colour, overlay) publishers, and what the diagnostics say of them (QoS
    finding, I/O process error). Single-camera mode has one with the prefix ``~/``; multi-camera mode one per
    camera with ``~/<name>/``."""

    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        self.prefix = prefix
        self.sub: Any = None
        self.pub_labels: ImagePublisher | None = None
        self.pub_color: ImagePublisher | None = None
        self.pub_overlay: ImagePublisher | None = None
        self.pub_labels_png: Any = None  # rclpy publisher of sensor_msgs/CompressedImage (publish_labels_compressed)
        self.pub_info: Any = None  # publish_camera_info: ~/camera_info, and the camera's latest CameraInfo
        self.info: Any = None
        self.qos_problem = ""
        self.failed_reported = 0
        self.image_topic = ""  # io_mode process: the resolved topic its I/O process subscribes to
        self.io_error = ""  # io_mode process: why its I/O process is down ("" while it runs)
        self.sub_info: Any = None  # publish_camera_info: the subscription to the camera's camera_info

    @property
    def topic(self) -> str:
        return self.image_topic or str(getattr(self.sub, "topic_name", self.prefix + "image"))

    @property
    def output_topic(self) -> str:
        return str(getattr(self.pub_labels, "topic_name", self.prefix + "labels"))


class SegmentationNode:
    """The rclpy side: parameters, publishers, the subscriptions (+ QoS events) and the diagnostics timer around a
    :class:`FrameWorker` (one camera) or a :class:`~trt_segmentation.node.batch_worker.BatchWorker` (``cameras``)."""

    def __init__(self, node: Any, params: NodeParams, backend: Backend, model_file: Path) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self.node = node
        self.params = params
        self.backend = backend
        self.model_file = model_file
        self.log = node.get_logger()
        self._diag_type = DiagnosticArray
        self.thresholds = Thresholds(params.warn_latency_ms, params.warn_drop_ratio, params.warn_no_frames_s)
        self.started = time.monotonic()
        self._failed_reported = 0
        self._qos_problems: dict[str, str] = {}
        # held by the collector while it publishes colour/overlay and by a parameter change that (un)makes their
        # publishers, so no publisher is destroyed under a publish
        self._outputs_lock = threading.Lock()
        self.colored = 0  # frames coloured for ~/color, blended for ~/overlay (only while subscribed)
        self.overlaid = 0
        in_process = params.io_mode is IoMode.INPROCESS
        common: dict[str, Any] = dict(
            # io_mode process: the overlay blends the frame in its ring slot, held until its labels are published
            keep_rgb=params.publish_overlay, latency_window=params.latency_window,
            log_throttle_s=params.log_throttle_s, max_pixels=params.max_input_pixels,
            log=lambda text, warn: (self.log.warning if warn else self.log.error)(text),
            now_ns=lambda: int(node.get_clock().now().nanoseconds),
        )
        self.batch_worker: BatchWorker | None = None
        self.frame_worker: FrameWorker | None = None
        self.worker: FrameWorker | BatchWorker
        if params.cameras:
            self.cameras = [CameraTopics(name, f"~/{name}/") for name in params.cameras]
            self.worker = self.batch_worker = BatchWorker(
                backend, params.cameras, self._publish_camera, batch_timeout_s=params.batch_timeout_ms / 1e3,
                **common)
        else:
            self.cameras = [CameraTopics("", "~/")]
            self.worker = self.frame_worker = FrameWorker(backend, self._publish, **common)
        self.pub_diag = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.io: IoSupervisor | None = None
        for camera in self.cameras:  # labels, colour and overlay go out from here in either io_mode
            self._advertise(camera)
        if in_process:
            self.serialized_input = all([self._wire(index, camera) for index, camera in enumerate(self.cameras)])
        else:
            self.serialized_input = True
            # each camera ring page-locked for the backend: frames go to the GPU straight from it (ring_pinning)
            self.pinning = RingPinning(backend, lambda text: self.log.info(text))
            self.io = self._io_processes()
        single = self.cameras[0]
        self.sub, self.pub_labels = single.sub, single.pub_labels  # single-camera mode's topics
        info = backend.describe()
        h, w = backend.input_size
        self.info = {
            "backend": params.backend.value,
            "precision": backend.contract.precision,
            "engine_file": str(model_file),
            "model": backend.contract.model,
            "engine_input_size": f"{h}x{w}",
            "device": info.get("device", info.get("providers", "cpu")),
            "memory": info.get("memory", ""),  # tensorrt: the engine's size and device memory per context
        }
        self.hardware_id = hardware_id(info)  # the GPU's name, or the CPU model for ONNX Runtime on the CPU
        self.status_name = status_name(node.get_name())
        subscribed = ", ".join(c.topic for c in self.cameras)
        publishing = ", ".join(c.output_topic for c in self.cameras)
        batch = f", batches of {backend.batch} (timeout {params.batch_timeout_ms:g} ms)" if params.cameras else ""
        self.log.info(
            f"{params.backend} {backend.contract.precision} {model_file} ({h}x{w}{batch}); subscribed to "
            f"{subscribed} ({params.qos_reliability}, depth {params.qos_depth}); publishing {publishing}"
        )
        self.log.info("backend: " + ", ".join(f"{k}={v}" for k, v in info.items()))
        if self.io is not None:
            self.log.info(f"camera I/O in {len(self.cameras)} process(es) of their own, frames through shared memory "
                          "(io_mode process)")
        if self.serialized_input:
            self.log.info("transport: serialized images in and out (no per-frame message objects)")
        if not all(c.pub_labels is not None and c.pub_labels.direct for c in self.cameras):
            self.log.warning("this rclpy does not expose its publishers to rcl (handle.pointer, librcl.so): labels "
                             "are published through rclpy, which holds the interpreter lock while it copies them")
        self.worker.stamp_tolerance_ns = int(params.stamp_tolerance_s * 1e9)  # before the first frame can come
        self.worker.start()
        if self.io is not None and not self.io.start():
            self.log.error("not every camera I/O process has started within 30 s; see the diagnostics")
        self.timer = self._diagnostics_timer(params.diagnostics_period)
        node.add_on_set_parameters_callback(self._on_set_parameters)

    def _diagnostics_timer(self, period: float) -> Any:
        """The diagnostics timer, on the steady clock: a node on sim time reports also while no /clock comes."""
        from rclpy.clock import Clock

        try:
            from rclpy.clock_type import ClockType  # Iron and later
        except ImportError:  # Humble: only in rclpy.clock
            from rclpy.clock import ClockType  # type: ignore[attr-defined,no-redef,unused-ignore]

        return self.node.create_timer(period, self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ---------------------------------------------------------------- `ros2 param set` (executor thread)
    def _on_set_parameters(self, parameters: list[Any]) -> Any:
        """Apply a change of the runtime parameters (params.RUNTIME_PARAMETERS); refuse the whole set, naming
        the parameter, when it holds one read at start-up only. rclpy has checked the types and ranges."""
        from rcl_interfaces.msg import SetParametersResult

        runtime = []
        for parameter in parameters:
            reason = refusal(parameter.name)
            if not reason:
                runtime.append(parameter)
            # a start-up parameter set to the value it has (`ros2 param load` of the node's own file) changes nothing
            elif (not self.node.has_parameter(parameter.name)
                  or self.node.get_parameter(parameter.name).value != parameter.value):
                return SetParametersResult(successful=False, reason=reason)
        parameters = runtime
        if not parameters:
            return SetParametersResult(successful=True)
        changes = {p.name: p.value for p in parameters}
        old, new = self.params, replace(self.params, **changes)
        self.params = new
        self.thresholds = Thresholds(new.warn_latency_ms, new.warn_drop_ratio, new.warn_no_frames_s)
        self.worker.log_throttle_s = new.log_throttle_s
        self.worker.stamp_tolerance_ns = int(new.stamp_tolerance_s * 1e9)
        self.worker.keep_rgb = new.publish_overlay
        if ((new.publish_color, new.publish_overlay, new.publish_labels_compressed)
                != (old.publish_color, old.publish_overlay, old.publish_labels_compressed)):
            with self._outputs_lock:
                for camera in self.cameras:
                    self._advertise_extras(camera)
        if new.diagnostics_period != old.diagnostics_period:
            self.node.destroy_timer(self.timer)
            self.timer = self._diagnostics_timer(new.diagnostics_period)
        self.log.info("parameters changed: " + ", ".join(f"{k}={v}" for k, v in changes.items()))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- io_mode process
    def _io_processes(self) -> IoSupervisor:
        """The supervisor of one I/O process per camera, on the topics this node would have (remappings applied)."""
        params, node = self.params, self.node
        image = "image/compressed" if params.input_type is InputType.COMPRESSED else "image"
        specs = []
        for camera in self.cameras:
            camera.image_topic = node.resolve_topic_name(camera.prefix + image)
            specs.append(CameraIoSpec(camera.name, camera.image_topic))
        settings = IoSettings(node.get_name(), node.get_namespace(), params.input_type is InputType.COMPRESSED,
                              self.backend.contract.channel_order, params.max_input_pixels,
                              self._ring_slots(len(specs)), params.qos_reliability, params.qos_depth,
                              use_sim_time=bool(node.get_parameter("use_sim_time").value))
        return IoSupervisor(specs, settings, self.worker, self, log=lambda text, warn: (self.log.warning if warn
                                                                          else self.log.error)(text))

    def _ring_slots(self, cameras: int) -> int:
        """Slots per camera ring: the frames in flight + 4, fewer (a WARN) where /dev/shm cannot hold that beside
        the transport's segments (shm_budget.py); StartupError (one FATAL line with the fix) where even the
        frames in flight + 2 do not fit."""
        in_flight = self.backend.max_in_flight
        try:
            free = free_bytes(SHM_DIR)
        except OSError as exc:
            raise StartupError(f"cannot read the free space of {SHM_DIR} ({exc}), where the camera rings live; "
                               "give the container a /dev/shm or set io_mode: inprocess") from None
        plan = plan_rings(free, cameras, slot_size(self.params.max_input_pixels), in_flight + 4,
                          in_flight + 2, segment_bytes(os.environ), str(SHM_DIR))
        if plan.fatal:
            raise StartupError(plan.fatal)
        if plan.warning:
            self.log.warning(plan.warning)
        return plan.slots

    # IoSink: what a camera's I/O process tells besides its frames, which go to the worker (its reader thread)
    def qos_problem(self, camera: int, text: str) -> None:
        io = self.cameras[camera]
        io.qos_problem = text
        self._qos_problems[io.topic] = text
        self.worker.throttled("qos " + io.topic, text, warn=True)

    def io_state(self, camera: int, error: str) -> None:
        self.cameras[camera].io_error = error

    def ring_opened(self, camera: int, ring: FrameRing) -> None:
        self.pinning.opened(ring)

    def ring_closed(self, camera: int, ring: FrameRing) -> None:
        self.pinning.closed(ring)

    def _advertise(self, camera: CameraTopics) -> None:
        """One camera's labels (colour, overlay) publishers."""
        from sensor_msgs.msg import Image

        node, out_qos = self.node, 10

        def publisher(topic: str, encoding: str) -> ImagePublisher:
            return ImagePublisher(node.create_publisher(Image, camera.prefix + topic, out_qos), encoding)

        camera.pub_labels = publisher("labels", "mono8")
        self._advertise_extras(camera)
        if self.params.publish_camera_info:
            self._relay_camera_info(camera)

    def _relay_camera_info(self, camera: CameraTopics) -> None:
        """Subscribe to the camera's camera_info (beside its image topic) and advertise ~/camera_info."""
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo

        compressed = self.params.input_type is InputType.COMPRESSED
        image = self.node.resolve_topic_name(camera.prefix + ("image/compressed" if compressed else "image"))
        if compressed and image.endswith("/compressed"):
            image = image[: -len("/compressed")]
        source = image.rpartition("/")[0] + "/camera_info"
        if source == self.node.resolve_topic_name(camera.prefix + "camera_info"):
            self.log.warning(f"publish_camera_info: the camera's topic is not remapped ({image}), so its camera_info "
                             f"would be this node's own {source}; remap ~/image onto the camera's image topic")
            return

        def store(msg: Any) -> None:
            camera.info = msg

        # best effort, depth 1: matches a reliable or best-effort camera; only the newest is used
        camera.sub_info = self.node.create_subscription(CameraInfo, source, store, qos_profile_sensor_data)
        camera.pub_info = self.node.create_publisher(CameraInfo, camera.prefix + "camera_info", 10)

    def _advertise_extras(self, camera: CameraTopics) -> None:
        """Make or destroy one camera's colour, overlay and compressed-labels publishers as publish_color,
        publish_overlay and publish_labels_compressed say."""
        from sensor_msgs.msg import CompressedImage, Image

        node, params = self.node, self.params
        if params.publish_labels_compressed and camera.pub_labels_png is None:
            camera.pub_labels_png = node.create_publisher(CompressedImage, camera.prefix + "labels/compressed", 10)
        elif not params.publish_labels_compressed and camera.pub_labels_png is not None:
            node.destroy_publisher(camera.pub_labels_png)
            camera.pub_labels_png = None
        for attribute, wanted, topic in (("pub_color", params.publish_color, "color"),
                                         ("pub_overlay", params.publish_overlay, "overlay")):
            current = getattr(camera, attribute)
            if wanted and current is None:
                setattr(camera, attribute, ImagePublisher(node.create_publisher(Image, camera.prefix + topic, 10),
                                                          "rgb8"))
            elif not wanted and current is not None:
                setattr(camera, attribute, None)
                node.destroy_publisher(current.publisher)

    def _wire(self, index: int, camera: CameraTopics) -> bool:
        """The subscription of one camera (io_mode inprocess); True when it subscribes to serialized messages."""
        from sensor_msgs.msg import CompressedImage, Image

        params = self.params
        compressed = params.input_type is InputType.COMPRESSED
        batch, single = self.batch_worker, self.frame_worker

        def callback(msg: Any) -> None:  # the executor thread: only a mailbox update
            if batch is not None:
                batch.post(index, msg, compressed)
            elif single is not None:
                single.post(msg, compressed)
        msg_type, topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        camera.sub, serialized = subscribe_images(
            self.node, msg_type, camera.prefix + topic, callback, params.qos_reliability, params.qos_depth,
            lambda text: self.qos_problem(index, text), self.log.warning)
        return serialized

    # ---------------------------------------------------------------- publishing (collector thread)
    def _publish(self, pending: Pending, labels: np.ndarray) -> None:
        self._publish_camera(0, pending, labels)

    def _publish_camera(self, index: int, pending: Pending, labels: np.ndarray) -> None:
        """Publish serialized images built around the input's header, the middleware's copy outside the GIL
        (image_publisher.py); colour and overlay only while they have a subscriber (nothing is coloured for
        nobody); in io_mode process the frame's ring slot goes back to its I/O process afterwards (the overlay read
        it)."""
        camera = self.cameras[index]
        try:
            assert camera.pub_labels is not None  # _advertise made it
            camera.pub_labels.publish(pending.header, labels)
            info = camera.info
            if camera.pub_info is not None and info is not None and camera.pub_info.get_subscription_count() > 0:
                camera.pub_info.publish(label_info(info, pending.header, labels.shape))
            with self._outputs_lock:
                png, color, blend = camera.pub_labels_png, camera.pub_color, camera.pub_overlay
                if png is not None and png.get_subscription_count() > 0:
                    png.publish(png_labels(pending.header, labels))
                if color is not None and color.subscribed():
                    color.publish(pending.header, colorize(labels))
                    self.colored += 1
                if blend is not None and pending.rgb is not None and blend.subscribed():
                    blend.publish(pending.header, overlay(pending.rgb, labels, self.params.overlay_alpha))
                    self.overlaid += 1
        finally:
            pending.release()

    # ---------------------------------------------------------------- diagnostics (executor thread)
    def _publishers(self, camera: CameraTopics) -> int | None:
        try:
            return int(self.node.count_publishers(camera.topic))
        except Exception:  # graph queries can fail while shutting down
            return None

    def publish_diagnostics(self) -> None:
        from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

        reports = self.reports()
        array = self._diag_type()
        array.header.stamp = self.node.get_clock().now().to_msg()
        for task, report in reports:
            status = DiagnosticStatus(level=getattr(DiagnosticStatus, LEVEL_NAMES[report.level]),
                                      name=status_name(self.node.get_name(), task), message=report.message,
                                      hardware_id=self.hardware_id)
            status.values = [KeyValue(key=k, value=v) for k, v in report.values]
            array.status.append(status)
        self.pub_diag.publish(array)

    def reports(self) -> list[tuple[str, DiagnosticReport]]:
        """(task, report): the node's main status, then one per camera in multi-camera mode."""
        worker = self.worker
        counters = worker.snapshot()
        new_failures = counters.failed - self._failed_reported
        self._failed_reported = counters.failed
        now = time.monotonic()
        publishers = [self._publishers(camera) for camera in self.cameras]
        cameras, stale, batch_keys = self._camera_reports(now, publishers)
        last_frame = worker.last_frame
        main = build_report(
            info=self.info, counters=counters, fps=worker.fps.rate(), latency=worker.latency.summaries(),
            seconds_since_last_frame=None if last_frame is None else now - last_frame,
            seconds_since_start=now - self.started,
            publishers=None if None in publishers else sum(p or 0 for p in publishers),
            last_input_size=worker.last_input_size, qos_problems=list(self._qos_problems.values()),
            failed_since_last_report=new_failures,
            runtime_error=worker.runtime_error or ("" if self.batch_worker else self.cameras[0].io_error),
            last_error=worker.last_error,
            thresholds=self.thresholds, extra_problems=stale,
            extra_values=[("stamps", stamps_value(worker.last_stamp_foreign, worker.foreign_stamps)),
                          ("frames_colored", str(self.colored)), ("frames_overlaid", str(self.overlaid))] + batch_keys,
        )
        return [(INFERENCE_TASK, main)] + cameras

    def _camera_reports(self, now: float, publishers: list[int | None]
                        ) -> tuple[list[tuple[str, DiagnosticReport]], list[str], list[tuple[str, str]]]:
        """Multi-camera mode: each camera's (task, report), the stale cameras for the main status and its batch
        keys; nothing in single-camera mode."""
        batch = self.batch_worker
        if batch is None:
            return [], [], []
        cameras: list[tuple[str, DiagnosticReport]] = []
        stale: list[str] = []
        for index, (io, state) in enumerate(zip(self.cameras, batch.cameras)):
            own = batch.snapshot(index)
            failed = own.failed - io.failed_reported
            io.failed_reported = own.failed
            report = build_camera_report(
                camera=io.name, topic=io.topic, counters=own, fps=state.fps.rate(),
                latency=state.latency.summaries(),
                seconds_since_last_frame=None if state.last_frame is None else now - state.last_frame,
                seconds_since_start=now - self.started, publishers=publishers[index],
                last_input_size=state.last_input_size, qos_problems=[io.qos_problem] if io.qos_problem else [],
                failed_since_last_report=failed, last_error=state.last_error, thresholds=self.thresholds,
                io_error=io.io_error)
            idle = now - (state.last_frame if state.last_frame is not None else self.started)
            if idle > self.thresholds.warn_no_frames_s:
                stale.append(f"camera {io.name} stale: no frame for {idle:.1f} s")
            if io.io_error:
                stale.append(io.io_error)
            cameras.append((camera_task(io.name), report))
        windowed = batch.fill.values()
        mean_fill = float(windowed.mean()) if windowed.size else float("nan")
        keys = batch_values(list(self.params.cameras), self.backend.batch, self.params.batch_timeout_ms,
                            batch.batches, mean_fill, batch.slot_wait.summary()["p50"],
                            batch.work_wait.summary()["p50"])
        return cameras, stale, keys

    def shutdown(self) -> None:
        self.worker.stop()  # frames in flight are published (through their I/O processes) first
        if self.io is not None:
            self.io.stop()
        if self.worker.alive:
            # never free GPU buffers under a thread that may still use them; the process is ending anyway
            self.node.get_logger().error("the inference worker did not stop in time; backend not closed")
            return
        self.backend.close()


def png_labels(header: Header, labels: np.ndarray) -> Any:
    """The labels as a sensor_msgs/CompressedImage: PNG (lossless, zlib level 1: fast), the input's header, the
    format image_transport's compressed plugin writes for mono8."""
    from sensor_msgs.msg import CompressedImage

    return _with_header(CompressedImage(format="mono8; png compressed", data=encode_compressed(labels, "png")),
                        header)


def label_info(info: Any, header: Header, shape: tuple[int, ...]) -> Any:
    """A copy of the camera's CameraInfo ``info`` with the label image's header and size (the calibration as the
    camera sent it)."""
    from copy import deepcopy

    msg = _with_header(deepcopy(info), header)
    msg.height, msg.width = int(shape[0]), int(shape[1])
    return msg


def _with_header(msg: Any, header: Header) -> Any:
    """``msg`` (an rclpy message) with the input's stamp and frame_id."""
    msg.header.stamp.sec, msg.header.stamp.nanosec = header.stamp.sec, header.stamp.nanosec
    msg.header.frame_id = header.frame_id
    return msg


def main(argv: list[str] | None = None) -> int:
    """Entry point ``segmentation_node``: exit code 0 on Ctrl-C, 1 when the node cannot start."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    # three threads hand each frame on (executor -> converter -> collector); CPython lets a thread that wants the
    # GIL wait up to the switch interval (5 ms by default) for one that holds it: 0.5 ms cut the node's age at
    # 1024x2048 from 2.1x to 1.5-1.7x the raw-CDR relay's on 2 cores (tools/benchmark_node.py, docs/benchmarks.md)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    keep_frames_on_heap()  # before the first take: each frame's bytes reuse heap pages (heap.py)
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
        teardown_ros(node, code)
    return code


if __name__ == "__main__":
    sys.exit(main())
