"""The bounded ROS teardown (node/teardown.py), in processes of their own: a stalled last step ends the process with
its code, teardown_ros itself ends a process whose destroy_node stalls (even holding the interpreter lock), a real rclpy teardown finishes normally, and
an exit that stalls after it is ended by the alarm."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

STALL = r"""
import time
from trt_segmentation.node.teardown import exit_if_stuck
print("written before the stall")  # block-buffered into a pipe: must still come out
with exit_if_stuck(0.5, 7, "test step"):
    time.sleep(60)
print("never")
"""

REAL = r"""
import rclpy
from std_msgs.msg import String
from trt_segmentation.node.teardown import teardown_ros
rclpy.init()
node = rclpy.create_node("teardown_probe")
node.create_publisher(String, "teardown_probe", 10)
teardown_ros(node, code=9)
print("ok" if not rclpy.ok() else "context still up", flush=True)
"""

STALLED_DESTROY = r"""
import time
import rclpy
from trt_segmentation.node.teardown import teardown_ros
rclpy.init()
node = rclpy.create_node("stalled_destroy_probe")
node.destroy_node = lambda: time.sleep(60)  # stands in for Fast DDS blocking inside Node.destroy_node
print("tearing down", flush=True)
teardown_ros(node, code=5, limit_s=0.5)
print("never")
"""

STALLED_HOLDING_THE_LOCK = r"""
import ctypes
import rclpy
from trt_segmentation.node.teardown import teardown_ros
rclpy.init()
node = rclpy.create_node("stalled_lock_probe")
# libc's sleep called through PyDLL keeps the interpreter lock: no Python thread (exit_if_stuck's timer) runs again
node.destroy_node = lambda: ctypes.PyDLL(None).sleep(60)
print("tearing down", flush=True)
teardown_ros(node, code=5, limit_s=0.5, exit_limit_s=1.0)
print("never")
"""

STALLED_EXIT = r"""
import atexit, time
import rclpy
from trt_segmentation.node.teardown import teardown_ros
rclpy.init()
node = rclpy.create_node("exit_probe")
teardown_ros(node, exit_limit_s=1.0)
atexit.register(time.sleep, 60)  # stands in for a middleware destructor that never returns
print("torn down", flush=True)
"""


def run(script: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return done, time.monotonic() - start


def test_a_stalled_teardown_ends_the_process_with_its_code_and_says_so():
    done, seconds = run(STALL)
    assert done.returncode == 7, done.stderr
    assert seconds < 20
    assert done.stdout.splitlines() == ["written before the stall"]
    assert "test step still running after 0.5 s" in done.stderr


def test_teardown_ros_ends_a_process_whose_destroy_node_stalls():
    """Guards teardown_ros's own bound (not only the helper it uses): with it gone, the process sleeps 60 s."""
    pytest.importorskip("rclpy")
    done, seconds = run(STALLED_DESTROY)
    assert done.returncode == 5, (done.returncode, done.stderr)
    assert seconds < 20
    assert done.stdout.splitlines() == ["tearing down"]
    assert "ROS teardown still running after 0.5 s" in done.stderr


def test_a_teardown_stalled_in_a_call_that_holds_the_interpreter_lock_is_ended_by_the_alarm():
    """Guards the alarm armed before the teardown: without it the Python timer never fires and the process sleeps
    60 s."""
    pytest.importorskip("rclpy")
    done, seconds = run(STALLED_HOLDING_THE_LOCK)
    assert done.returncode == -signal.SIGALRM, (done.returncode, done.stderr)
    assert seconds < 20
    assert done.stdout.splitlines() == ["tearing down"]


def test_a_real_rclpy_teardown_finishes_and_the_process_goes_on():
    pytest.importorskip("rclpy")
    done, _ = run(REAL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "still running" not in done.stderr


def test_an_exit_that_stalls_after_the_teardown_is_ended_by_the_alarm():
    pytest.importorskip("rclpy")
    done, seconds = run(STALLED_EXIT)
    assert done.returncode == -signal.SIGALRM, (done.returncode, done.stderr)
    assert seconds < 20
    assert done.stdout.strip() == "torn down"
