"""Test harness for the segmentation node: start it as the launch file would, publish frames from another
process, listen to labels and diagnostics in this process. Real rclpy and Fast DDS throughout, bounded waits.

Also a command line for the publisher process:
  python test/node_harness.py publish --frames frames.npz --topic /cam/image --rate 5
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

if __name__ == "__main__":  # the publisher process: the harness package sits beside test/, in the checkout's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the node is started exactly as launch/segmentation.launch.py would start it (parsed, never executed: launch_ros
# is not installable here): harness.launch_emulation builds that command line
from harness.launch_emulation import (  # noqa: F401 (re-exported)
    NodeProcess,
    launch_constants,
    launch_function,
)
from harness.launch_emulation import launch_command as launch_file_command
from harness.topic_probe import TopicProbe, WaitTimeout, WatchedProcessEnded
from trt_segmentation.node.diagnostics import camera_task, status_name
from trt_segmentation.node.qos import wait_until_subscribed
from trt_segmentation.node.teardown import teardown_ros

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "segmentation.launch.py"
PARAMS_FILE = REPO / "config" / "segmentation.yaml"
PROFILE = REPO / "config" / "fastdds_shm.xml"
#: the node's main /diagnostics status as diagnostic_updater names it ("segmentation: inference"); the name has no
#: namespace, so a test in a namespace looks it up by the same name
STATUS = status_name(launch_constants()["NODE_NAME"])


def launch_command(arguments: dict[str, str] | None = None, **kwargs: Any) -> tuple[list[str], dict[str, str]]:
    """The launch file's node command (harness.launch_emulation) for the tests' models: their folders hold FP32
    files, so ``precision`` is fp32 unless a test names one (the launch file's own default, fp16, is for GPUs)."""
    arguments = dict(arguments or {})
    arguments.setdefault("precision", "fp32")
    return launch_file_command(arguments, **kwargs)


def camera_status(camera: str) -> str:
    """The status of one camera of a multi-camera node ("segmentation: camera front")."""
    return status_name(launch_constants()["NODE_NAME"], camera_task(camera))


# ------------------------------------------------------------------------------------------------ launch file
@contextmanager
def node_process(argv: list[str], env: dict, log_path: Path) -> Iterator[NodeProcess]:
    proc = NodeProcess(argv, env, log_path)
    try:
        yield proc
    finally:
        proc.stop()


# ------------------------------------------------------------------------------------------------ models
def small_model_dir(tmp_path_factory: Any, random_model_factory: Any, name: str, size: tuple[int, int] = (256, 512),
                    seed: int = 0, batches: tuple[int, ...] = (1,)) -> Path:
    """A folder holding ``swiftnet_ss_rn18_<H>x<W>[_b<N>]_fp32.onnx`` for each of ``batches`` (random weights,
    ``seed``, the same weights for every batch; where torch is not installed, test/tiny_model.py's stand-in); made
    once per pytest session, hard-linked into each module's folder."""
    from trt_segmentation.artifacts import artifact_path

    torch_free = importlib.util.find_spec("torch") is None  # the legs without torch (scripts/test_jazzy.sh)
    kind = "tiny" if torch_free else "rn18"
    directory = tmp_path_factory.mktemp(name)
    for batch in batches:
        suffix = f"_b{batch}" if batch > 1 else ""
        cache = tmp_path_factory.getbasetemp() / "onnx_cache" / f"{kind}_{size[0]}x{size[1]}{suffix}_seed{seed}.onnx"
        if not cache.is_file():
            cache.parent.mkdir(exist_ok=True)
            if torch_free:  # the same contract from a seeded stand-in graph (test/tiny_model.py)
                from tiny_model import write_tiny_model

                write_tiny_model(cache, *size, seed=seed, batch=batch)
            else:
                from trt_segmentation.export import ExportOptions, export_onnx

                export_onnx(random_model_factory("single_scale", "resnet18", seed=seed), cache,
                            ExportOptions(*size, batch=batch))
        os.link(cache, artifact_path(directory, "swiftnet_ss_rn18", size[0], size[1], "fp32", ".onnx", batch=batch))
    return directory


# ------------------------------------------------------------------------------------------------ listener
class Listener(TopicProbe):
    """The package's :class:`TopicProbe` (the demo's listener) with what the tests add: ``labels``, the messages
    of ``labels_topic``; arrival times from ``time.monotonic``; a failed wait is an AssertionError with the node's
    log."""

    def __init__(self, labels_topic: str | None = None, *, extra_topics: tuple[str, ...] = (),
                 name: str = "test_listener") -> None:
        self.labels_topic = labels_topic
        topics = ((labels_topic,) if labels_topic else ()) + tuple(extra_topics)
        super().__init__(topics, name=name, clock=time.monotonic)

    @property
    def labels(self) -> list[Any]:
        """The labels messages received so far (a copy)."""
        return self.messages(self.labels_topic) if self.labels_topic else []

    def wait_for(self, predicate: Any, timeout: float, what: str, proc: NodeProcess | None = None) -> Any:
        alive = None if proc is None else (lambda: proc.proc.poll() is None)
        try:
            return super().wait_for(predicate, timeout, what, alive)
        except WatchedProcessEnded:
            assert proc is not None
            raise AssertionError(
                f"node exited ({proc.proc.returncode}) while waiting for {what}:\n{proc.log()}") from None
        except WaitTimeout as exc:
            log = f"\nnode log:\n{proc.log()}" if proc is not None else ""
            raise AssertionError(f"{exc}{log}") from None


def listener(labels_topic: str | None = None, **kwargs: Any) -> Listener:
    """A :class:`Listener`, to use as a context manager (closed on exit)."""
    return Listener(labels_topic, **kwargs)


# ------------------------------------------------------------------------------------------------ frames
def encode_frame(rgb: np.ndarray, encoding: str, pad: int = 0) -> tuple[int, bytes]:
    """An (H, W, 3) RGB frame -> (step, data) of an Image in ``encoding`` with ``pad`` bytes per row (numpy
    written independently of trt_segmentation.image_codec, so the test checks the codec, not itself)."""
    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[..., ::-1]
    elif encoding == "rgba8":
        pixels = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "bgra8":
        pixels = np.concatenate([rgb[..., ::-1], np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    elif encoding == "mono8":
        pixels = rgb[..., :1]
    else:
        raise ValueError(encoding)
    h, w, c = pixels.shape
    rows = np.zeros((h, w * c + pad), np.uint8)
    rows[:, : w * c] = pixels.reshape(h, w * c)
    return w * c + pad, rows.tobytes()


def expected_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """What the node should see for a frame sent in ``encoding`` (mono8 carries only the first channel)."""
    return np.repeat(rgb[..., :1], 3, axis=2) if encoding == "mono8" else rgb


def smooth_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Street-ish test images: smooth random colour fields with some texture, not pure noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
        big = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR)).astype(np.int16)
        noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
        frames.append(np.clip(big + noise, 0, 255).astype(np.uint8))
    return np.stack(frames)


def png_claiming(height: int, width: int) -> bytes:
    """A real PNG of ``height`` x ``width`` in one colour: a few KB, however large it claims to be."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_claiming(height: int, width: int) -> bytes:
    """A 16x16 JPEG whose SOF0 header is patched to claim ``height`` x ``width`` (a decompression bomb)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    struct.pack_into(">HH", data, data.index(b"\xff\xc0") + 5, height, width)
    return bytes(data)


def save_frames(path: Path, frames: list[dict[str, Any]]) -> Path:
    """Frames for the publisher process: list of {encoding, height, width, step, data(bytes)} or
    {format, data} for CompressedImage."""
    arrays = {f"data{i}": np.frombuffer(f["data"], np.uint8) for i, f in enumerate(frames)}
    meta = [{k: v for k, v in f.items() if k != "data"} for f in frames]
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)
    return path


def start_publisher(frames_path: Path, topic: str, rate: float, *, env: dict | None = None,
                    reliable: bool = False, compressed: bool = False, repeat: int = 1,
                    wait_subscriber: float = 20.0, lockstep: str = "", settle: str = "", record: Path | None = None,
                    stamp_offset: float = 0.0, frame_id_prefix: str = "frame") -> subprocess.Popen:
    """The publisher process. ``lockstep``: a labels topic; each frame is sent only once the labels of the
    previous one arrived (or 10 s passed), so a slow shared CI machine cannot turn a correctness test into a
    drop test. ``settle``: a status name (``STATUS``); each frame is sent only once that status accounts for the
    previous one (processed, failed or dropped), for frames that produce no labels. ``record``: a JSON file the
    publisher writes with the header of every frame it sent (frame_id, sec, nanosec) and the wall-clock time of
    each publish call. ``stamp_offset``: seconds subtracted from the current time in every header stamp.
    ``frame_id_prefix``: frame ids are ``<prefix><n>`` (n counts the frames sent)."""
    argv = [sys.executable, str(Path(__file__)), "publish", "--frames", str(frames_path), "--topic", topic,
            "--rate", str(rate), "--repeat", str(repeat), "--wait", str(wait_subscriber),
            "--stamp-offset", str(stamp_offset), "--frame-id-prefix", frame_id_prefix]
    if record is not None:
        argv += ["--record", str(record)]
    if lockstep:
        argv += ["--lockstep", lockstep]
    if settle:
        argv += ["--settle", settle]
    if reliable:
        argv.append("--reliable")
    if compressed:
        argv.append("--compressed")
    # a process group of its own: the test's teardown (conftest) ends it and anything it started, even after a
    # failure that kept the test from calling finish()
    return subprocess.Popen(argv, env=env or dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for a helper process (killed after ``timeout``) and return its output."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
        raise AssertionError(f"publisher did not finish in {timeout} s:\n{out}") from None
    assert proc.returncode == 0, f"publisher failed ({proc.returncode}):\n{out}"
    return out


def _publish_main(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CompressedImage, Image

    data = np.load(args.frames)
    meta = json.loads(str(data["meta"]))
    rclpy.init()
    node = rclpy.create_node(f"test_image_publisher_{os.getpid()}")  # unique: several publishers run at once
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if args.reliable else qos_profile_sensor_data
    kind = CompressedImage if args.compressed else Image
    pub = node.create_publisher(kind, args.topic, qos)
    answered: set[str] = set()
    accounted = [0]
    if args.settle:
        from diagnostic_msgs.msg import DiagnosticArray

        def on_diagnostics(array: Any) -> None:
            for status in array.status:
                if status.name == args.settle:
                    v = {kv.key: kv.value for kv in status.values}
                    accounted[0] = sum(int(v[k]) for k in ("frames_processed", "frames_failed", "frames_dropped"))

        node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    if args.lockstep:
        node.create_subscription(Image, args.lockstep, lambda m: answered.add(m.header.frame_id),
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    if not wait_until_subscribed([pub], args.wait):
        print(f"no subscriber on {args.topic} after {args.wait} s", flush=True)
        return 3
    time.sleep(0.5)  # let the discovery of the reverse direction settle
    period = 1.0 / args.rate
    next_time = time.monotonic()
    sent = 0
    headers: list[dict[str, Any]] = []
    offset_ns = int(args.stamp_offset * 1e9)
    for _ in range(args.repeat):
        for i, m in enumerate(meta):
            msg = kind()
            msg.header.frame_id = f"{args.frame_id_prefix}{sent}"
            stamp_ns = node.get_clock().now().nanoseconds - offset_ns
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            payload = data[f"data{i}"].tobytes()
            if args.compressed:
                msg.format = m["format"]
            else:
                msg.encoding, msg.height, msg.width, msg.step = m["encoding"], m["height"], m["width"], m["step"]
            msg.data = payload
            pub.publish(msg)
            headers.append({"frame_id": msg.header.frame_id, "sec": msg.header.stamp.sec,
                            "nanosec": msg.header.stamp.nanosec, "published_ns": time.time_ns()})
            sent += 1
            next_time += period
            if args.lockstep or args.settle:
                deadline = time.monotonic() + 10.0
                while time.monotonic() < deadline and not (
                        (args.lockstep and msg.header.frame_id in answered) or (args.settle and accounted[0] >= sent)):
                    rclpy.spin_once(node, timeout_sec=0.05)
                next_time = max(next_time, time.monotonic())
            time.sleep(max(0.0, next_time - time.monotonic()))
    time.sleep(0.5)
    if args.record:
        Path(args.record).write_text(json.dumps(headers))
    print(f"sent {sent}", flush=True)
    teardown_ros(node)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="image publisher for the node tests")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("publish")
    p.add_argument("--frames", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--wait", type=float, default=20.0)
    p.add_argument("--reliable", action="store_true")
    p.add_argument("--compressed", action="store_true")
    p.add_argument("--lockstep", default="", help="labels topic to wait on after each frame")
    p.add_argument("--settle", default="", help="diagnostic status that must account for each frame")
    p.add_argument("--record", default="", help="JSON file to write the sent headers to")
    p.add_argument("--stamp-offset", type=float, default=0.0, help="seconds subtracted from every header stamp")
    p.add_argument("--frame-id-prefix", default="frame", help="frame ids are <prefix><n>")
    args = parser.parse_args()
    sys.exit(_publish_main(args))
