"""Finding and ending the processes a test run started, by a marker in their environment (conftest.py sets it).

Every process the tests start (publishers, nodes, their camera I/O processes, tools, helper scripts) inherits the
marker from the pytest process's environment and passes it on, so it is found however it was started (through the
harness, a bare ``subprocess`` call, ``setsid`` or as a grandchild) as long as it was given the run's environment:
a process started with an environment built from scratch carries no marker and is not found. Linux only
(``/proc``), like the node's own process handling.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

#: the environment variable whose value names one test run
RUN_MARKER = "TRT_SEGMENTATION_TEST_RUN"
PROC = Path("/proc")


def process_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None once it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def _command(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def run_processes() -> dict[int, str]:
    """pid -> command line of every live process (not a zombie) of this test run, other than pytest itself."""
    marker = os.environ.get(RUN_MARKER)
    if not marker:
        return {}
    tag = f"{RUN_MARKER}={marker}".encode() + b"\0"
    found: dict[int, str] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()  # a zombie's reads empty
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + tag) >= 0:
            found[int(entry.name)] = _command(int(entry.name))
    return found


def processes_left_behind(before: dict[int, str]) -> dict[int, str]:
    """The test run's processes started since ``before`` was taken, except those descending from a process that
    was already running then (a module fixture's node restarting its camera I/O process)."""
    left: dict[int, str] = {}
    for pid, command in run_processes().items():
        if pid in before:
            continue
        ancestor, seen = pid, 0
        while ancestor > 1 and ancestor not in before and seen < 64:
            stat = process_stat(ancestor)
            ancestor = stat[1] if stat else 0
            seen += 1
        if ancestor not in before:
            left[pid] = command
    return left


def end_processes(processes: dict[int, str], grace_s: float = 5.0) -> None:
    """SIGTERM each process (its whole process group where it leads one other than pytest's), SIGKILL what is
    still alive ``grace_s`` seconds later. Each round signals only the pids that still carry this run's marker, so
    a pid the kernel gave to another process meanwhile is never touched."""
    own_group = os.getpgrp()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        targets = run_processes().keys() & processes.keys()
        if not targets:
            return
        for pid in targets:
            try:
                if os.getpgid(pid) == pid and pid != own_group:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            except OSError:  # gone meanwhile
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and run_processes().keys() & targets:
            time.sleep(0.05)
