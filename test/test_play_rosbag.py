"""Play bags into a real ROS 2 graph: the player publishes, a subscriber in a separate process counts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trt_segmentation.apps.bag_player import restamp_cdr
from trt_segmentation.data.bags import compress_frame, write_image_bag

ROOT = Path(__file__).resolve().parents[1]

# The subscriber: a plain rclpy node in its own process. It prints one JSON line per message (stamp, frame_id,
# size, a digest of the pixels) and exits after `count` messages, `timeout` seconds, or 3 s without a new message
# (its teardown bounded: a Fast DDS stall in destroy_node failed this test once on CI, after every message had come).
SUBSCRIBER = r"""
import hashlib, json, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, DurabilityPolicy
from sensor_msgs.msg import Image, CompressedImage
from trt_segmentation.node.teardown import teardown_ros
topic, kind, reliability, count, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
rclpy.init()
node = rclpy.create_node("bag_test_subscriber")
qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, durability=DurabilityPolicy.VOLATILE,
                 reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT)
got = []
def on_msg(msg):
    size = [msg.height, msg.width, msg.encoding] if kind == "raw" else [msg.format]
    got.append({"sec": msg.header.stamp.sec, "nanosec": msg.header.stamp.nanosec, "frame_id": msg.header.frame_id,
                "size": size, "sha": hashlib.sha1(bytes(msg.data)).hexdigest(), "t": time.time()})
node.create_subscription(Image if kind == "raw" else CompressedImage, topic, on_msg, qos)
print("READY", flush=True)
deadline = time.monotonic() + timeout
while len(got) < count and time.monotonic() < deadline and not (got and time.time() - got[-1]["t"] > 3.0):
    rclpy.spin_once(node, timeout_sec=0.05)
for g in got:
    print(json.dumps(g), flush=True)
teardown_ros(node)
"""


def start_subscriber(topic: str, kind: str, reliability: str, count: int, timeout: float = 30.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, topic, kind, reliability, str(count), str(timeout)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until rclpy is up and the subscription exists
    assert line.strip() == "READY", proc.stderr.read() if proc.stderr else line
    return proc


def finish(proc: subprocess.Popen) -> list[dict]:
    try:
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(5)]


START = 1_700_000_000_000_000_000


def test_play_mcap_reliable_keeps_order_stamps_and_pixels_and_loops(tmp_path, frames):
    from trt_segmentation.apps.bag_player import play_bag

    bag = write_image_bag(tmp_path / "bag", frames, fps=10, start_ns=START, frame_id="cam0").path
    total = 12  # 5-frame bag, looped: 0..4, 0..4, 0, 1
    sub = start_subscriber("/camera/image_raw", "raw", "reliable", total)
    try:
        t0 = time.monotonic()
        sent = play_bag(bag, rate=4.0, loop=True, max_messages=total, qos="reliable", progress=False,
                        wait_for_subscribers=1, log=None)
        elapsed = time.monotonic() - t0
    finally:
        got = finish(sub)
    assert sent == total
    assert len(got) == total
    order = [i % 5 for i in range(total)]
    assert [g["sha"] for g in got] == [hashlib.sha1(frames[i].tobytes()).hexdigest() for i in order]
    stamps = [g["sec"] * 10**9 + g["nanosec"] for g in got]
    assert stamps == [START + i * 100_000_000 for i in order]  # stamps kept as recorded
    assert all(g["frame_id"] == "cam0" and g["size"] == [24, 32, "rgb8"] for g in got)
    # 11 recorded frame periods of 0.1 s at rate 4 cannot take less than 0.275 s
    assert elapsed >= 0.25


def test_play_tool_sqlite_compressed_best_effort_remap_and_now_stamps(tmp_path, frames):
    bag = write_image_bag(tmp_path / "bag", frames, fps=20, storage="sqlite3", compressed="png", start_ns=START).path
    sub = start_subscriber("/renamed", "compressed", "best_effort", len(frames))
    try:
        before = time.time()
        player = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--remap", "/camera/image_raw/compressed:=/renamed",
             "--stamps", "now", "--qos", "best_effort", "--wait-for-subscribers", "1", "--delay", "1.0", "--quiet"],
            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    finally:
        got = finish(sub)
    assert player.returncode == 0, player.stderr
    assert "sent 5 messages" in player.stdout
    # small frames on loopback: best effort loses nothing once both sides have matched (--delay covers the
    # subscriber's side of discovery, which the player cannot observe)
    assert len(got) == len(frames)
    stamps = [g["sec"] + g["nanosec"] * 1e-9 for g in got]
    assert stamps == sorted(stamps) and before - 1 < stamps[0] < time.time() + 1  # rewritten to "now"
    assert all(g["size"] == ["png"] for g in got)
    expected = [hashlib.sha1(compress_frame(f, "png")).hexdigest() for f in frames]  # deterministic encoder
    assert [g["sha"] for g in got] == expected  # all frames, in recorded order


def test_restamp_cdr_rewrites_only_the_stamp():
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Image, Header, Time = (ts.types[k] for k in ("sensor_msgs/msg/Image", "std_msgs/msg/Header", "builtin_interfaces/msg/Time"))
    msg = Image(header=Header(stamp=Time(sec=1, nanosec=2), frame_id="f"), height=1, width=2, encoding="rgb8",
                is_bigendian=0, step=6, data=np.arange(6, dtype=np.uint8))
    raw = ts.serialize_cdr(msg, "sensor_msgs/msg/Image")
    out = ts.deserialize_cdr(restamp_cdr(raw, 123, 456), "sensor_msgs/msg/Image")
    assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (123, 456, "f")
    assert out.data.tolist() == list(range(6)) and out.encoding == "rgb8"
