"""A single camera's I/O process dying, through the node as launched (io_mode process): while it is down the node's
main status is ERROR and names it; it is restarted after a back-off that doubles from 0.5 s with every death in
quick succession (0.5, 1, 2, 4 s here; node/camera_io/io_supervisor.py caps it at 10 s, which this test does not reach) and
starts afresh at 0.5 s once a process ran 30 s.

Each restart is timed from the SIGKILL to the new process's appearance: it must not come before its back-off
(a supervisor that restarts at once, forever, fails here) nor long after it.
"""

from __future__ import annotations

import os
import signal
import time

from node_harness import STATUS, NodeProcess, launch_command, listener, node_process

ERROR = b"\x02"
FIRST_S, STABLE_S = 0.5, 30.0  # node/camera_io/io_supervisor.py's BACKOFF_FIRST_S and STABLE_S
LATE_S = 6.0  # how much later than its back-off a restart may come on a loaded 2-core machine


def wait_for_child(node: NodeProcess, other_than: set[int], timeout: float) -> int:
    """The pid of a live I/O process of ``node`` other than ``other_than``, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = set(node.child_pids()) - other_than
        if new:
            return min(new)
        time.sleep(0.01)
    raise AssertionError(f"no new I/O process of node {node.pid} within {timeout} s")


def kill_and_time_restart(node: NodeProcess, pid: int, expected_s: float) -> tuple[int, float]:
    """SIGKILL the I/O process ``pid``; the new one's pid and the seconds until it appeared."""
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    new = wait_for_child(node, {pid}, expected_s + LATE_S + 10)
    return new, time.monotonic() - killed


def test_restart_backoff_doubles_and_starts_afresh_and_the_main_status_is_error_while_down(engine_dir,
                                                                                           tmp_path) -> None:
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/rs/image"},
                               extra={"io_mode": "process", "diagnostics_period": "0.2"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener() as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        pid = wait_for_child(node, set(), 10)
        gaps = []
        for death in range(4):  # each process lives ~1 s, far below STABLE_S: the back-off doubles
            expected = FIRST_S * 2 ** death
            time.sleep(1.0)
            if death == 3:  # down for 4 s: long enough to see the status while it is down
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                # the status may still carry the previous death's text for a diagnostics period or two: wait for
                # the one that names this death
                status, _ = lis.wait_for(
                    lambda: (s := lis.last_status(STATUS)) and s[0].level == ERROR and "restart 4 in" in s[0].message
                    and s, 3.5, "the main status ERROR, naming restart 4, while the I/O process is down", node)
                assert "camera I/O process" in status.message and "restart 4 in 4.0 s" in status.message, status
                pid = wait_for_child(node, {pid}, expected + LATE_S + 10)
                gap = time.monotonic() - killed
            else:
                pid, gap = kill_and_time_restart(node, pid, expected)
            gaps.append(gap)
            assert expected * 0.95 <= gap <= expected + LATE_S, (death + 1, expected, gaps, node.log())
        lis.wait_for(lambda: (s := lis.last_status(STATUS)) and s[0].level != ERROR, 15,
                     "the main status leaving ERROR once the I/O process is back", node)
        time.sleep(STABLE_S + 1.0)  # this one has now run longer than STABLE_S: its death starts the back-off afresh
        pid, gap = kill_and_time_restart(node, pid, FIRST_S)
        assert FIRST_S * 0.95 <= gap <= FIRST_S + LATE_S, (gap, node.log())
        assert node.proc.poll() is None, node.log()
    log = node.log()
    for restart, delay in enumerate((0.5, 1.0, 2.0, 4.0, 0.5), start=1):
        assert f"restart {restart} in {delay:.1f} s" in log, log
