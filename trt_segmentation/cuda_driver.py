"""pycuda's driver module, loaded on demand with a clear reason when it cannot be used.

The one place that imports pycuda: the CUDA slots of the runtime and the implicit INT8 calibrator of the engine
builder both need it, and the engine layer may not import the runtime. pycuda is imported only when
:func:`load_pycuda` is called, never at module import: this module loads on CPU-only machines.
"""

from __future__ import annotations

from typing import Any

from .errors import SegmentationError


class CudaUnavailable(RuntimeError, SegmentationError):
    """pycuda or a CUDA device is missing."""


def load_pycuda() -> Any:
    """``pycuda.driver``, initialised; :class:`CudaUnavailable` with the reason if it cannot be used."""
    try:
        import pycuda.driver as cuda  # type: ignore[import-not-found, unused-ignore]  # no stubs exist
    except ImportError as exc:
        raise CudaUnavailable(
            f"pycuda is not installed ({exc}); on a Jetson: pip install pycuda (needs the CUDA toolkit)"
        ) from exc
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            raise CudaUnavailable("no CUDA device found")
    except cuda.Error as exc:
        raise CudaUnavailable(f"CUDA driver cannot start: {exc}") from exc
    return cuda


__all__ = ["CudaUnavailable", "load_pycuda"]
