"""Camera frame rings page-locked for the backend (io_mode process): each ring slot's frame-sized pages are
registered with the backend when the ring is created, so that a frame of the engine's size goes to the GPU in one
async copy straight from its slot, and the inference process makes no host copy of it. Where the backend cannot
(a CPU backend, a float network input, the driver refused), frames are copied as before, said once in the log.
The registration is undone when the ring's I/O process has ended, after the uploads from it completed.
No ROS in here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Dict, List, Tuple

from ..runtime import Backend
from .camera_io.frame_ring import FrameRing

Key = Tuple[str, int]  # (ring name, slot)


class RingPinning:
    """Registers rings' slots with ``backend``; ``log(text)`` tells, once, which way frames reach it."""

    def __init__(self, backend: Backend, log: Callable[[str], None]) -> None:
        self.backend = backend
        self.log = log
        height, width = backend.input_size
        self.pixels = height * width
        self.pinned_rings = 0
        self.refused = ""  # why the last ring could not be registered ("" while none was refused)
        self._keys: Dict[str, List[Key]] = {}
        self._told = False
        self._lock = threading.Lock()

    def opened(self, ring: FrameRing) -> bool:
        """Register every slot of ``ring``; False (nothing left registered, said once) when the backend cannot."""
        keys: List[Key] = []
        why = None
        for slot in range(ring.slots):
            key = (ring.name, slot)
            why = self.backend.register_host_memory(key, ring.slot_memory(slot, self.pixels))
            if why is not None:
                break
            keys.append(key)
        if why is not None:
            self._undo(keys)
            self._tell(f"camera frames are copied from their rings on the host before the upload: {why}")
            with self._lock:
                self.refused = why
            return False
        with self._lock:
            self._keys[ring.name] = keys
            self.pinned_rings += 1
        self._tell(f"camera frames go to the {self.backend.name} backend's GPU straight from their rings (page-locked "
                   "shared memory, one async copy per frame, no host copy in this process)")
        return True

    def closed(self, ring: FrameRing) -> None:
        """Undo ``ring``'s registration (waits for the uploads from it); nothing when it was not registered."""
        with self._lock:
            keys = self._keys.pop(ring.name, [])
        self._undo(keys)

    def _undo(self, keys: List[Key]) -> None:
        """Unregister ``keys``; a failure is logged, never raised (the caller is a reader thread that must go on
        to restart its camera's I/O process)."""
        for key in keys:
            try:
                self.backend.unregister_host_memory(key)
            except Exception as exc:  # noqa: BLE001 - e.g. the driver's refusal while shutting down
                self.log(f"could not undo the page-locking of ring {key[0]} slot {key[1]}: {type(exc).__name__}: "
                         f"{exc}")

    def _tell(self, text: str) -> None:
        with self._lock:
            if self._told:
                return
            self._told = True
        self.log(text)


__all__ = ["RingPinning"]
