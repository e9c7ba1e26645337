"""End-to-end node benchmark: camera process -> (node | raw-CDR relay) -> listener, over real DDS, one run.

Two phases with the same camera and listener: first a minimal relay (takes each frame as serialized CDR and
publishes a pre-built mono8 image with the same header: the transport floor, no inference, no conversion), then
the segmentation node started as the launch file starts it. The listener measures each label's age (arrival time
minus the header stamp the camera set); the node's own stages come from its /diagnostics. Every figure of the
node is also given as a ratio to the relay's from the same run. Used by ``tools/benchmark_node.py``; the camera
and relay are this module's ``camera`` / ``relay`` sub-commands, each in its own process. Several cameras:
multi_camera_benchmark.py (on this module's camera, relay and listener); the GIL profile: gil_profiler.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from harness.gil_profiler import GilProfiler
from harness.topic_probe import BackgroundNode
from trt_segmentation.image_cdr import Header, ImageSerializer, Stamp, parse_image
from trt_segmentation.node.diagnostics import status_name
from trt_segmentation.node.qos import wait_until_subscribed
from trt_segmentation.node.teardown import teardown_ros

SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the camera and relay run as `python -m harness.node_benchmark`
CAMERA_TOPIC = "/bench/camera/image_raw"
RELAY_TOPIC = "/bench/relay/labels"
NODE_NAMESPACE = "bench"
NODE_LABELS = "/bench/segmentation/labels"
NODE_STATUS = status_name("segmentation")  # "segmentation: inference" (the name has no namespace)
FREE_MODEL = "probe_free"
NODE_STAGES = ("preprocess", "inference", "postprocess")  # the node's own work; transport and wait come before


# ------------------------------------------------------------------------------------------------ camera, relay
def camera_frames(height: int, width: int, count: int = 4, seed: int = 0) -> List[np.ndarray]:
    """Smooth colour fields with texture (not noise): distinct frames so nothing downstream can cache one."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR)).astype(np.int16)
        frames.append(np.clip(smooth + rng.integers(-10, 11, smooth.shape), 0, 255).astype(np.uint8))
    return frames


def _run_camera(args: argparse.Namespace) -> int:
    """Publish ``count`` rgb8 frames at ``rate`` Hz, serialized ahead (a camera driver's cost is not ours)."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    frames = camera_frames(args.height, args.width)
    serializer = ImageSerializer("rgb8")
    rclpy.init(args=["--ros-args"])
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    if not wait_until_subscribed([pub], args.wait):
        print(f"camera: no subscriber on {args.topic} after {args.wait} s", flush=True)
        return 3
    time.sleep(1.0)  # discovery of the way back
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(args.count):
        target = start + i * period
        time.sleep(max(0.0, target - time.monotonic()))
        sec, nanosec = divmod(time.time_ns(), 1_000_000_000)
        pub.publish(serializer.serialize(Header(Stamp(sec, nanosec), f"cam{i}".encode()), frames[i % len(frames)]))
        if args.progress and (i + 1) % max(1, int(args.rate)) == 0:
            print(f"  camera: {i + 1}/{args.count} frames sent", flush=True)
    time.sleep(0.5)
    print(f"camera: sent {args.count} in {time.monotonic() - start:.1f} s", flush=True)
    teardown_ros(node)
    return 0


def _run_relay(args: argparse.Namespace) -> int:
    """The transport floor: serialized frame in, pre-built serialized mono8 out with the frame's header."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init(args=["--ros-args"])
    node = rclpy.create_node("bench_relay")
    pub = node.create_publisher(Image, args.output, 10)
    serializer = ImageSerializer("mono8")
    blank: Dict[tuple, np.ndarray] = {}

    def relay(raw: bytes) -> None:
        fields = parse_image(raw)
        labels = blank.setdefault((fields.height, fields.width), np.zeros((fields.height, fields.width), np.uint8))
        pub.publish(serializer.serialize(fields.header, labels))

    node.create_subscription(Image, args.input, relay, qos_profile_sensor_data, raw=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        teardown_ros(node)
    return 0


# ------------------------------------------------------------------------------------------------ listener
class AgeListener(BackgroundNode):
    """Raw subscriptions to label topics (arrival time minus header stamp per message) and the node's status."""

    def __init__(self, topics: List[str]) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        super().__init__("bench_listener", args=["--ros-args"])
        self.ages: Dict[str, List[float]] = {t: [] for t in topics}
        self.arrivals: Dict[str, List[float]] = {t: [] for t in topics}  # time.monotonic() of each message
        self.statuses: Dict[str, Dict[str, str]] = {}
        self._lock = threading.Lock()
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic in topics:
            self.node.create_subscription(Image, topic, lambda raw, t=topic: self._on_labels(t, raw), qos, raw=True)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_status, 10)
        self.start()

    def _on_labels(self, topic: str, raw: bytes) -> None:
        now, arrival = time.time_ns(), time.monotonic()
        stamp = parse_image(raw).header.stamp
        with self._lock:
            self.ages[topic].append((now - (stamp.sec * 1_000_000_000 + stamp.nanosec)) * 1e-6)
            self.arrivals[topic].append(arrival)

    def _on_status(self, array: Any) -> None:
        with self._lock:
            for status in array.status:
                self.statuses[status.name] = {kv.key: kv.value for kv in status.values}

    def count(self, topic: str) -> int:
        with self._lock:
            return len(self.ages[topic])

    def take(self, topic: str) -> List[float]:
        with self._lock:
            return list(self.ages[topic])

    def arrival_times(self, topic: str) -> List[float]:
        with self._lock:
            return list(self.arrivals[topic])

    def status(self, name: str) -> Dict[str, str]:
        with self._lock:
            return dict(self.statuses.get(name, {}))


# ------------------------------------------------------------------------------------------------ results
@dataclass
class PhaseResult:
    name: str
    sent: int
    delivered: int
    age_p50_ms: float
    age_p95_ms: float
    age_max_ms: float
    throughput_fps: float  # labels per second between the first and the last after warm-up
    received: Optional[int] = None  # frames the node's subscription got (its diagnostics)
    dropped: Optional[int] = None
    rss_start_mb: Optional[float] = None
    rss_end_mb: Optional[float] = None
    stages_p50_ms: Dict[str, float] = field(default_factory=dict)
    rss_samples_mb: List[float] = field(default_factory=list)  # every few seconds of the measured phase


def summarise_phase(name: str, sent: int, ages_ms: List[float], arrivals: List[float], warmup: int,
                    status: Optional[Dict[str, str]] = None, rss: Optional[List[float]] = None) -> PhaseResult:
    """Age percentiles and throughput over the messages after the first ``warmup`` (start-up, first-call
    allocations)."""
    steady = ages_ms[warmup:] if len(ages_ms) > warmup else ages_ms
    times = arrivals[warmup:] if len(arrivals) > warmup else arrivals
    nan = float("nan")
    stages: Dict[str, float] = {}
    received = dropped = None
    if status:
        for stage in ("transport", "wait", "preprocess", "inference", "postprocess"):
            stages[stage] = float(status.get(f"latency_{stage}_p50_ms", "nan"))
        received = int(status.get("frames_received", "0"))
        dropped = int(status.get("frames_dropped", "0"))
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    rss = rss or []
    return PhaseResult(
        name, sent, len(ages_ms),
        float(np.percentile(steady, 50)) if steady else nan,
        float(np.percentile(steady, 95)) if steady else nan,
        float(max(steady)) if steady else nan,
        (len(times) - 1) / span if span > 0 else nan,
        received, dropped, rss[0] if rss else None, rss[-1] if rss else None, stages, rss)


def report_markdown(floor: PhaseResult, node: PhaseResult, setup: Dict[str, str]) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b and b == b and a == a else "n/a"

    lines = ["### Node end to end vs the raw-CDR relay (same run)", ""]
    lines += [", ".join(f"{k}: {v}" for k, v in setup.items()), ""]
    lines += ["| figure | relay (floor) | node | node / floor |", "|---|---:|---:|---:|"]
    for label, key in (("age p50 ms", "age_p50_ms"), ("age p95 ms", "age_p95_ms"), ("age max ms", "age_max_ms")):
        a, b = getattr(floor, key), getattr(node, key)
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {ratio(b, a)} |")
    lines.append(f"| delivered / sent | {floor.delivered}/{floor.sent} | {node.delivered}/{node.sent} | |")
    lines.append(f"| throughput fps | {floor.throughput_fps:.1f} | {node.throughput_fps:.1f} | "
                 f"{ratio(node.throughput_fps, floor.throughput_fps)} |")
    lines.append(f"| received by the node / dropped by it (newest-frame policy) | | {node.received} / {node.dropped} | |")
    lines.append(f"| node RSS MB (measured phase start -> end) | | {node.rss_start_mb:.0f} -> {node.rss_end_mb:.0f} | |")
    stages = " + ".join(f"{k} {v:.2f}" for k, v in node.stages_p50_ms.items() if k in NODE_STAGES)
    lines.append(f"| node stages p50 ms | | {stages} | |")
    before = ", ".join(f"{k} {v:.2f}" for k, v in node.stages_p50_ms.items() if k not in NODE_STAGES)
    lines.append(f"| before the node's stages, p50 ms | | {before} | |")
    budget = floor.age_p50_ms + sum(v for k, v in node.stages_p50_ms.items() if k in NODE_STAGES)
    lines.append(f"| floor + node stages (p50 ms) | | {budget:.1f} | age p50 - that: {node.age_p50_ms - budget:+.1f} ms |")
    return "\n".join(lines)


def plot(floor_ages: List[float], node_ages: List[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    both = [a for a in floor_ages + node_ages if a == a]
    bins = np.linspace(0, max(both) * 1.05 if both else 1, 60)
    ax.hist(floor_ages, bins=bins, alpha=0.6, label=f"raw-CDR relay (p50 {statistics.median(floor_ages):.1f} ms)"
            if floor_ages else "relay")
    ax.hist(node_ages, bins=bins, alpha=0.6, label=f"segmentation node (p50 {statistics.median(node_ages):.1f} ms)"
            if node_ages else "node")
    ax.set_xlabel("age at the listener: arrival time - header stamp (ms)")
    ax.set_ylabel("messages")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=8)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------ the run
def free_model(directory: Path, height: int, width: int, batch: int = 1) -> Path:
    """A near-free ONNX with the project's contract (labels = the red channel): only the node's own cost shows;
    ``batch`` frames per run (a multi-camera node's model)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from trt_segmentation.artifacts import artifact_path
    from trt_segmentation.onnx_metadata import METADATA_KEY, ModelContract

    x = helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, height, width, 3])
    y = helper.make_tensor_value_info("labels", TensorProto.UINT8, [batch, height, width])
    graph = helper.make_graph([helper.make_node("Gather", ["image", "channel"], ["labels"], axis=3)], "free", [x], [y],
                              [numpy_helper.from_array(np.array(0, np.int64), "channel")])
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    contract = ModelContract(FREE_MODEL, 19, height, width, "uint8_rgb", "labels_uint8", "image", "labels",
                             (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), batch=batch)
    helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    path = artifact_path(directory, FREE_MODEL, height, width, "fp32", ".onnx", batch=batch)
    onnx.save(model, str(path))
    return path


def _camera(env: Dict[str, str], height: int, width: int, rate: float, count: int) -> subprocess.Popen:
    argv = [sys.executable, "-m", "harness.node_benchmark", "camera", "--topic", CAMERA_TOPIC,
            "--height", str(height), "--width", str(width), "--rate", str(rate), "--count", str(count), "--progress"]
    return subprocess.Popen(argv, env=env)


def _wait_for_publisher(listener: AgeListener, topic: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Wait until ``topic``'s publisher (relay or node) is matched by the listener, so no frame is lost to
    discovery (the camera itself waits for its subscriber)."""
    deadline = time.monotonic() + timeout
    while listener.node.count_publishers(topic) == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"no publisher of {topic} matched in {timeout:.0f} s")
        time.sleep(0.1)
    time.sleep(0.5)


def camera_deadline(rate: float, count: int) -> float:
    """time.monotonic() after which a camera process is hung: it waits up to 60 s for its subscriber, then sends
    ``count`` frames at ``rate`` Hz; a minute more of slack for a loaded machine."""
    return time.monotonic() + 60.0 + count / rate + 60.0


def stop_if_hung(proc: subprocess.Popen, deadline: float, what: str) -> None:
    """Kill ``proc`` and raise once ``deadline`` has passed: a clear error instead of a benchmark that never ends."""
    if time.monotonic() > deadline:
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"{what} did not finish in time (killed)")


def _wait_for_arrivals(listener: AgeListener, topic: str, camera: subprocess.Popen, count: int, rate: float,
                       rss_mb: Optional[Callable[[], float]] = None) -> List[float]:
    """Wait for the camera to finish and the last labels to come in; the node's RSS (``rss_mb()``) every 5 s."""
    rss: List[float] = []
    next_sample = time.monotonic()
    deadline = camera_deadline(rate, count)
    while camera.poll() is None:
        stop_if_hung(camera, deadline, "the camera process")
        if rss_mb is not None and time.monotonic() >= next_sample:
            rss.append(rss_mb())
            next_sample += 5.0
        time.sleep(0.1)
    if camera.returncode != 0:
        raise RuntimeError(f"the camera process failed ({camera.returncode})")
    settle = time.monotonic() + 5.0
    last = -1
    while time.monotonic() < settle and listener.count(topic) < count:
        if listener.count(topic) != last:
            last, settle = listener.count(topic), time.monotonic() + 3.0
        time.sleep(0.1)
    return rss


def _child_env() -> Dict[str, str]:
    """The environment of the benchmark's processes (unbuffered, the source root on PYTHONPATH), after setting this
    process's own: its listener too needs the node's transport profile (large frames need the SHM profile) and
    loopback-only discovery. Every process that takes or builds whole frames (camera, relay, listener, node) keeps
    them on the heap (trt_segmentation/node/heap.py), so the relay's floor and the node pay the same for a take."""
    from harness.launch_emulation import transport_profile_env
    from trt_segmentation.node.heap import ENVIRONMENT, keep_frames_on_heap

    keep_frames_on_heap()
    os.environ.update(ENVIRONMENT)
    os.environ.update(transport_profile_env())
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Both phases; writes node_benchmark.{md,json,png} into ``args.out`` and returns the JSON data."""
    from harness.launch_emulation import NodeProcess, launch_command

    height, width = args.size
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = _child_env()
    count = int(args.rate * args.seconds)
    floor_count = int(args.rate * (args.floor_seconds or args.seconds))
    warmup = max(3, int(args.rate))  # the first second: start-up and first-call allocations
    listener = AgeListener([RELAY_TOPIC, NODE_LABELS])
    results: Dict[str, Any] = {}
    try:
        print(f"==> phase 1/2: raw-CDR relay, {floor_count} frames of {height}x{width} rgb8 at {args.rate:g} Hz",
              flush=True)
        # stopped as the nodes are (SIGINT, SIGKILL after 10 s): a relay that did not end within 10 s of a SIGTERM
        # once ended this benchmark with TimeoutExpired and outlived it (2026-12-07)
        relay = NodeProcess([sys.executable, "-m", "harness.node_benchmark", "relay", "--input", CAMERA_TOPIC,
                             "--output", RELAY_TOPIC], env, out / "relay.log")
        try:
            _wait_for_publisher(listener, RELAY_TOPIC, relay.proc)
            _wait_for_arrivals(listener, RELAY_TOPIC, _camera(env, height, width, args.rate, floor_count), floor_count,
                               args.rate)
        finally:
            relay.stop()
        floor = summarise_phase("relay", floor_count, listener.take(RELAY_TOPIC), listener.arrival_times(RELAY_TOPIC),
                                warmup)
        print(f"    relay: {floor.delivered}/{count} delivered, age p50 {floor.age_p50_ms:.1f} ms", flush=True)

        print(f"==> phase 2/2: segmentation node ({args.backend} {args.precision}), same camera", flush=True)
        with tempfile.TemporaryDirectory(prefix="trtseg-bench-") as tmp:
            arguments = {"backend": args.backend, "precision": args.precision, "image_topic": CAMERA_TOPIC,
                         "namespace": NODE_NAMESPACE}
            extra = {"diagnostics_period": "0.5", "inflight_slots": str(args.slots)}
            extra.update(dict(item.split("=", 1) for item in args.param))
            if args.model_kind == "free":
                free_model(Path(tmp), height, width)
                arguments.update(model=FREE_MODEL, engine_dir=tmp)
            else:
                arguments.update(model=args.model, engine_dir=str(args.engine_dir))
            if model_path(args):
                extra["engine_path"] = str(model_path(args))
            if args.engine_size:
                extra.update(engine_height=str(args.engine_size[0]), engine_width=str(args.engine_size[1]))
            argv, node_env = launch_command(arguments, extra=extra)
            node_env.update({k: v for k, v in env.items() if k.startswith("ROS_")})
            node = NodeProcess(argv, node_env, out / "node.log")
            try:
                deadline = time.monotonic() + 120
                while not listener.status(NODE_STATUS) and time.monotonic() < deadline:
                    if node.proc.poll() is not None:
                        raise RuntimeError(f"the node exited ({node.proc.returncode}):\n{node.log()[-3000:]}")
                    time.sleep(0.2)
                if not listener.status(NODE_STATUS):
                    raise RuntimeError(f"no diagnostics from the node in 120 s:\n{node.log()[-3000:]}")
                _wait_for_publisher(listener, NODE_LABELS, node.proc)
                camera = _camera(env, height, width, args.rate, count)
                profiler = (GilProfiler(node, out, args.profile_seconds, 3.0 + warmup / args.rate, "single")
                            if args.profile_seconds else None)
                rss = _wait_for_arrivals(listener, NODE_LABELS, camera, count, args.rate, node.rss_mb)
                if profiler is not None:
                    profiler.report(f"GIL profile, one camera {height}x{width} at {args.rate:g} Hz "
                                    f"({', '.join(args.param) or 'default params'})", out / "gil_profile.md")
                time.sleep(1.2)  # one more diagnostics period
                rss.append(node.rss_mb())
                status = listener.status(NODE_STATUS)
            finally:
                node.stop()
        result = summarise_phase("node", count, listener.take(NODE_LABELS), listener.arrival_times(NODE_LABELS),
                                 warmup, status, rss)
        print(f"    node: {result.delivered}/{count} delivered, age p50 {result.age_p50_ms:.1f} ms", flush=True)
    finally:
        listener.close()
    setup = {"size": f"{height}x{width} rgb8", "rate": f"{args.rate:g} Hz", "frames": str(count),
             "backend": args.backend, "precision": args.precision, "slots": str(args.slots),
             "model": FREE_MODEL if args.model_kind == "free" else args.model, "warm-up frames left out": str(warmup),
             "date": time.strftime("%Y-%m-%d")}
    markdown = report_markdown(floor, result, setup)
    results = {"setup": setup, "relay": asdict(floor), "node": asdict(result),
               "ratios": {"age_p50": result.age_p50_ms / floor.age_p50_ms if floor.age_p50_ms else None}}
    (out / "node_benchmark.md").write_text(markdown + "\n")
    (out / "node_benchmark.json").write_text(json.dumps(results, indent=2))
    plot(listener.take(RELAY_TOPIC)[warmup:], listener.take(NODE_LABELS)[warmup:], out / "node_benchmark.png",
         ", ".join(f"{k} {v}" for k, v in setup.items()))
    print(markdown, flush=True)
    return results


def model_path(args: argparse.Namespace) -> Optional[Path]:
    """The node's explicit model file (its engine_path parameter): --checkpoint (torch) or --engine-path."""
    path: Optional[Path] = getattr(args, "checkpoint", None) or args.engine_path
    return path


def _sub_main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="camera and relay processes of the node benchmark")
    sub = parser.add_subparsers(dest="command", required=True)
    cam = sub.add_parser("camera")
    cam.add_argument("--topic", required=True)
    cam.add_argument("--height", type=int, required=True)
    cam.add_argument("--width", type=int, required=True)
    cam.add_argument("--rate", type=float, required=True)
    cam.add_argument("--count", type=int, required=True)
    cam.add_argument("--wait", type=float, default=60.0)
    cam.add_argument("--progress", action="store_true")
    rel = sub.add_parser("relay")
    rel.add_argument("--input", required=True)
    rel.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    return _run_camera(args) if args.command == "camera" else _run_relay(args)


if __name__ == "__main__":
    sys.exit(_sub_main())
