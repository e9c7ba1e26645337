"""A single camera's I/O process dying, through the node as launched (io_mode process): while it is down the node's
main status is ERROR and names it; it is restarted after a back-off that doubles from 0.5 s with every death in
quick succession (capped at 10 s, node/io_supervisor.py) and starts afresh at 0.5 s once a process ran 30 s.

Each restart is timed from the SIGKILL to the new process's appearance: it must not come before its back-off
(a supervisor that restarts at once, forever, fails here) nor long after it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from node_harness import STATUS, launch_command, listener, node_process

ERROR = b"\x02"
FIRST_S, STABLE_S = 0.5, 30.0  # node/io_supervisor.py's BACKOFF_FIRST_S and STABLE_S
LATE_S = 6.0  # how much later than its back-off a restart may come on a loaded 2-core machine


def live_children(pid: int) -> set[int]:
    """The node's live child processes (its camera I/O processes), zombies left out."""
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and int(fields[1]) == pid:
                children.add(int(entry.name))
    return children


def wait_for_child(node_pid: int, other_than: set[int], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = live_children(node_pid) - other_than
        if new:
            return min(new)
        time.sleep(0.01)
    raise AssertionError(f"no new I/O process of node {node_pid} within {timeout} s")


def kill_and_time_restart(node_pid: int, pid: int, expected_s: float) -> tuple[int, float]:
    """SIGKILL the I/O process ``pid``; the new one's pid and the seconds until it appeared."""
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    new = wait_for_child(node_pid, {pid}, expected_s + LATE_S + 10)
    return new, time.monotonic() - killed


def test_restart_backoff_doubles_and_starts_afresh_and_the_main_status_is_error_while_down(engine_dir,
                                                                                           tmp_path) -> None:
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/rs/image"},
                               extra={"io_mode": "process", "diagnostics_period": "0.2"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener() as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        pid = wait_for_child(node.pid, set(), 10)
        gaps = []
        for death in range(4):  # each process lives ~1 s, far below STABLE_S: the back-off doubles
            expected = FIRST_S * 2 ** death
            time.sleep(1.0)
            if death == 3:  # down for 4 s: long enough to see the status while it is down
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                status, _ = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and s[0].level == ERROR and s, 3.5,
                                         "the main status ERROR while the I/O process is down", node)
                assert "camera I/O process" in status.message and "restart 4 in 4.0 s" in status.message, status
                pid = wait_for_child(node.pid, {pid}, expected + LATE_S + 10)
                gap = time.monotonic() - killed
            else:
                pid, gap = kill_and_time_restart(node.pid, pid, expected)
            gaps.append(gap)
            assert expected * 0.95 <= gap <= expected + LATE_S, (death + 1, expected, gaps, node.log())
        lis.wait_for(lambda: (s := lis.last_status(STATUS)) and s[0].level != ERROR, 15,
                     "the main status leaving ERROR once the I/O process is back", node)
        time.sleep(STABLE_S + 1.0)  # this one has now run longer than STABLE_S: its death starts the back-off afresh
        pid, gap = kill_and_time_restart(node.pid, pid, FIRST_S)
        assert FIRST_S * 0.95 <= gap <= FIRST_S + LATE_S, (gap, node.log())
        assert node.proc.poll() is None, node.log()
    log = node.log()
    for restart, delay in enumerate((0.5, 1.0, 2.0, 4.0, 0.5), start=1):
        assert f"restart {restart} in {delay:.1f} s" in log, log
