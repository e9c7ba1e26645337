"""The on-target launch check (issue 33): start the package's launch file once, as a user would (``ros2 launch``),
and report whether the node came up: its main status on /diagnostics within a deadline, then a clean stop on
SIGINT. ``trt_seg_check_on_target --launch`` runs it after the engine rows; the listener is a plain rclpy node in
this process, so the check needs the target's ROS 2 install and nothing else. DDS stays where the user's
environment puts it (``ROS_DOMAIN_ID``, ``ROS_AUTOMATIC_DISCOVERY_RANGE`` / ``ROS_LOCALHOST_ONLY``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..node.diagnostics import LEVEL_NAMES, status_name

#: what the launch file names its package, file and node (launch/segmentation.launch.py)
PACKAGE, LAUNCH_FILE, NODE_NAME = "trt_segmentation", "segmentation.launch.py", "segmentation"


@dataclass
class LaunchResult:
    """What one launch showed: whether the node's main status arrived, after how long, its level and message,
    and how the launch ended after SIGINT (None: it had to be killed)."""

    came_up: bool
    seconds: float
    level: str
    message: str
    exit_code: Optional[int]
    log_tail: str

    def summary(self) -> str:
        if not self.came_up:
            return (f"launch: FAIL, no status of the node on /diagnostics after {self.seconds:.1f} s "
                    f"(exit code {self.exit_code}); its output ends with:\n{self.log_tail}")
        ended = "stopped cleanly" if self.exit_code == 0 else f"ended with exit code {self.exit_code} on SIGINT"
        return (f"launch: PASS, the node came up in {self.seconds:.1f} s ({self.level}: {self.message}); "
                f"{ended}")


def ros2_launch_argv(engine_dir: Path, precision: str, model: str, extra: Sequence[str] = ()) -> List[str]:
    """``ros2 launch trt_segmentation segmentation.launch.py`` with the engine folder, precision and model."""
    return ["ros2", "launch", PACKAGE, LAUNCH_FILE, f"engine_dir:={Path(engine_dir).resolve()}",
            f"precision:={precision}", f"model:={model}", *extra]


def check_launch(argv: Sequence[str], env: Optional[Dict[str, str]] = None, timeout_s: float = 60.0,
                 log_path: Optional[Path] = None) -> LaunchResult:
    """Start ``argv`` (a launch, or anything that starts the node) in a process group of its own, wait up to
    ``timeout_s`` for the node's main status on /diagnostics, then SIGINT the group (SIGKILL 15 s later)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    wanted = status_name(NODE_NAME)
    log = open(log_path, "w+b") if log_path is not None else _temporary_log()
    proc = subprocess.Popen(list(argv), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("trt_segmentation_launch_check", context=context)
    seen: list = []
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: seen.extend(s for s in m.status if s.name == wanted), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    start = time.monotonic()
    try:
        while not seen and proc.poll() is None and time.monotonic() - start < timeout_s:
            executor.spin_once(timeout_sec=0.1)
        seconds = time.monotonic() - start
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        exit_code = _stop(proc)
    log.seek(0)
    tail = "\n".join(log.read().decode(errors="replace").splitlines()[-15:])
    log.close()
    if not seen:
        return LaunchResult(False, seconds, "", "", exit_code, tail)
    level = LEVEL_NAMES.get(seen[0].level[0] if isinstance(seen[0].level, bytes) else int(seen[0].level), "?")
    return LaunchResult(True, seconds, level, seen[0].message, exit_code, tail)


def _temporary_log():  # noqa: ANN202 - a binary file object
    import tempfile

    return tempfile.TemporaryFile()


def _stop(proc: subprocess.Popen) -> Optional[int]:
    """SIGINT the process group (what Ctrl-C does to ``ros2 launch``), SIGKILL it 15 s later; the exit code, or
    None when it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None
    except ProcessLookupError:
        return proc.wait()
