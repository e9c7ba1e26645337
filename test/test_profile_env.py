"""The Fast DDS transport profile reaches the participant under the variable name the installed distribution reads,
with no deprecation warning: Humble (Fast DDS 2.6) and Jazzy (2.14) read FASTRTPS_DEFAULT_PROFILES_FILE only,
Kilted (Fast DDS 3) reads FASTDDS_DEFAULT_PROFILES_FILE and warns whenever the FASTRTPS_ name is set. Checked on a
real rclpy participant: the profile's 64 MB shared-memory segment is mapped into the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest

from harness.launch_emulation import CONFIG_DIR, launch_constants, profile_env_names

NEW, OLD = "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"
SEGMENT = 64 * 1024 * 1024

# A participant that reports the sizes of the shared-memory files it has mapped (Fast DDS names them
# /dev/shm/fastrtps_* in 2.x and /dev/shm/fastdds_* in 3.x; the default segment is 512 KB).
PROBE = r"""
import json, os, rclpy
rclpy.init()
node = rclpy.create_node("profile_probe")
maps = {line.split()[-1] for line in open("/proc/self/maps") if "/dev/shm/fast" in line}
print(json.dumps(sorted(os.path.getsize(p) for p in maps if os.path.exists(p))), flush=True)
from trt_segmentation.node.teardown import teardown_ros
teardown_ros(node)
"""


def installed_distro() -> str:
    """The distribution of the rclpy wheel installed here (ros-rclpy major version: 3 Humble, 7 Jazzy, 9 Kilted)."""
    try:
        major = version("ros-rclpy").split(".")[0]
    except PackageNotFoundError:
        pytest.skip("rclpy does not come from the PyPI wheels here: its distribution is not known to this test")
    distro = {"3": "humble", "7": "jazzy", "9": "kilted"}.get(major)
    if distro is None:
        pytest.skip(f"ros-rclpy {major}.x: no known distribution")
    return distro


def probe(env_names: list[str], distro: str) -> tuple[list[int], str]:
    env = {k: v for k, v in os.environ.items() if k not in (NEW, OLD)}
    env["ROS_DISTRO"] = distro
    env.update({name: str(CONFIG_DIR / launch_constants()["TRANSPORT_PROFILE"]) for name in env_names})
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_launch_file_names_the_variable_of_each_distribution() -> None:
    assert profile_env_names("humble") == [OLD] and profile_env_names("jazzy") == [OLD]
    assert profile_env_names("kilted") == [NEW] and profile_env_names("rolling") == [NEW]
    assert sorted(profile_env_names("")) == sorted([NEW, OLD])  # ROS_DISTRO unset: both, every distribution works


def test_installed_distribution_reads_the_profile_without_a_warning() -> None:
    distro = installed_distro()
    if os.environ.get("ROS_DISTRO"):
        assert os.environ["ROS_DISTRO"] == distro, "ROS_DISTRO does not name the installed rclpy's distribution"
    sizes, log = probe(profile_env_names(distro), distro)
    assert max(sizes) >= SEGMENT, f"{distro}: the profile's 64 MB segment is not mapped: {sizes}"
    assert "deprecated" not in log or "PROFILES_FILE" not in log, log
    # control: under the other name the profile is ignored (Fast DDS 2) or read with the warning (Fast DDS 3)
    other = [NEW] if profile_env_names(distro) == [OLD] else [OLD]
    sizes, log = probe(other, distro)
    assert max(sizes) < SEGMENT or ("deprecated" in log and "PROFILES_FILE" in log), (sizes, log)
