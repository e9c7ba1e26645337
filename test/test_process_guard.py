"""The tests leave nothing running: a process a failing test started is ended by the fixture's teardown (its own
process group and its children too), each module has a ROS domain of its own, and a process still alive at the
session's end fails the session. Run as inner pytest sessions with this directory's conftest."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from process_guard import end_processes, process_stat, processes_left_behind, run_processes

pytest_plugins = ["pytester"]
HERE = Path(__file__).resolve().parent

LEAVES_A_PROCESS = """
import subprocess, sys, time
from pathlib import Path

def test_starts_a_process_group_and_fails(tmp_path):
    # a process in a session of its own (like `setsid`), which starts a grandchild, and then the test fails
    script = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    Path("{pids}").write_text(str(proc.pid))
    time.sleep(1.0)
    assert False, "fails before it could end its process"
"""

STARTS_ONE_AT_IMPORT = """
import subprocess, sys
from pathlib import Path

# started while the module is collected, before any test: no test's fixture owns it
PROC = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
Path("{pids}").write_text(str(PROC.pid))

def test_passes():
    pass
"""

DOMAINS = """
import os
from pathlib import Path

def test_record_domain():
    with open("{out}", "a") as f:
        f.write(os.environ["ROS_DOMAIN_ID"] + "\\n")
"""


def inner_session(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((HERE / "conftest.py").read_text())
    shutil.copy(HERE / "process_guard.py", pytester.path / "process_guard.py")


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = process_stat(pid)
        if stat is None or stat[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_failing_test_leaves_no_process_and_its_grandchild_is_ended_too(pytester: pytest.Pytester) -> None:
    """Guards: the function fixture's teardown. Without it the process (and its grandchild) would sleep 300 s."""
    inner_session(pytester)
    pid_file = pytester.path / "pid.txt"
    pytester.makepyfile(test_leaves=LEAVES_A_PROCESS.format(pids=pid_file))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    pid = int(pid_file.read_text())
    assert gone(pid, 2), f"process {pid} outlived its failed test"
    leftovers = [line for line in result.outlines if "still running at the session's end" in line]
    assert not leftovers, result.outlines  # the fixture ended it, so the session check found nothing


def test_a_process_still_alive_at_the_sessions_end_is_named_ended_and_fails_the_session(
        pytester: pytest.Pytester) -> None:
    """Guards: conftest's pytest_sessionfinish check."""
    inner_session(pytester)
    pid_file = pytester.path / "pid.txt"
    pytester.makepyfile(test_import=STARTS_ONE_AT_IMPORT.format(pids=pid_file))
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.outlines
    result.stdout.fnmatch_lines(["*1 process(es) the tests started were still running at the session's end*",
                                 "*pid *time.sleep(300)*"])
    assert gone(int(pid_file.read_text()), 2)


def test_each_module_runs_in_a_ros_domain_of_its_own(pytester: pytest.Pytester) -> None:
    inner_session(pytester)
    out = pytester.path / "domains.txt"
    pytester.makepyfile(test_one=DOMAINS.format(out=out), test_two=DOMAINS.format(out=out))
    env = {"ROS_DOMAIN_ID": os.environ.pop("ROS_DOMAIN_ID")}  # else the inner session keeps it for every module
    try:
        result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=120)
    finally:
        os.environ.update(env)
    result.assert_outcomes(passed=2)
    domains = out.read_text().split()
    assert len(domains) == 2 and domains[0] != domains[1], domains


def test_a_process_of_a_module_fixture_and_its_restarted_child_are_not_ended_by_a_test(tmp_path: Path) -> None:
    """processes_left_behind spares what descends from a process already running when the test began (a module
    fixture's node restarting its camera I/O process), and names what the test itself started."""
    go = tmp_path / "go"
    spawner = ("import pathlib, subprocess, sys, time\n"
               "print('ready', flush=True)\n"
               f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.02)\n"
               "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
               "print(child.pid, flush=True); time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", spawner], start_new_session=True, stdout=subprocess.PIPE,
                              text=True)
    restarted = None
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        before = run_processes()
        assert parent.pid in before, (parent.pid, before)
        go.touch()  # the "fixture's" process now starts a child, after the test began
        restarted = int(parent.stdout.readline())
        own = subprocess.Popen(["sleep", "120"])  # started by the test itself: left behind
        try:
            left = processes_left_behind(before)
            assert own.pid in left, (own.pid, left, before)
            assert restarted not in left and parent.pid not in left, (restarted, parent.pid, left, before)
        finally:
            own.kill()
            own.wait()
    finally:
        end_processes({parent.pid: "parent"})
        code = parent.wait(timeout=30)
        assert code == -signal.SIGTERM, code
        assert restarted is None or gone(restarted, 30), process_stat(restarted)  # went with its parent's group
