"""A bag of several cameras (tools/make_rosbag.py --cameras) played by tools/play_rosbag.py into a real ROS 2 graph:
every camera's topic (two of them remapped) reaches its own subscriber process, complete, in recorded order, with
its own frame_id, size and stamps; the player reads the cameras interleaved by recorded time."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from test_play_rosbag import finish, start_subscriber

from trt_segmentation.data.bags import BagReader, iter_bag_images

ROOT = Path(__file__).resolve().parents[1]
START = 1_700_000_000_000_000_000


def test_three_cameras_play_to_their_own_remapped_topics(tmp_path) -> None:
    bag = tmp_path / "three"
    made = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_rosbag.py"), str(bag), "--generate", "3", "--size", "24x32",
         "--cameras", "front", "left", "right", "--camera-size", "left=16x24", "--camera-rate", "right=5",
         "--quiet"], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    with BagReader(bag) as reader:  # what the player iterates: one stream in recorded-time order across cameras
        order = [(t, topic) for topic, _, t, _ in reader.messages()]
    assert [t for t, _ in order] == sorted(t for t, _ in order) and len({topic for _, topic in order}) == 3
    expected = {}
    for name in ("front", "left", "right"):
        frames = list(iter_bag_images(bag, f"/cameras/{name}/image"))
        expected[name] = [hashlib.sha1(img.tobytes()).hexdigest() for _, img in frames], [t for t, _ in frames]
    topics = {"front": "/seg/front/image", "left": "/seg/left/image", "right": "/cameras/right/image"}
    subs = {name: start_subscriber(topic, "raw", "reliable", 3) for name, topic in topics.items()}
    try:
        player = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--rate", "4",
             "--remap", "/cameras/front/image:=/seg/front/image", "--remap", "/cameras/left/image:=/seg/left/image",
             "--wait-for-subscribers", "1", "--quiet"],
            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    finally:
        got = {name: finish(proc) for name, proc in subs.items()}
    assert player.returncode == 0, player.stdout + player.stderr
    assert "sent 9 messages" in player.stdout
    assert "/cameras/front/image->/seg/front/image" in player.stdout
    sizes = {"front": [24, 32, "rgb8"], "left": [16, 24, "rgb8"], "right": [24, 32, "rgb8"]}
    for name, messages in got.items():
        shas, stamps = expected[name]
        assert [g["sha"] for g in messages] == shas, name  # all frames, in recorded order
        assert [g["sec"] * 10**9 + g["nanosec"] for g in messages] == stamps, name
        assert all(g["frame_id"] == name and g["size"] == sizes[name] for g in messages), name
    assert np.diff(expected["right"][1]).tolist() == [200_000_000] * 2  # 5 Hz


def test_remap_of_a_topic_not_in_the_bag_is_an_error(tmp_path) -> None:
    from trt_segmentation.data.bags import write_image_bag

    bag = write_image_bag(tmp_path / "bag", [np.zeros((8, 8, 3), np.uint8)], fps=20).path
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "play_rosbag.py"), str(bag), "--remap",
                          "/cameras/front/image:=/x", "--quiet"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "--remap names /cameras/front/image, not a played topic" in out.stderr
    assert "Traceback" not in out.stderr
