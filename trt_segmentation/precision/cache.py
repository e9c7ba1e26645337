"""Calibration cache: INT8 activation scales per tensor, so that a rebuild skips the calibration pass.

The file is JSON: ``{"key": {...}, "key_sha256": ..., "scales": {tensor: scale}, "scales_sha256": ...}`` (for the
asymmetric CPU variant, int8-cpu, each entry is the tensor's calibrated ``[lowest, highest]`` range instead). The key
holds everything that changes the scales: the FP32 model's sha256, the calibration frames' sha256 (pixels as fed,
so a different image list, resize or channel order shows; their description is not part of it), the method and
its parameters, and the quantizer versions (the libraries that compute the scales, and the sha256 of every
module of this package whose code computed them: the caller names those per method, e.g. int8.py's METHOD_CODE). A file whose key differs is *stale*; one that cannot be parsed, whose checksum fails, whose scales are not
finite positive numbers or whose tensors are not the quantized graph's (:func:`fit_to_graph`) is *corrupt*. Both
are reported and recomputed, never used. (The TensorRT calibration table for the implicit path is written from a
variant's Q/DQ scales by engine/calibration_table.py; TensorRT's own cache is engine/implicit_calibrator.py's.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hashing import sha256_file

if TYPE_CHECKING:
    import numpy as np

LOG = logging.getLogger(__name__)
CACHE_FORMAT = 1
# libraries whose code computes the scales or the Q/DQ placement they belong to: ModelOpt (placement, entropy and
# max calibration), ONNX Runtime (runs the calibration passes; percentile histograms), onnx and onnx-graphsurgeon
# (graph rewriting inside ModelOpt), numpy (histograms and amax reductions)
QUANTIZER_PACKAGES = ("nvidia-modelopt", "onnxruntime", "onnx", "onnx-graphsurgeon", "numpy")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha(obj: Any) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()


def quantizer_versions(modules: Sequence[str]) -> dict[str, str]:
    """Versions of the libraries whose algorithms produce the scales, and the sha256 of the source of each of this
    package's ``modules`` that computed them (a change of any of them invalidates the cache). A module that cannot
    be found is an error: a key without its code's hash would outlive a change of that code."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    out = {}
    for name in QUANTIZER_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    if not modules:
        raise ValueError("quantizer_versions needs the modules whose code computes the scales")
    for module in modules:
        try:
            spec = find_spec(module)
        except ModuleNotFoundError:  # its parent package is missing
            spec = None
        if spec is None or not spec.origin:
            raise ValueError(f"quantizer module {module!r} has no source file to hash")
        out[module] = sha256_file(spec.origin)
    return out


def frames_sha256(frames: np.ndarray) -> str:
    """Hash of calibration pixels exactly as fed (shape, dtype and bytes); equals ``CalibrationSet.sha256``."""
    import numpy as np

    digest = hashlib.sha256()
    digest.update(f"{frames.shape}|{frames.dtype}".encode())
    digest.update(np.ascontiguousarray(frames).tobytes())
    return digest.hexdigest()


def cache_key(
    *,
    model_sha256: str,
    calibration_sha256: str | None = None,
    method: str,
    params: dict[str, Any] | None = None,
    calibration_frames: np.ndarray | None = None,
    quantizer_modules: Sequence[str],
) -> dict[str, Any]:
    """The key a cache must carry to be used. The calibration part is the pixels' hash: pass the frames (hashed
    here) or their ``frames_sha256``; given both, they must agree. ``quantizer_modules``: every package module
    whose code computes these scales for ``method`` (each one's sha256 is among the versions)."""
    if calibration_frames is not None:
        pixels = frames_sha256(calibration_frames)
        if calibration_sha256 is not None and calibration_sha256 != pixels:
            raise ValueError("calibration_sha256 is not the hash of calibration_frames")
        calibration_sha256 = pixels
    if calibration_sha256 is None:
        raise ValueError("cache_key needs the calibration frames or their sha256")
    return {
        "format": CACHE_FORMAT,
        "model_sha256": model_sha256,
        "calibration_sha256": calibration_sha256,
        "method": method,
        "params": params or {},
        "versions": quantizer_versions(quantizer_modules),
    }


def _as_stored(key: dict[str, Any]) -> Any:
    """``key`` as it reads back from the file (tuples become lists), so an unchanged key compares equal."""
    return json.loads(_canonical(key))


@dataclass
class CacheLookup:
    scales: dict[str, Any] | None  # {tensor: scale}, or {tensor: [lowest, highest]} for ranges
    status: str  # hit | missing | stale | corrupt
    reason: str = ""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(name: str, value: Any, ranges: bool) -> None:
    if ranges:
        if not (isinstance(value, list) and len(value) == 2 and all(_finite(v) for v in value) and value[0] <= value[1]):
            raise ValueError(f"range of {name!r} is {value!r}, not [lowest, highest] finite numbers")
    elif not _finite(value) or value <= 0:
        raise ValueError(f"scale of {name!r} is {value!r}, not a positive finite number")


def load_scales(path: str | Path, key: dict[str, Any], *, ranges: bool = False) -> CacheLookup:
    """Scales from ``path`` if it is intact and was made for ``key``; otherwise why not (logged as a warning).
    ``ranges``: the entries are ``[lowest, highest]`` ranges (asymmetric int8-cpu) instead of positive scales."""
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
            _check_value(name, value, ranges)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        lookup = CacheLookup(None, "corrupt", f"calibration cache {path} is corrupt ({exc}); recalibrating")
        LOG.warning(lookup.reason)
        return lookup
    key = _as_stored(key)
    if data["key"] != key:
        changed = sorted(k for k in set(key) | set(data["key"]) if key.get(k) != data["key"].get(k))
        lookup = CacheLookup(None, "stale", f"calibration cache {path} is stale ({', '.join(changed)} changed); recalibrating")
        LOG.warning(lookup.reason)
        return lookup
    values = {k: ([float(v[0]), float(v[1])] if ranges else float(v)) for k, v in scales.items()}
    return CacheLookup(values, "hit", f"calibration cache hit: {path}")


def fit_to_graph(lookup: CacheLookup, graph_tensors: Any, path: str | Path) -> CacheLookup:
    """A hit whose tensors are not exactly the quantized graph's activation tensors becomes *corrupt* (with the
    tensors that are missing or unknown in the reason, logged); other lookups pass through unchanged."""
    if lookup.scales is None:
        return lookup
    wanted, cached = set(graph_tensors), set(lookup.scales)
    if wanted == cached:
        return lookup
    missing, unknown = sorted(wanted - cached), sorted(cached - wanted)
    parts = [f"{len(names)} {what} (e.g. {names[0]!r})" for what, names in (("missing", missing), ("unknown", unknown)) if names]
    fitted = CacheLookup(None, "corrupt", f"calibration cache {path} is corrupt (its tensors do not fit the quantized "
                                          f"graph: {', '.join(parts)}); recalibrating")
    LOG.warning(fitted.reason)
    return fitted


def save_scales(path: str | Path, key: dict[str, Any], scales: dict[str, Any], info: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename): an interrupted run leaves the previous cache or none. ``scales``
    values are positive scales or ``[lowest, highest]`` ranges (see :func:`load_scales`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scales = {k: ([float(v[0]), float(v[1])] if isinstance(v, list | tuple) else float(v)) for k, v in sorted(scales.items())}
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

