"""Classic implicit INT8 for TensorRT 8.5-10.x (Jetson): an ``IInt8EntropyCalibrator2`` over our calibration frames.

TensorRT 11 and TensorRT-RTX removed this path, and it needs a GPU, so it runs only on the target (see
docs/precision.md, "on-target check"); here it is type-checked against ``tensorrt-stubs``. It feeds the same
frames the explicit path calibrates on, one network input per ``get_batch`` (N frames for a static batch-N network),
converted to the network input (calibration_feeder.py, tested with pycuda on a GPU), and keeps
TensorRT's calibration table in a file whose name carries a key of the ONNX, frame set and algorithm, so a
changed model or image set can never pick up an old table. A table that does not parse is reported and
ignored (TensorRT then recalibrates and writes a fresh one), never passed on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from ..onnx_metadata import ModelContract
from .calibration_feeder import CalibrationFeeder

LOG = logging.getLogger(__name__)

_HEADER = re.compile(r"^TRT-\d+-EntropyCalibration2$")
_ENTRY = re.compile(r"^\S.*: [0-9a-fA-F]{8}$")


def calibration_table_path(directory: str | Path, stem: str, onnx_sha256: str, frames_sha256: str) -> Path:
    """``<dir>/<stem>.<key>.calibration`` where key hashes the model, the frames and the algorithm."""
    key = hashlib.sha256(f"{onnx_sha256}|{frames_sha256}|EntropyCalibration2".encode()).hexdigest()[:16]
    return Path(directory) / f"{stem}.{key}.calibration"


def table_problem(blob: bytes) -> str | None:
    """Why ``blob`` is not a TensorRT entropy-calibration table (None if it looks like one)."""
    try:
        lines = blob.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        return "not ASCII text"
    if not lines or not _HEADER.match(lines[0].strip()):
        return "missing the 'TRT-<version>-EntropyCalibration2' header"
    bad = [line for line in lines[1:] if not _ENTRY.match(line.strip())]
    if bad or len(lines) < 2:
        return f"malformed entry {bad[0]!r}" if bad else "no entries"
    return None


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Feeds ``frames`` (M x H x W x 3 uint8 camera frames), one network input at a time, converted to the input
    the ``contract`` describes (:class:`CalibrationFeeder` holds the device buffer and checks dtype and size)."""

    def __init__(self, frames: np.ndarray, table_path: str | Path, contract: ModelContract, device: int = 0) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        self._feeder = CalibrationFeeder(frames, contract, device)
        self.table_path = Path(table_path)

    def get_batch_size(self) -> int:
        # 1 for every explicit-batch network (all ONNX-parsed ones): the batch axis is part of the input shape,
        # and each get_batch pointer holds the whole (N, ...) input (the feeder checks it against the network)
        return 1

    def check_network_input(self, tensor: dict[str, Any]) -> None:
        self._feeder.check_network_input(tensor)

    def get_batch(self, names: list[str]) -> list[int]:
        pointer = self._feeder.next_pointer()
        return [] if pointer is None else [pointer for _ in names]  # [] = no data left: calibration ends

    def read_calibration_cache(self) -> bytes | None:  # type: ignore[override]  # None = "no table", as TensorRT documents
        if not self.table_path.is_file():
            return None
        blob = self.table_path.read_bytes()
        problem = table_problem(blob)
        if problem is not None:
            LOG.warning("calibration table %s is corrupt (%s); recalibrating", self.table_path, problem)
            return None
        LOG.info("using calibration table %s", self.table_path)
        return blob

    def write_calibration_cache(self, cache: Any) -> None:
        self.table_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.table_path.with_name(self.table_path.name + ".tmp")
        tmp.write_bytes(bytes(cache))
        tmp.replace(self.table_path)
        LOG.info("wrote calibration table %s", self.table_path)

    def close(self) -> None:
        self._feeder.close()
