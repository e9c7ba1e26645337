"""Calibration cache: INT8 activation scales per tensor, so that a rebuild skips the calibration pass.

The file is JSON: ``{"key": {...}, "key_sha256": ..., "scales": {tensor: scale}, "scales_sha256": ...}``. The key
holds everything that changes the scales: the FP32 model's sha256, the calibration frames' sha256 (pixels as fed,
so a different image list, resize or channel order shows), the method and its parameters, the set of quantized
nodes, and the quantizer versions. A file whose key differs is *stale*; one that cannot be parsed, whose
checksum fails or whose scales are not finite positive numbers is *corrupt*. Both are reported and recomputed,
never used. (TensorRT's own cache for the implicit path is a different file; see engine/implicit_calibrator.py.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
CACHE_FORMAT = 1



def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()


def quantizer_versions() -> dict[str, str]:
    """Versions of the libraries whose algorithms produce the scales (a change invalidates the cache)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("nvidia-modelopt", "onnxruntime", "onnx"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def cache_key(
    *, model_sha256: str, calibration_sha256: str, method: str, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "format": CACHE_FORMAT,
        "model_sha256": model_sha256,
        "calibration_sha256": calibration_sha256,
        "method": method,
        "params": params or {},
        "versions": quantizer_versions(),
    }


@dataclass
class CacheLookup:
    scales: dict[str, float] | None
    status: str  # hit | missing | stale | corrupt
    reason: str = ""


def load_scales(path: str | Path, key: dict[str, Any]) -> CacheLookup:
    """Scales from ``path`` if it is intact and was made for ``key``; otherwise why not (logged as a warning)."""
    path = Path(path)
    if not path.is_file():
        return CacheLookup(None, "missing", f"no calibration cache at {path}")
    try:
        data = json.loads(path.read_text())
        scales = data["scales"]
        if data.get("scales_sha256") != _sha(scales) or data.get("key_sha256") != _sha(data["key"]):
            raise ValueError("checksum mismatch (the file was edited or truncated)")
        if not isinstance(scales, dict) or not scales:
            raise ValueError("no scales in the file")
        for name, value in scales.items():
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"scale of {name!r} is {value!r}, not a positive finite number")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        lookup = CacheLookup(None, "corrupt", f"calibration cache {path} is corrupt ({exc}); recalibrating")
        LOG.warning(lookup.reason)
        return lookup
    if data["key"] != key:
        changed = sorted(k for k in set(key) | set(data["key"]) if key.get(k) != data["key"].get(k))
        lookup = CacheLookup(None, "stale", f"calibration cache {path} is stale ({', '.join(changed)} changed); recalibrating")
        LOG.warning(lookup.reason)
        return lookup
    return CacheLookup({k: float(v) for k, v in scales.items()}, "hit", f"calibration cache hit: {path}")


def save_scales(path: str | Path, key: dict[str, Any], scales: dict[str, float], info: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename): an interrupted run leaves the previous cache or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scales = {k: float(v) for k, v in sorted(scales.items())}
    body = {
        "key": key,
        "key_sha256": _sha(key),
        "scales": scales,
        "scales_sha256": _sha(scales),
        "info": info or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def write_tensorrt_cache(path: str | Path, scales: dict[str, float], header: str = "TRT-8600-EntropyCalibration2") -> Path:
    """The same scales in TensorRT's calibration-table text format (``tensor: <big-endian float hex>``).

    TensorRT's ONNX parser names network tensors after the ONNX tensors, so a table written from the FP32 ONNX's
    activation scales can seed the implicit-path build on a Jetson that has no calibration images.
    """
    import struct

    lines = [header] + [f"{name}: {struct.pack('!f', scale).hex()}" for name, scale in sorted(scales.items())]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
