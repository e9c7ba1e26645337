"""Keep camera frames on the heap: glibc's malloc settings for processes that take whole frames out of the middleware.

glibc serves an allocation above its mmap threshold (128 KiB at start) with pages of its own and gives them back
to the kernel when it is freed, so every frame rclpy's raw take copies into a fresh ``bytes`` object (6 MB at
1024x2048) first faults in ~1500 new pages, while the interpreter lock is held. glibc raises the threshold by
itself once such a block is freed, but a lean process (a camera's I/O process) kept paying: on the lent H200
(2026-12-04, one camera of 1024x2048 offered at 200 Hz) its takes held the interpreter lock 88 % of the time for
~80 frames/s (transport p50 16.2 ms; 72.7 labels/s, the raw-CDR relay 88.7). With the threshold above any frame
and the heap's top kept, a frame's buffer is reused instead: 199.4 labels/s, the relay 200.0, transport p50 5.9 ms
(docs/benchmarks.md). The environment form (:data:`ENVIRONMENT`) does the same for a process before it starts.
Linux/glibc only; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Dict

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit): above a 1080p or 1024x2048 RGB frame
TRIM_THRESHOLD = 256 << 20  # free heap kept before glibc gives it back: a few frames' worth
ENVIRONMENT: Dict[str, str] = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
                               "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}


def keep_frames_on_heap() -> bool:
    """Set this process's malloc thresholds as the module docstring says; True when glibc took them."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


__all__ = ["ENVIRONMENT", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_frames_on_heap"]
