"""Rolling latency windows per pipeline stage and a frame-rate meter, for the node's diagnostics.

Each window keeps the last N samples in a fixed numpy ring (no growth, no per-sample allocation), so a node
running for days holds constant memory. Summaries are percentiles over the window. Thread-safe: the worker
thread records, the diagnostics timer reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0)


class RollingWindow:
    """The last ``size`` samples of one quantity (e.g. milliseconds of one stage)."""

    def __init__(self, size: int = 300) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._values = np.zeros(size, dtype=np.float64)
        self._next = 0
        self._count = 0
        self._lock = threading.Lock()

    def add(self, value: float) -> None:
        with self._lock:
            self._values[self._next] = value
            self._next = (self._next + 1) % self._values.size
            self._count = min(self._count + 1, self._values.size)

    def __len__(self) -> int:
        return self._count

    def values(self) -> np.ndarray:
        """A copy of the samples currently in the window (oldest order not preserved)."""
        with self._lock:
            return self._values[: self._count].copy()

    def summary(self) -> dict[str, float]:
        """{'p50', 'p95', 'p99', 'max', 'n'}; NaN percentiles for an empty window."""
        values = self.values()
        if values.size == 0:
            return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
        p50, p95, p99 = np.percentile(values, PERCENTILES)
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max()), "n": values.size}


class RateMeter:
    """Events per second over the last ``horizon_s`` seconds (e.g. processed frames -> fps)."""

    def __init__(self, horizon_s: float = 5.0, capacity: int = 4096) -> None:
        self.horizon_s = horizon_s
        self._stamps = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._count = 0
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._stamps[self._next] = time.monotonic() if now is None else now
            self._next = (self._next + 1) % self._stamps.size
            self._count = min(self._count + 1, self._stamps.size)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            stamps = self._stamps[: self._count]
            recent = stamps[stamps >= now - self.horizon_s]
        if recent.size < 2:
            return 0.0
        return float((recent.size - 1) / max(float(recent.max() - recent.min()), 1e-9))


class StageLatency:
    """One rolling window per named stage, created on first use."""

    def __init__(self, stages: Iterable[str] = (), window: int = 300) -> None:
        self.window = window
        self._windows: dict[str, RollingWindow] = {name: RollingWindow(window) for name in stages}
        self._lock = threading.Lock()

    def add(self, stage: str, milliseconds: float) -> None:
        with self._lock:
            win = self._windows.get(stage)
            if win is None:
                win = self._windows[stage] = RollingWindow(self.window)
        win.add(milliseconds)

    def add_all(self, timings_ms: dict[str, float]) -> None:
        for stage, value in timings_ms.items():
            self.add(stage, value)

    def summaries(self) -> dict[str, dict[str, float]]:
        with self._lock:
            windows = dict(self._windows)
        return {stage: win.summary() for stage, win in windows.items()}


__all__ = ["PERCENTILES", "RateMeter", "RollingWindow", "StageLatency"]
