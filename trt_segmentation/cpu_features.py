"""CPU features that decide how ONNX Runtime's INT8 kernels behave (pure Python, no dependencies, Python 3.8).

On x86, ONNX Runtime's U8S8 (uint8 activations x int8 weights) convolutions use VNNI dot products where the CPU has
them (``avx512_vnni`` or ``avx_vnni`` in /proc/cpuinfo); without VNNI they use AVX2's ``vpmaddubsw``, whose 16-bit
pair sums saturate for full 8-bit inputs (255 * 127 * 2 > 32767). Quantizing weights to 7 bits (``reduce_range``)
keeps every pair sum in range (255 * 64 * 2 = 32640 <= 32767), which is why ONNX Runtime recommends it there.
Used by the CPU variant's quantizer (precision/int8_cpu.py) and usable by the runtime on the vehicle.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import FrozenSet, Iterable, Optional

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})
ARM64_MACHINES = frozenset({"aarch64", "arm64"})

# the CPU classes ONNX Runtime's quantize_static documentation gives separate recommendations for
X86_VNNI = "x86-vnni"
X86_NO_VNNI = "x86-no-vnni"
ARM64 = "arm64"
OTHER = "other"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> FrozenSet[str]:
    """The feature flags of the first CPU listed in ``cpuinfo`` (x86 ``flags``, ARM ``Features``); empty when the
    file is missing (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_class(machine: Optional[str] = None, flags: Optional[Iterable[str]] = None) -> str:
    """x86-vnni | x86-no-vnni | arm64 | other, for ``machine`` (``platform.machine()``) and its ``flags``
    (default: this machine's)."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine in ARM64_MACHINES:
        return ARM64
    if machine in X86_MACHINES:
        found = frozenset(flags if flags is not None else cpu_flags())
        return X86_VNNI if found & VNNI_FLAGS else X86_NO_VNNI
    return OTHER


def saturates_full_range_int8(machine: Optional[str] = None, flags: Optional[Iterable[str]] = None) -> bool:
    """True where ONNX Runtime's fast U8S8 kernels can saturate with 8-bit weights (x86 without VNNI)."""
    return cpu_class(machine, flags) == X86_NO_VNNI
