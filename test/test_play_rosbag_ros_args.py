"""tools/play_rosbag.py hands rclpy only the ROS arguments (from --ros-args on), not its own: with its own argv,
rcl read ``--remap /a:=/b`` as a legacy remap rule and warned "Found remap rule '/a:=/b'. This syntax is
deprecated"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from trt_segmentation.data.bags import write_image_bag

TOOL = Path(__file__).resolve().parents[1] / "tools" / "play_rosbag.py"


def deprecation_notes(text: str) -> list[str]:
    """The lines that say something is deprecated, less Jazzy's note on ROS_LOCALHOST_ONLY (set for Humble)."""
    return [line for line in text.splitlines() if "deprecated" in line and "ROS_LOCALHOST_ONLY" not in line]


def test_remap_and_ros_args_reach_the_right_parser(tmp_path) -> None:
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(2)]
    bag = write_image_bag(tmp_path / "bag", frames, fps=20).path
    out = subprocess.run(
        [sys.executable, str(TOOL), str(bag), "--remap", "/camera/image_raw:=/elsewhere", "--quiet",
         "--ros-args", "-r", "__node:=renamed_player", "--log-level", "debug"],
        capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "sent 2 messages" in text
    assert deprecation_notes(text) == [], text
    # the ROS arguments did reach rcl: the debug log level shows rcl's own messages, under the remapped node name
    assert "renamed_player" in text, text


def test_tool_arguments_without_ros_args_are_not_given_to_rclpy(tmp_path) -> None:
    bag = write_image_bag(tmp_path / "bag", [np.zeros((8, 8, 3), np.uint8)], fps=20).path
    out = subprocess.run([sys.executable, str(TOOL), str(bag), "--remap", "/camera/image_raw:=/x", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert deprecation_notes(out.stdout + out.stderr) == [], out.stdout + out.stderr
