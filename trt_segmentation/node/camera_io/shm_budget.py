"""The /dev/shm budget of io_mode process, checked once at start (no ROS in here).

Each camera's frame ring (frame_ring.py) takes ``slots`` x its slot size in /dev/shm once frames fill it, and each
process of the node (the inference process and one I/O process per camera) maps the Fast DDS shared-memory
segment of the transport profile (``segment_size`` in config/fastdds_shm.xml, 64 MiB). Docker gives a container
64 MB of /dev/shm unless told otherwise, which is not even one segment: without this check, frames are silently
lost. :func:`plan_rings` decides from the free space: the rings as configured, fewer slots per ring (a WARN), or
a FATAL line naming the shortfall and the fix.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

#: config/fastdds_shm.xml's SHM ``segment_size``: what each process is counted for when the profile is unknown
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
PROFILE_ENV = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")
_MB = 1024 * 1024


@dataclass(frozen=True)
class RingPlan:
    """What the check decided: ``slots`` per ring (0 when nothing fits), and the WARN or FATAL text ("" if none)."""

    slots: int
    warning: str = ""
    fatal: str = ""


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write under ``directory`` (statvfs)."""
    stats = os.statvfs(directory)
    return int(stats.f_bavail) * int(stats.f_frsize)


def segment_bytes(env: Mapping[str, str]) -> int:
    """The SHM transport's segment size of the Fast DDS profile ``env`` names (0 when the profile has no SHM
    transport); :data:`DEFAULT_SEGMENT_BYTES` when it names none or it cannot be read."""
    path: Optional[str] = next((env[k] for k in PROFILE_ENV if env.get(k)), None)
    if path is None:
        return DEFAULT_SEGMENT_BYTES
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return DEFAULT_SEGMENT_BYTES
    for descriptor in root.iter():
        if descriptor.tag.rpartition("}")[2] != "transport_descriptor":
            continue
        fields = {child.tag.rpartition("}")[2]: (child.text or "").strip() for child in descriptor}
        if fields.get("type") == "SHM":
            try:
                return int(fields.get("segment_size", DEFAULT_SEGMENT_BYTES))
            except ValueError:
                return DEFAULT_SEGMENT_BYTES
    return 0


def plan_rings(free: int, cameras: int, slot_bytes: int, slots: int, min_slots: int, segment: int,
               directory: str = "/dev/shm") -> RingPlan:
    """``cameras`` rings of ``slots`` slots of ``slot_bytes`` and ``cameras + 1`` transport segments of
    ``segment`` bytes against ``free`` bytes: all of it; else the most slots per ring, down to ``min_slots``, that
    fit (a warning); else a fatal text naming the shortfall and the fix."""
    transport = (cameras + 1) * segment
    need = transport + cameras * slots * slot_bytes
    if need <= free:
        return RingPlan(slots)
    fix = f"docker run --shm-size={-(-need // (64 * _MB)) * 64}m (or --ipc=host)"
    fitting = (free - transport) // (cameras * slot_bytes) if free > transport else 0
    if fitting >= min_slots:
        return RingPlan(int(fitting), warning=(
            f"{directory} has {free / _MB:.0f} MB free, short of the {need / _MB:.0f} MB for {cameras} camera "
            f"ring(s) of {slots} slots of {slot_bytes / _MB:.0f} MB (max_input_pixels) and {cameras + 1} transport "
            f"segments of {segment / _MB:.0f} MB: each ring gets {fitting} slots instead, so fewer frames can wait; "
            f"give the container more ({fix}) or lower max_input_pixels"))
    least = transport + cameras * min_slots * slot_bytes
    return RingPlan(0, fatal=(
        f"{directory} has {free / _MB:.0f} MB free, {(least - free) / _MB:.0f} MB short of the {least / _MB:.0f} "
        f"MB the node needs at least ({cameras} camera ring(s) of {min_slots} slots of {slot_bytes / _MB:.0f} MB "
        f"(max_input_pixels) and {cameras + 1} Fast DDS shared-memory segments of {segment / _MB:.0f} MB); "
        f"in a container run it with {fix}, or lower max_input_pixels"))


__all__ = ["DEFAULT_SEGMENT_BYTES", "PROFILE_ENV", "RingPlan", "free_bytes", "plan_rings", "segment_bytes"]
