"""Listen to the node's outputs from another process: labels/colour/overlay images and /diagnostics.

An rclpy node in a context of its own, spinning in a background thread, collecting messages with their
arrival time. Used by the demo and the tests to watch the node from the outside, as a user's tools would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(TimeoutError):
    """:meth:`TopicProbe.wait_for` ran out of time."""


class WatchedProcessEnded(RuntimeError):
    """The process :meth:`TopicProbe.wait_for` watches ended before the condition held."""


class BackgroundNode:
    """An rclpy node in a context of its own, spun by a background thread from :meth:`start` until :meth:`close`.

    The thread runs ``spin_once`` in a loop that ``close`` ends and joins before the executor and context go:
    an executor still inside ``spin()`` when the process exits aborts it in C++ ("terminate called without an
    active exception", seen once in CI). Subclasses create their subscriptions on ``self.node``, then call start().
    """

    def __init__(self, name: str, args: list[str] | None = None) -> None:
        import rclpy

        self.context = rclpy.Context()
        rclpy.init(args=args, context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self._running = False

    def start(self) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            while self._running and self.context.ok():
                self.executor.spin_once(timeout_sec=0.05)
        except Exception:  # the context was shut down under it
            pass

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


class TopicProbe(BackgroundNode):
    """Collect ``sensor_msgs/Image`` messages of ``image_topics`` and every ``/diagnostics`` array, each with its
    arrival time from ``clock`` (wall time by default; ``time.monotonic`` to compare with other monotonic stamps)."""

    def __init__(self, image_topics: tuple[str, ...] = (), *, name: str = "topic_probe", depth: int = 100,
                 clock: Callable[[], float] = time.time) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        super().__init__(name)
        self.lock = threading.Lock()
        self.clock = clock
        self.images: dict[str, list[tuple[float, Any]]] = {t: [] for t in image_topics}
        self.diagnostics: list[tuple[float, Any]] = []
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
        for topic in image_topics:
            self.node.create_subscription(Image, topic, lambda m, t=topic: self._store(t, m), qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.start()

    def _store(self, topic: str, msg: Any) -> None:
        with self.lock:
            self.images[topic].append((self.clock(), msg))

    def _on_diagnostics(self, msg: Any) -> None:
        with self.lock:
            self.diagnostics.append((self.clock(), msg))

    def count(self, topic: str) -> int:
        with self.lock:
            return len(self.images[topic])

    def messages(self, topic: str) -> list[Any]:
        """The messages of ``topic`` received so far, oldest first (a copy)."""
        with self.lock:
            return [msg for _, msg in self.images[topic]]

    def last_status(self, status_name: str) -> tuple[Any, dict[str, str]] | None:
        """The newest DiagnosticStatus called ``status_name`` and its key-values."""
        with self.lock:
            for _, array in reversed(self.diagnostics):
                for status in array.status:
                    if status.name == status_name:
                        return status, {kv.key: kv.value for kv in status.values}
        return None

    def statuses(self, status_name: str) -> list[tuple[float, Any]]:
        """Every (arrival time, DiagnosticStatus) called ``status_name``, oldest first."""
        with self.lock:
            return [(t, s) for t, array in self.diagnostics for s in array.status if s.name == status_name]

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 alive: Callable[[], bool] | None = None) -> Any:
        """Poll ``predicate`` until it is truthy and return its value; raise :class:`WaitTimeout` naming ``what``,
        or :class:`WatchedProcessEnded` once ``alive`` returns False."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if alive is not None and not alive():
                raise WatchedProcessEnded(f"the watched process ended while waiting for {what}")
            time.sleep(0.05)
        raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}")

    def __enter__(self) -> TopicProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
