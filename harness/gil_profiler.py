"""Where a node's processes hold the GIL: ``py-spy record --gil`` on the node and each of its camera I/O processes
during a benchmark run, summarised per process as the share of GIL-holding samples under each key function. Used by
the single- and multi-camera node benchmarks (``--profile-gil``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


class GilProfiler:
    """``py-spy record --gil`` on the node and each of its I/O processes for ``seconds`` after ``delay`` (the
    warm-up), 250 Hz, raw stacks; :meth:`summary` says per process which functions the GIL-holding samples were in.
    Nothing (with a note) where py-spy is not installed."""

    KEYS = ("_take_subscription", "publish", "convert_frame", "collect", "submit", "serialize", "take", "_finish",
            "send", "recv")

    def __init__(self, node: Any, out: Path, seconds: float, delay: float, label: str) -> None:
        import shutil

        self.runs: List[Tuple[str, Path, subprocess.Popen]] = []
        self.note = ""
        self._started: Optional[threading.Thread] = None
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).is_file():
            self.note = "py-spy not installed: no GIL profile"
            return
        # the processes are looked up after the delay, not now: a node's I/O processes may still be starting
        self._started = threading.Thread(target=self._record, args=(spy, node, out, seconds, delay, label),
                                         daemon=True)
        self._started.start()

    def _record(self, spy: str, node: Any, out: Path, seconds: float, delay: float, label: str) -> None:
        time.sleep(delay)
        for role, pid in [("node", node.pid)] + [("io", pid) for pid in node.child_pids()]:
            path = out / f"pyspy_{label}_{role}_{pid}.txt"
            cmd = [spy, "record", "--gil", "--rate", "250", "--duration", str(int(seconds)), "--format", "raw",
                   "--output", str(path), "--pid", str(pid)]
            self.runs.append((f"{role} {pid}", path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                                   stderr=subprocess.STDOUT)))

    def wait(self, timeout: float = 60.0) -> None:
        if self._started is not None:
            self._started.join()
        for _, _, proc in self.runs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()

    def report(self, title: str, path: Path) -> None:
        """Wait for the recordings, write their :meth:`summary` to ``path`` and print it."""
        self.wait()
        text = self.summary(title)
        path.write_text(text)
        print(text, flush=True)

    def summary(self, title: str) -> str:
        """A markdown table: per process the GIL-holding samples and the share of them under each key function."""
        if not self.runs:
            return f"{title}: {self.note}\n"
        lines = [f"### {title}", "", "| process | GIL samples | " + " | ".join(f"`{k}`" for k in self.KEYS)
                 + " | top frames (inclusive share) |", "|---|---:|" + "---:|" * len(self.KEYS) + "---|"]
        for role, path, _ in self.runs:
            stacks: Dict[str, int] = {}
            if path.is_file():
                for line in path.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if count.isdigit():
                        stacks[stack] = stacks.get(stack, 0) + int(count)
            total = sum(stacks.values())
            if not total:
                lines.append(f"| {role} | 0 |" + " |" * len(self.KEYS) + " |")
                continue
            inclusive: Dict[str, int] = {}
            for stack, count in stacks.items():
                for name in {frame.split(" (")[0] for frame in stack.split(";")[1:]}:
                    inclusive[name] = inclusive.get(name, 0) + count
            def has(stack: str, key: str) -> bool:  # py-spy names frames "Class.function (file:line)"
                return any(frame.split(" (")[0].rsplit(".", 1)[-1] == key for frame in stack.split(";"))
            shares = [sum(c for st, c in stacks.items() if has(st, k)) / total for k in self.KEYS]
            top = sorted(((c, n) for n, c in inclusive.items() if not n.startswith(("<module>", "main", "spin",
                                                                                     "run", "_bootstrap"))),
                         reverse=True)[:5]
            lines.append(f"| {role} | {total} | " + " | ".join(f"{x:.0%}" for x in shares) + " | "
                         + ", ".join(f"{n} {c / total:.0%}" for c, n in top) + " |")
        return "\n".join(lines) + "\n"
