"""Ending a ROS process on time: rclpy's teardown bounded by a deadline, after which the process exits anyway.

Fast DDS's entity destruction can block: in this repository's tests a subscriber that had received every message
stayed inside ``Node.destroy_node`` for more than 30 s in about 1 run of 50 (rclpy 9.1.2 Kilted, rmw_fastrtps_cpp,
2026-12-05). A process that is ending has nothing left to lose at that point (frame rings are unlinked and workers
joined before the teardown starts), so a stall must not keep it alive: SIGINT/SIGTERM end every process. The same
holds after the teardown: a subscriber that had torn down and printed everything was once still alive 40 s later
(Jazzy wheels, 2026-12-06), stalled in the interpreter's exit (atexit handlers, the middleware's C++ destructors),
where no Python thread runs any more; so the teardown also arms the kernel's alarm timer, whose default action ends
the process (exit status -SIGALRM) if it is still there ``EXIT_LIMIT_S`` seconds later. The alarm is armed before
the teardown too: a stall in a C call that holds the interpreter lock stops the Python timer as well.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

TEARDOWN_LIMIT_S = 5.0  # rclpy's teardown normally takes milliseconds
EXIT_LIMIT_S = 10.0  # the interpreter's exit after it; generous: a GPU process also frees its CUDA context then


def _exit_now(code: int, what: str, limit_s: float) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.write(f"{what} still running after {limit_s:g} s (a middleware stall); exiting with code {code}\n")
        sys.stderr.flush()
    finally:
        os._exit(code)


@contextmanager
def exit_if_stuck(limit_s: float, code: int, what: str) -> Iterator[None]:
    """Run the block; if it has not finished after ``limit_s`` seconds, flush stdout, say so on stderr and end the
    process with ``code`` (os._exit: no further cleanup, so only for the last step of a process)."""
    timer = threading.Timer(limit_s, _exit_now, (code, what, limit_s))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def teardown_ros(node: Any, code: int = 0, limit_s: float = TEARDOWN_LIMIT_S,
                 exit_limit_s: float = EXIT_LIMIT_S) -> None:
    """Destroy ``node`` and shut rclpy's default context down, the last step of a ROS process's ``main``; a
    teardown that stalls for ``limit_s`` seconds ends the process with ``code``, an exit that has not ended
    ``exit_limit_s`` seconds after it is ended by SIGALRM (POSIX)."""
    import rclpy

    # the kernel's timer first: a stall inside a C call that holds the interpreter lock keeps the Python timer of
    # exit_if_stuck from ever running (seen once on a loaded 2-core CI machine: a subscriber alive 90 s after it
    # printed everything), the alarm still ends the process
    _arm_alarm(limit_s + exit_limit_s)
    with exit_if_stuck(limit_s, code, "ROS teardown"):
        node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    _arm_alarm(exit_limit_s)


def _arm_alarm(seconds: float) -> None:
    """End the process by SIGALRM (its default action, even inside a C++ destructor) ``seconds`` from now (POSIX)."""
    if not hasattr(signal, "setitimer"):
        return
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    except ValueError:  # not the main thread: Python installs no SIGALRM handler of its own anyway
        pass
    signal.setitimer(signal.ITIMER_REAL, seconds)
