"""The shared-memory frame ring between a camera's I/O process and the inference process (no ROS in here).

One ring per camera and I/O-process generation: ``slots`` slots, each with room for one frame's pixels
((H, W, 3) uint8 in the network's channel order), written once by the I/O process and read in place by the
inference process. Only slot numbers, headers and counts cross the process boundary (io_messages.py); the pixels
stay where they were written.

The ring is a file in /dev/shm mapped by both processes (plain ``mmap``, not multiprocessing.shared_memory: its
resource tracker (Python 3.8-3.12) unlinks or warns about segments that attaching processes did not create, and
a ring must outlive neither its owner nor be removed under it). Its name carries the owning node's pid,
``trtseg-<pid>-<camera>-<generation>``: the owner unlinks it when it stops, and :func:`sweep_stale_rings` removes
those of owners that were killed (SIGKILL leaves no chance to clean up) when the next node starts. Slots are sized
for ``max_input_pixels``; tmpfs gives pages only to what is written, so an unused part costs address space only.
"""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

from ...image_cdr import Header

SHM_DIR = Path("/dev/shm")
PREFIX = "trtseg-"
_NAME = re.compile(r"^trtseg-(\d+)-")
_PAGE = mmap.PAGESIZE


def _round_up(size: int) -> int:
    return -(-size // _PAGE) * _PAGE


def slot_size(max_pixels: int) -> int:
    """Bytes of one slot of a ring for frames of up to ``max_pixels`` pixels (whole pages)."""
    return _round_up(max_pixels * 3)


def ring_name(owner_pid: int, camera: int, generation: int) -> str:
    """The file name of camera ``camera``'s ring of I/O-process generation ``generation`` of node ``owner_pid``."""
    return f"{PREFIX}{owner_pid}-{camera}-{generation}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def sweep_stale_rings(directory: Path = SHM_DIR) -> List[str]:
    """Unlink every ring whose owning node is no longer running; the names removed."""
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _NAME.match(name)
        if match and not pid_alive(int(match.group(1))):
            try:
                os.unlink(directory / name)
                removed.append(name)
            except OSError:
                pass
    return removed


class FrameRing:
    """``slots`` frame slots in one shared-memory file; create in the inference process, attach in the I/O one."""

    def __init__(self, path: Path, slots: int, max_pixels: int, owner: bool) -> None:
        self.path = path
        self.slots = slots
        self.max_pixels = max_pixels
        self.slot_bytes = slot_size(max_pixels)
        self.owner = owner
        size = self.slot_bytes * slots
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if owner else 0)
        fd = os.open(path, flags, 0o600)
        try:
            if owner:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._buffer = np.frombuffer(self._map, dtype=np.uint8)

    @classmethod
    def create(cls, name: str, slots: int, max_pixels: int, directory: Path = SHM_DIR) -> "FrameRing":
        return cls(directory / name, slots, max_pixels, owner=True)

    @classmethod
    def attach(cls, name: str, slots: int, max_pixels: int, directory: Path = SHM_DIR) -> "FrameRing":
        return cls(directory / name, slots, max_pixels, owner=False)

    @property
    def name(self) -> str:
        return self.path.name

    def pixels(self, slot: int, height: int, width: int) -> np.ndarray:
        """Slot ``slot``'s frame as an (H, W, 3) uint8 view."""
        if height * width > self.max_pixels:
            raise ValueError(f"{height}x{width} does not fit a ring slot of {self.max_pixels} pixels")
        start = slot * self.slot_bytes
        return self._buffer[start:start + height * width * 3].reshape(height, width, 3)

    def slot_memory(self, slot: int, pixels: int) -> np.ndarray:
        """The whole pages of slot ``slot`` that a frame of ``pixels`` pixels occupies (1-D uint8, page-aligned:
        what the inference process page-locks for the GPU's uploads); at most the slot."""
        start = slot * self.slot_bytes
        return self._buffer[start:start + min(self.slot_bytes, _round_up(pixels * 3))]

    def unlink(self) -> None:
        """Remove the file (the owner, when it stops); mappings stay valid until their views are gone."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


@dataclass
class SlotFrame:
    """A frame waiting in a ring slot, as the inference process holds it: where it is, its header and size, and
    the link of the I/O process that owns the slot (the slot goes back to it once the frame is done with)."""

    ring: FrameRing
    slot: int
    header: Header
    height: int
    width: int
    link: Any  # io_supervisor.IoLink of the generation that wrote it
    received_ns: int = 0  # when its I/O process took it (ns, the node's ROS clock)
    received_mono_ns: int = 0  # the same moment on CLOCK_MONOTONIC (system-wide): the in-host stages' clock
    released: bool = False

    def pixels(self) -> np.ndarray:
        return self.ring.pixels(self.slot, self.height, self.width)

    def decode(self, order: str, max_pixels: int) -> Tuple[Header, np.ndarray]:
        """Header and pixels: its I/O process checked them and wrote them in the network's order (``order``)."""
        return self.header, self.pixels()

    def held(self) -> Optional[SlotFrame]:
        """Itself: its slot stays taken until the labels are published (the overlay reads its pixels)."""
        return self

    def release(self) -> None:
        """Give the slot back to its I/O process (once; the labels were published by the inference process)."""
        if self.released:
            return
        self.released = True
        self.link.release(self.slot)


__all__ = ["FrameRing", "PREFIX", "SHM_DIR", "SlotFrame", "pid_alive", "ring_name", "slot_size", "sweep_stale_rings"]
