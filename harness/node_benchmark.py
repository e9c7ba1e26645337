"""End-to-end node benchmark: camera process -> (node | raw-CDR relay) -> listener, over real DDS, one run.

Two phases with the same camera and listener: first a minimal relay (takes each frame as serialized CDR and
publishes a pre-built mono8 image with the same header: the transport floor, no inference, no conversion), then
the segmentation node started as the launch file starts it. The listener measures each label's age (arrival time
minus the header stamp the camera set); the node's own stages come from its /diagnostics. Every figure of the
node is also given as a ratio to the relay's from the same run; with several cameras, N relays give the floor of N
cameras before N single-camera nodes and one batched node run. Used by ``tools/benchmark_node.py``; the camera
and relay are this module's ``camera`` / ``relay`` sub-commands, each in its own process.
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
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from harness.topic_probe import BackgroundNode
from trt_segmentation.image_cdr import Header, ImageSerializer, Stamp, parse_image
from trt_segmentation.node.diagnostics import cpu_model, status_name
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


class GilProfiler:
    """``py-spy record --gil`` on the node and each of its I/O processes for ``seconds`` after ``delay`` (the
    warm-up), 250 Hz, raw stacks; :meth:`summary` says per process which functions the GIL-holding samples were in.
    Nothing (with a note) where py-spy is not installed."""

    KEYS = ("_take_subscription", "publish", "convert_frame", "collect", "submit", "serialize", "take", "_finish",
            "send", "recv")

    def __init__(self, node: Any, out: Path, seconds: float, delay: float, label: str) -> None:
        import shutil

        self.runs: List[Tuple[str, Path, subprocess.Popen]] = []
        self.note = ""
        self._started: Optional[threading.Thread] = None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).is_file():
            self.note = "py-spy not installed: no GIL profile"
            return
        # the processes are looked up after the delay, not now: a node's I/O processes may still be starting
        self._started = threading.Thread(target=self._record, args=(spy, node, out, seconds, delay, label),
                                         daemon=True)
        self._started.start()

    def _record(self, spy: str, node: Any, out: Path, seconds: float, delay: float, label: str) -> None:
        time.sleep(delay)
        for role, pid in [("node", node.pid)] + [("io", pid) for pid in node.child_pids()]:
            path = out / f"pyspy_{label}_{role}_{pid}.txt"
            cmd = [spy, "record", "--gil", "--rate", "250", "--duration", str(int(seconds)), "--format", "raw",
                   "--output", str(path), "--pid", str(pid)]
            self.runs.append((f"{role} {pid}", path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                                   stderr=subprocess.STDOUT)))

    def wait(self, timeout: float = 60.0) -> None:
        if self._started is not None:
            self._started.join()
        for _, _, proc in self.runs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

    def report(self, title: str, path: Path) -> None:
        """Wait for the recordings, write their :meth:`summary` to ``path`` and print it."""
        self.wait()
        text = self.summary(title)
        path.write_text(text)
        print(text, flush=True)

    def summary(self, title: str) -> str:
        """A markdown table: per process the GIL-holding samples and the share of them under each key function."""
        if not self.runs:
            return f"{title}: {self.note}\n"
        lines = [f"### {title}", "", "| process | GIL samples | " + " | ".join(f"`{k}`" for k in self.KEYS)
                 + " | top frames (inclusive share) |", "|---|---:|" + "---:|" * len(self.KEYS) + "---|"]
        for role, path, _ in self.runs:
            stacks: Dict[str, int] = {}
            if path.is_file():
                for line in path.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if count.isdigit():
                        stacks[stack] = stacks.get(stack, 0) + int(count)
            total = sum(stacks.values())
            if not total:
                lines.append(f"| {role} | 0 |" + " |" * len(self.KEYS) + " |")
                continue
            inclusive: Dict[str, int] = {}
            for stack, count in stacks.items():
                for name in {frame.split(" (")[0] for frame in stack.split(";")[1:]}:
                    inclusive[name] = inclusive.get(name, 0) + count
            def has(stack: str, key: str) -> bool:  # py-spy names frames "Class.function (file:line)"
                return any(frame.split(" (")[0].rsplit(".", 1)[-1] == key for frame in stack.split(";"))
            shares = [sum(c for st, c in stacks.items() if has(st, k)) / total for k in self.KEYS]
            top = sorted(((c, n) for n, c in inclusive.items() if not n.startswith(("<module>", "main", "spin",
                                                                                     "run", "_bootstrap"))),
                         reverse=True)[:5]
            lines.append(f"| {role} | {total} | " + " | ".join(f"{x:.0%}" for x in shares) + " | "
                         + ", ".join(f"{n} {c / total:.0%}" for c, n in top) + " |")
        return "\n".join(lines) + "\n"


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


# ------------------------------------------------------------------------------------------------ multi-camera
MULTI_NAMESPACE = "bench_multi"


def _nvidia_smi(query: str) -> Optional[str]:
    import shutil

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        return subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None


def gpu_used_mib() -> Optional[float]:
    """Memory in use on the first GPU (nvidia-smi), MiB; None without nvidia-smi."""
    out = _nvidia_smi("--query-gpu=memory.used")
    return float(out.split()[0]) if out and out.split() else None


def gpu_memory_mib(pids: List[int], baseline: Optional[float] = None) -> Optional[float]:
    """GPU memory the processes ``pids`` hold: nvidia-smi's per-process used_memory (MiB), or, where it lists
    none of them (a container's PIDs differ from the driver's), the GPU's memory in use minus ``baseline``; None
    without nvidia-smi (a CPU run)."""
    out = _nvidia_smi("--query-compute-apps=pid,used_memory")
    if out is None:
        return None
    used = {int(pid): float(mib) for pid, mib in (line.split(",") for line in out.strip().splitlines() if line)}
    found = [used[pid] for pid in pids if pid in used]
    if found:
        return sum(found)
    total = gpu_used_mib()
    return total - baseline if total is not None and baseline is not None else None


@dataclass
class MultiPhase:
    """One configuration of the multi-camera comparison: labels per camera, their ages, the nodes' memory."""

    name: str
    nodes: int
    sent_per_camera: int
    delivered: Dict[str, int]
    age_p50_ms: Dict[str, float]
    age_p95_ms: Dict[str, float]
    throughput_fps: float  # all cameras' labels per second after warm-up
    rss_mb: float  # sum over the node processes, at the end of the measured phase
    gpu_mib: Optional[float] = None
    status: Dict[str, str] = field(default_factory=dict)


WARMUP_S = 1.0  # each topic's first second of labels is left out of the multi-camera figures


def after_warmup(arrivals: List[float], warmup_s: float) -> int:
    """Index of a topic's first label more than ``warmup_s`` after its first label: the warm-up is a time, not a
    count, so a configuration that delivers far fewer labels than were offered still keeps its measured ones."""
    return next((i for i, t in enumerate(arrivals) if t - arrivals[0] > warmup_s), len(arrivals))


def aggregate_throughput(arrivals: Dict[str, List[float]], warmup_s: float) -> float:
    """Labels per second of all topics together: every label after each topic's warm-up (``after_warmup``), over
    the span from the first to the last of them."""
    times = sorted(t for values in arrivals.values() for t in values[after_warmup(values, warmup_s):])
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else float("nan")


def _multi_phase(name: str, listener: AgeListener, topics: Dict[str, str], nodes: List[Any], env: Dict[str, str],
                 args: argparse.Namespace, count: int, warmup_s: float, gpu_baseline: Optional[float]) -> MultiPhase:
    """Cameras -> ``nodes`` (already started): wait for every labels publisher, run the N camera processes,
    collect ages and memory."""
    for topic in topics.values():
        _wait_for_publisher(listener, topic, nodes[0].proc)
    height, width = args.size
    cameras = {camera: subprocess.Popen(
        [sys.executable, "-m", "harness.node_benchmark", "camera", "--topic", f"/{MULTI_NAMESPACE}/{camera}/image_raw",
         "--height", str(height), "--width", str(width), "--rate", str(args.rate), "--count", str(count)], env=env)
        for camera in topics}
    rss_peak, gpu_peak = 0.0, None
    deadline = camera_deadline(args.rate, count)
    for camera, proc in cameras.items():
        while proc.poll() is None:
            stop_if_hung(proc, deadline, f"camera {camera}")
            rss_peak = max(rss_peak, sum(n.rss_mb() for n in nodes))
            gpu = gpu_memory_mib([n.pid for n in nodes], gpu_baseline)
            gpu_peak = gpu if gpu_peak is None or (gpu is not None and gpu > gpu_peak) else gpu_peak
            time.sleep(0.5)
        if proc.returncode != 0:
            raise RuntimeError(f"camera {camera} failed ({proc.returncode})")
    settle, last = time.monotonic() + 5.0, -1  # the last labels: until every frame is in or none came for 3 s
    while time.monotonic() < settle and any(listener.count(t) < count for t in topics.values()):
        total = sum(listener.count(t) for t in topics.values())
        if total != last:
            last, settle = total, time.monotonic() + 3.0
        time.sleep(0.1)
    rss = sum(n.rss_mb() for n in nodes)
    arrivals = {c: listener.arrival_times(t) for c, t in topics.items()}
    ages = {c: listener.take(t)[after_warmup(arrivals[c], warmup_s):] for c, t in topics.items()}
    nan = float("nan")
    return MultiPhase(
        name, len(nodes), count, {c: listener.count(t) for c, t in topics.items()},
        {c: float(np.percentile(a, 50)) if a else nan for c, a in ages.items()},
        {c: float(np.percentile(a, 95)) if a else nan for c, a in ages.items()},
        aggregate_throughput(arrivals, warmup_s),
        max(rss, rss_peak), gpu_peak, listener.status(NODE_STATUS))


def report_multi_markdown(relay: MultiPhase, single: MultiPhase, batched: MultiPhase, setup: Dict[str, str]) -> str:
    def ratio(a: Optional[float], b: Optional[float]) -> str:
        return f"{a / b:.2f}x" if a is not None and b and a == a and b == b else "n/a"

    def ages(phase: MultiPhase, camera: str) -> str:
        return (f"{phase.delivered[camera]}/{phase.sent_per_camera}, {phase.age_p50_ms[camera]:.0f} / "
                f"{phase.age_p95_ms[camera]:.0f}")

    cameras = list(batched.delivered)
    lines = [f"### {len(cameras)} cameras: one batched node vs {single.nodes} single-camera nodes (same run)", ""]
    lines += [", ".join(f"{k}: {v}" for k, v in setup.items()), ""]
    lines += [f"| figure | {relay.nodes} raw-CDR relays (floor) | {single.nodes} single-camera nodes (batch 1) | "
              f"1 node, batch {len(cameras)} | batched / single |", "|---|---:|---:|---:|---:|"]
    lines.append(f"| aggregate throughput, labels/s | {relay.throughput_fps:.2f} | {single.throughput_fps:.2f} | "
                 f"{batched.throughput_fps:.2f} | {ratio(batched.throughput_fps, single.throughput_fps)} |")
    lines.append(f"| throughput / floor | 1.00x | {ratio(single.throughput_fps, relay.throughput_fps)} | "
                 f"{ratio(batched.throughput_fps, relay.throughput_fps)} | |")
    for camera in cameras:
        lines.append(f"| {camera}: delivered / sent, age p50 / p95 ms | {ages(relay, camera)} | {ages(single, camera)} | "
                     f"{ages(batched, camera)} | {ratio(batched.age_p95_ms[camera], single.age_p95_ms[camera])} (p95) |")
    lines.append(f"| node RSS MB (sum over the node processes, peak) | | {single.rss_mb:.0f} | {batched.rss_mb:.0f} | "
                 f"{ratio(batched.rss_mb, single.rss_mb)} |")
    gpu = (f"| GPU memory MiB (nvidia-smi, the node processes, peak) | | {single.gpu_mib:.0f} | {batched.gpu_mib:.0f} | "
           f"{ratio(batched.gpu_mib, single.gpu_mib)} |" if single.gpu_mib is not None and batched.gpu_mib is not None
           else "| GPU memory | | n/a (no nvidia-smi or no GPU process) | | |")
    lines.append(gpu)
    fill = batched.status.get("batch_fill_ratio", "n/a")
    lines.append(f"| batched node: batches, fill ratio (real rows / batch), dropped / received | | | "
                 f"{batched.status.get('batches', '?')}, {fill}, {batched.status.get('frames_dropped', '?')} / "
                 f"{batched.status.get('frames_received', '?')} | |")
    stages = ", ".join(f"{stage} {batched.status.get(f'latency_{stage}_p50_ms', '?')}"
                       for stage in ("preprocess", "inference", "postprocess"))
    lines.append(f"| batched node: stages p50 ms per batch (its /diagnostics) | | | {stages} | |")
    lines.append(f"| batched node: converter's wait p50 ms per batch, for a slot / for the batch to be due | | | "
                 f"{batched.status.get('batch_slot_wait_p50_ms', '?')} / "
                 f"{batched.status.get('batch_due_wait_p50_ms', '?')} | |")
    return "\n".join(lines)


def model_path(args: argparse.Namespace) -> Optional[Path]:
    """The node's explicit model file (its engine_path parameter): --checkpoint (torch) or --engine-path."""
    path: Optional[Path] = getattr(args, "checkpoint", None) or args.engine_path
    return path


def run_multi(args: argparse.Namespace) -> Dict[str, Any]:
    """``args.camera_count`` camera processes into as many raw-CDR relays (the transport floor of N cameras), then
    into as many single-camera nodes, then into one node of batch ``args.camera_count``; writes
    multi_camera_benchmark.{md,json} into ``args.out``."""
    from harness.launch_emulation import NodeProcess, launch_command

    n = args.camera_count
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = _child_env()
    count = int(args.rate * args.seconds)
    warmup_s = WARMUP_S
    cameras = [f"cam{i}" for i in range(n)]
    single_topics = {c: f"/{MULTI_NAMESPACE}/{c}/segmentation/labels" for c in cameras}
    batched_topics = {c: f"/{MULTI_NAMESPACE}/segmentation/{c}/labels" for c in cameras}
    relay_topics = {c: f"/{MULTI_NAMESPACE}/relay/{c}/labels" for c in cameras}
    listener = AgeListener(list(relay_topics.values()) + list(single_topics.values()) + list(batched_topics.values()))
    base = {"backend": args.backend, "precision": args.precision, "model": args.model,
            "engine_dir": str(args.engine_dir)}
    extra = {"diagnostics_period": "0.5", "inflight_slots": str(args.slots)}
    extra.update(dict(item.split("=", 1) for item in args.param))
    if args.engine_size:
        extra.update(engine_height=str(args.engine_size[0]), engine_width=str(args.engine_size[1]))
    if model_path(args):  # torch: the checkpoint (the node tells the backend the batch)
        extra["engine_path"] = str(model_path(args))

    def start(arguments: Dict[str, str], params: Dict[str, str], log: str) -> Any:
        argv, node_env = launch_command(dict(base, **arguments), extra=params)
        node_env.update({k: v for k, v in env.items() if k.startswith("ROS_")})
        return NodeProcess(argv, node_env, out / log)

    phases: Dict[str, MultiPhase] = {}
    try:
        print(f"==> phase 1/3: {n} raw-CDR relays (the transport floor of {n} cameras: no node at all)", flush=True)
        relays = [NodeProcess([sys.executable, "-m", "harness.node_benchmark", "relay", "--input",
                               f"/{MULTI_NAMESPACE}/{c}/image_raw", "--output", relay_topics[c]], env,
                              out / f"relay_{c}.log") for c in cameras]
        try:
            phases["relay"] = _multi_phase("relay", listener, relay_topics, relays, env, args, count, warmup_s, None)
        finally:
            for relay in relays:
                relay.stop()
        print(f"    {phases['relay'].throughput_fps:.2f} labels/s in all", flush=True)
        print(f"==> phase 2/3: {n} single-camera nodes, {n} cameras of {args.size[0]}x{args.size[1]} rgb8 at "
              f"{args.rate:g} Hz each, {count} frames per camera", flush=True)
        baseline = gpu_used_mib()
        nodes = [start({"namespace": f"{MULTI_NAMESPACE}/{c}", "image_topic": f"/{MULTI_NAMESPACE}/{c}/image_raw"},
                       extra, f"node_{c}.log") for c in cameras]
        try:
            phases["single"] = _multi_phase("single", listener, single_topics, nodes, env, args, count, warmup_s,
                                            baseline)
        finally:
            for node in nodes:
                node.stop()
        print(f"    {phases['single'].throughput_fps:.2f} labels/s in all", flush=True)
        print(f"==> phase 3/3: one node, cameras {cameras}, batch {n}", flush=True)
        time.sleep(2.0)  # the single-camera nodes' GPU memory is released
        baseline = gpu_used_mib()
        node = start({"namespace": MULTI_NAMESPACE, "cameras": f"[{','.join(cameras)}]",
                      "camera_topic": f"/{MULTI_NAMESPACE}/{{camera}}/image_raw"},
                     dict(extra, batch_timeout_ms=str(float(args.batch_timeout_ms))), "node_batched.log")
        try:
            deadline = time.monotonic() + 120
            while node.proc.poll() is None and listener.node.count_publishers(batched_topics[cameras[0]]) == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the batched node did not start in 120 s:\n{node.log()[-3000:]}")
                time.sleep(0.2)
            if node.proc.poll() is not None:
                raise RuntimeError(f"the batched node exited ({node.proc.returncode}):\n{node.log()[-3000:]}")
            profiler = (GilProfiler(node, out, args.profile_seconds, 3.0 + warmup_s, "batched")
                        if args.profile_seconds else None)
            phases["batched"] = _multi_phase("batched", listener, batched_topics, [node], env, args, count, warmup_s,
                                             baseline)
            if profiler is not None:
                profiler.report(f"GIL profile, batched node, {n} cameras {args.size[0]}x{args.size[1]} at "
                                f"{args.rate:g} Hz ({', '.join(args.param) or 'default params'})",
                                out / "gil_profile_batched.md")
        finally:
            node.stop()
        print(f"    {phases['batched'].throughput_fps:.2f} labels/s in all", flush=True)
    finally:
        listener.close()
    setup = {"cameras": str(n), "size": f"{args.size[0]}x{args.size[1]} rgb8", "rate": f"{args.rate:g} Hz per camera",
             "frames per camera": str(count), "backend": args.backend, "precision": args.precision,
             "model": args.model, "batch_timeout_ms": f"{args.batch_timeout_ms:g}",
             "params": " ".join(args.param) or "defaults", "warm-up left out per camera": f"first {warmup_s:g} s of labels",
             "machine": f"{cpu_model()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    markdown = report_multi_markdown(phases["relay"], phases["single"], phases["batched"], setup)
    relay, single, batched = phases["relay"], phases["single"], phases["batched"]
    results = {"setup": setup, "relay": asdict(relay), "single": asdict(single), "batched": asdict(batched),
               "ratios": {"throughput": batched.throughput_fps / single.throughput_fps,
                          "single_to_floor": single.throughput_fps / relay.throughput_fps,
                          "batched_to_floor": batched.throughput_fps / relay.throughput_fps,
                          "rss": batched.rss_mb / single.rss_mb,
                          "gpu_memory": (batched.gpu_mib / single.gpu_mib
                                         if batched.gpu_mib is not None and single.gpu_mib else None)}}
    (out / "multi_camera_benchmark.md").write_text(markdown + "\n")
    (out / "multi_camera_benchmark.json").write_text(json.dumps(results, indent=2))
    print(markdown, flush=True)
    return results


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
