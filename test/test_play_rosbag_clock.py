"""The bag player's ``--stamps recorded --clock`` (issue 33): the bag's time on /clock, as ``ros2 bag play --clock``,
received by a real rclpy subscriber in a separate process together with the images it goes with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from trt_segmentation.data.bags import write_image_bag

ROOT = Path(__file__).resolve().parents[1]
START = 1_700_000_000_000_000_000 - 86_400 * 10**9  # a drive recorded a day before any "now" of the test machine
FRAMES, PERIOD_NS = 5, 100_000_000  # 10 Hz

# Subscribes /clock and the images, both reliable and deep enough to keep every sample; prints READY once both
# exist, then one JSON line per message ({"clock": ns} or {"image": header stamp ns}) in arrival order per topic.
SUBSCRIBER = r"""
import json, sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from trt_segmentation.node.teardown import teardown_ros
count = int(sys.argv[1])
rclpy.init()
node = rclpy.create_node("clock_test_subscriber")
qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
clock, images = [], []
node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec), qos)
node.create_subscription(Image, "/camera/image_raw",
                         lambda m: images.append(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec), qos)
print("READY", flush=True)
deadline, last, seen = time.monotonic() + 60, time.monotonic(), 0
while time.monotonic() < deadline and not (len(images) >= count and time.monotonic() - last > 2.0):
    rclpy.spin_once(node, timeout_sec=0.05)
    if len(clock) + len(images) != seen:
        seen, last = len(clock) + len(images), time.monotonic()
for value in clock:
    print(json.dumps({"clock": value}))
for value in images:
    print(json.dumps({"image": value}))
sys.stdout.flush()
teardown_ros(node)
"""


def test_recorded_stamps_and_clock_give_the_bag_time_on_clock(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(FRAMES)]
    bag = write_image_bag(tmp_path / "bag", frames, fps=10, start_ns=START, frame_id="cam0").path
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(FRAMES)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert sub.stdout is not None and sub.stdout.readline().strip() == "READY"
        player = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--stamps", "recorded", "--clock", "50",
             "--rate", "0.5", "--wait-for-subscribers", "1", "--quiet"],
            capture_output=True, text=True, timeout=120, env=os.environ.copy())
        out, err = sub.communicate(timeout=90)
    finally:
        if sub.poll() is None:
            sub.kill()
    assert player.returncode == 0, player.stdout + player.stderr
    assert sub.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    clock = [line["clock"] for line in lines if "clock" in line]
    images = [line["image"] for line in lines if "image" in line]
    recorded = [START + i * PERIOD_NS for i in range(FRAMES)]
    assert images == recorded  # header stamps as recorded
    # the bag's time: it starts at the first recorded stamp, never goes back, ends at the last one, and reaches
    # each message's recorded time (published just before that message); ticks in between (50 Hz, 0.2 s gaps)
    assert clock[0] == recorded[0] and clock[-1] == recorded[-1], clock
    assert clock == sorted(clock) and set(recorded) <= set(clock)
    between = [c for c in clock if c not in recorded]
    assert between and all(recorded[0] < c < recorded[-1] for c in between), clock


def test_clock_with_now_stamps_is_one_line(tmp_path: Path) -> None:
    bag = write_image_bag(tmp_path / "bag", [np.zeros((4, 4, 3), np.uint8)], fps=10, start_ns=START).path
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--stamps", "now",
                           "--clock"], capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: the clock publishes the recorded time: use it with recorded stamps (with 'now' the header stamps "
        "would be the wall clock's, not the bag's)"]


def test_waiting_for_n_subscribers_asks_n_of_the_topics_and_one_of_clock(tmp_path: Path) -> None:
    """Two image subscribers, one of them on /clock too: ``--wait-for-subscribers 2`` plays (N is the topics'; the
    clock, the time source of any number of nodes, needs one)."""
    bag = write_image_bag(tmp_path / "bag", [np.zeros((4, 4, 3), np.uint8)] * 2, fps=10, start_ns=START).path
    images_only = SUBSCRIBER.replace('node.create_subscription(Clock, "/clock"', "(lambda *a: None)(Clock, None")
    subs = [subprocess.Popen([sys.executable, "-c", code, "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=os.environ.copy()) for code in (SUBSCRIBER, images_only)]
    try:
        for sub in subs:
            assert sub.stdout is not None and sub.stdout.readline().strip() == "READY"
        player = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--stamps", "recorded", "--clock",
             "--wait-for-subscribers", "2", "--wait-timeout", "20", "--quiet"],
            capture_output=True, text=True, timeout=120, env=os.environ.copy())
        outs = [sub.communicate(timeout=90)[0] for sub in subs]
    finally:
        for sub in subs:
            if sub.poll() is None:
                sub.kill()
    assert player.returncode == 0, player.stdout + player.stderr
    for out in outs:
        assert [json.loads(line)["image"] for line in out.splitlines() if '"image"' in line] == [
            START, START + PERIOD_NS]
