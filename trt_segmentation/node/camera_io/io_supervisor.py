"""The inference process's side of the camera I/O processes (io_mode ``process``): start one io_process per camera,
each with a fresh shared-memory ring (frame_ring), turn what it tells (io_messages) into the worker's mailbox
posts and counts (a :class:`FrameSink`: the worker itself, so frames never pass through the rclpy node) and the
node's per-camera state (an :class:`IoSink`), and restart a process that died, with back-off, while the other
cameras go on. No ROS in here.

Processes are started fresh (``python -m trt_segmentation.node.camera_io.io_process``, never a fork of this rclpy
process) in a session of their own (a Ctrl-C on the terminal reaches the node, which ends them), all from one
supervisor thread: PR_SET_PDEATHSIG fires when the thread that started a process ends, so that thread lives as long
as the processes should. Rings left by a killed node are swept when the next one starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Dict, List, Optional, Protocol

from .frame_ring import FrameRing, SlotFrame, ring_name, sweep_stale_rings
from .io_messages import BadFrame, FrameReady, QosProblem, Ready, Release, RingFull

PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the folder holding trt_segmentation/
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
STABLE_S = 30.0  # a process that ran this long starts the back-off afresh when it dies


class FrameSink(Protocol):
    """Where a camera's frames and their counts go (the node's worker; called from that camera's reader thread)."""

    def post_frame(self, camera: int, frame: SlotFrame) -> None:
        """A frame in its ring slot (released once done with)."""

    def refuse(self, camera: int, text: str) -> None:
        """A frame the I/O process took and refused as bad input."""

    def drop_taken(self, camera: int) -> None:
        """A frame the I/O process took but had no free ring slot for."""


class IoSink(Protocol):
    """What the node keeps of its cameras' I/O processes (called from that camera's reader thread)."""

    def qos_problem(self, camera: int, text: str) -> None: ...

    def io_state(self, camera: int, error: str) -> None: ...

    def ring_opened(self, camera: int, ring: FrameRing) -> None:
        """A new ring, before its I/O process starts (e.g. page-lock it for the GPU's uploads)."""

    def ring_closed(self, camera: int, ring: FrameRing) -> None:
        """A ring whose I/O process has ended (called once per opened ring; frames may still hold views of it)."""


@dataclass
class CameraIoSpec:
    """One camera's I/O process: its name and resolved image topic."""

    name: str
    image_topic: str


@dataclass
class IoSettings:
    node_name: str
    namespace: str
    compressed: bool
    order: str
    max_pixels: int
    slots: int
    reliability: str
    depth: int
    use_sim_time: bool = False  # the node's: its I/O processes time a frame's arrival on the same ROS clock


class IoLink:
    """One generation of a camera's I/O process: the process, the link to it and its ring."""

    def __init__(self, camera: int, generation: int, proc: subprocess.Popen[bytes], link: Connection,
                 ring: FrameRing) -> None:
        self.camera = camera
        self.generation = generation
        self.proc = proc
        self.link = link
        self.ring = ring
        self.started = time.monotonic()
        self._send = threading.Lock()

    def release(self, slot: int) -> None:
        """Give ``slot`` back; nothing when the process has gone."""
        try:
            with self._send:
                self.link.send(Release(slot))
        except (OSError, ValueError, EOFError):
            pass


@dataclass
class _Camera:
    spec: CameraIoSpec
    link: Optional[IoLink] = None
    generation: int = 0
    failures: int = 0
    restart_at: Optional[float] = None  # monotonic time a (re)start is due
    restarts: int = 0
    ready: bool = False
    reader: Optional[threading.Thread] = None
    old_links: List[IoLink] = field(default_factory=list)


class IoSupervisor:
    """Starts, watches and restarts the cameras' I/O processes; ``stop`` ends them all and removes the rings."""

    def __init__(self, cameras: List[CameraIoSpec], settings: IoSettings, frames: FrameSink, sink: IoSink,
                 log: Callable[[str, bool], None] = lambda text, warn: None) -> None:
        self.settings = settings
        self.frames = frames
        self.sink = sink
        self.log = log
        self.cameras = [_Camera(spec, restart_at=0.0) for spec in cameras]
        self._stop = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._supervise, name="io-supervisor", daemon=True)
        self.owner = os.getpid()

    def start(self, wait_s: float = 30.0) -> bool:
        """Sweep rings of killed nodes, start the processes and wait (up to ``wait_s``) until each has subscribed
        and can publish, so the node's first diagnostics mean its topics exist; False if one did not."""
        for name in sweep_stale_rings():
            self.log(f"removed the frame ring /dev/shm/{name} of a node that was killed", True)
        self._thread.start()
        deadline = time.monotonic() + wait_s
        with self._cv:
            while not all(c.ready for c in self.cameras) and time.monotonic() < deadline and not self._stop:
                self._cv.wait(0.1)
            return all(c.ready for c in self.cameras)

    def pids(self) -> Dict[str, int]:
        """The running I/O processes' pids by camera name."""
        with self._cv:
            return {c.spec.name: c.link.proc.pid for c in self.cameras if c.link is not None}

    # ---------------------------------------------------------------- supervisor thread
    def _supervise(self) -> None:
        with self._cv:
            while not self._stop:
                now = time.monotonic()
                due = [c for c in self.cameras if c.restart_at is not None and c.restart_at <= now]
                for index, camera in enumerate(self.cameras):
                    if camera in due:
                        camera.restart_at = None
                        try:
                            self._spawn(index, camera)
                        except Exception as exc:  # noqa: BLE001 - e.g. no /dev/shm space: reported, tried again
                            self._died(index, camera, f"could not start: {type(exc).__name__}: {exc}")
                waits = [c.restart_at - now for c in self.cameras if c.restart_at is not None]
                self._cv.wait(max(0.01, min(waits)) if waits else 1.0)

    def _spawn(self, index: int, camera: _Camera) -> None:
        s, spec = self.settings, camera.spec
        camera.generation += 1
        ring = FrameRing.create(ring_name(self.owner, index, camera.generation), s.slots, s.max_pixels)
        try:
            self.sink.ring_opened(index, ring)
        except BaseException:
            ring.unlink()
            raise
        ours, theirs = socket.socketpair()
        argv = [sys.executable, "-m", "trt_segmentation.node.camera_io.io_process", "--fd", str(theirs.fileno()),
                "--parent-pid", str(self.owner), "--ring", ring.name, "--slots", str(s.slots),
                "--max-pixels", str(s.max_pixels),
                "--node-name", f"{s.node_name}_io_{spec.name or 'image'}", "--namespace", s.namespace,
                "--image-topic", spec.image_topic, "--order", s.order, "--reliability", s.reliability,
                "--depth", str(s.depth)]
        if s.compressed:
            argv.append("--compressed")
        if s.use_sim_time:
            argv.append("--use-sim-time")
        env = dict(os.environ)
        env["PYTHONPATH"] = PACKAGE_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.Popen(argv, pass_fds=(theirs.fileno(),), env=env, start_new_session=True)
        except BaseException:
            ring.unlink()
            self.sink.ring_closed(index, ring)
            ours.close()
            raise
        finally:
            theirs.close()
        link = IoLink(index, camera.generation, proc, Connection(ours.detach()), ring)
        camera.link = link
        camera.reader = threading.Thread(target=self._read, args=(index, camera, link),
                                         name=f"io-read-{spec.name or 'image'}", daemon=True)
        camera.reader.start()

    def _died(self, index: int, camera: _Camera, why: str) -> None:
        """Schedule the restart (call holding ``_cv``)."""
        link = camera.link
        stable = link is not None and time.monotonic() - link.started > STABLE_S
        camera.failures = 1 if stable else camera.failures + 1
        delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (camera.failures - 1))
        camera.restart_at = time.monotonic() + delay
        camera.restarts += 1
        camera.link = None
        text = (f"camera I/O process{' ' + camera.spec.name if camera.spec.name else ''} {why}; restart "
                f"{camera.restarts} in {delay:.1f} s")
        self.log(text, False)
        self.sink.io_state(index, text)
        self._cv.notify_all()

    # ---------------------------------------------------------------- reader threads (one per generation)
    def _read(self, index: int, camera: _Camera, link: IoLink) -> None:
        frames, sink = self.frames, self.sink
        while True:
            try:
                message = link.link.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, FrameReady):
                frames.post_frame(index, SlotFrame(link.ring, message.slot, message.header, message.height,
                                                   message.width, link, message.received_ns,
                                                   message.received_mono_ns))
            elif isinstance(message, BadFrame):
                frames.refuse(index, message.text)
            elif isinstance(message, RingFull):
                frames.drop_taken(index)
            elif isinstance(message, Ready):
                sink.io_state(index, "")
                with self._cv:
                    camera.ready = True
                    self._cv.notify_all()
            elif isinstance(message, QosProblem):
                sink.qos_problem(index, message.text)
        link.ring.unlink()  # frames still held keep their mapping; the name goes now
        try:
            code = link.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            link.proc.kill()
            code = link.proc.wait()
        link.link.close()
        self.sink.ring_closed(index, link.ring)  # its process has ended: nothing writes into it any more
        with self._cv:
            if not self._stop and camera.link is link:
                self._died(index, camera, f"(pid {link.proc.pid}) exited with code {code}")

    # ---------------------------------------------------------------- stop
    def stop(self, timeout: float = 5.0) -> None:
        """End every I/O process (SIGTERM; SIGKILL after ``timeout``) and remove the rings."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            links = [c.link for c in self.cameras if c.link is not None]
            readers = [c.reader for c in self.cameras if c.reader is not None]
        for link in links:
            if link.proc.poll() is None:
                link.proc.terminate()
        deadline = time.monotonic() + timeout
        for link in links:
            try:
                link.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                link.proc.kill()
                link.proc.wait()
            link.ring.unlink()
        for reader in readers:  # each sees its link end, closes it and ends
            reader.join(timeout=2.0)
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)


__all__ = ["CameraIoSpec", "FrameSink", "IoLink", "IoSettings", "IoSink", "IoSupervisor"]
