"""Classic implicit INT8 for TensorRT 8.5-10.x (Jetson): an ``IInt8EntropyCalibrator2`` that either hands TensorRT
the explicit variant's Q/DQ scales as a table (``qdq-table``: no images needed, calibration_table.py) or feeds our
calibration frames (``tensorrt-entropy``).

TensorRT 11 and TensorRT-RTX removed this path, and it needs a GPU, so it runs only on the target (docs/vehicle.md);
here it is type-checked against ``tensorrt-stubs``, and everything but the subclassing lives in calibrator_core.py,
which is tested without TensorRT. Frames are fed one network input per ``get_batch`` (N frames for a static batch-N
network), converted to the network input (calibration_feeder.py, tested with pycuda on a GPU). TensorRT's own table
is kept in a file whose name carries a key of the ONNX, frame set and algorithm, so a changed model or image set
can never pick up an old table; a table that does not parse is reported and ignored, never passed on; a failure
while feeding (which TensorRT would read as "no more data") is kept and raised by the builder, and no table of part
of the frames is written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt

from ..onnx_metadata import ModelContract
from .calibration_feeder import CalibrationFeeder
from .calibration_table import table_problem
from .calibrator_core import CalibratorCore

__all__ = ["EntropyCalibrator", "calibration_table_path", "table_problem"]


def calibration_table_path(directory: str | Path, stem: str, onnx_sha256: str, frames_sha256: str) -> Path:
    """``<dir>/<stem>.<key>.calibration`` where key hashes the model, the frames and the algorithm."""
    key = hashlib.sha256(f"{onnx_sha256}|{frames_sha256}|EntropyCalibration2".encode()).hexdigest()[:16]
    return Path(directory) / f"{stem}.{key}.calibration"


class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
    """Feeds ``frames`` (M x H x W x 3 uint8 camera frames), one network input at a time, converted to the input
    the ``contract`` describes; or, with ``frames=None`` and ``table`` (calibration_table.py text), gives TensorRT
    that table and no inputs."""

    def __init__(self, frames: np.ndarray | None, table_path: str | Path, contract: ModelContract, device: int = 0,
                 table: bytes | None = None) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)
        feeder = CalibrationFeeder(frames, contract, device) if frames is not None else None
        self.core = CalibratorCore(feeder, table_path, table)
        self._feeder = feeder
        self.table_path = Path(table_path)

    def get_batch_size(self) -> int:
        # 1 for every explicit-batch network (all ONNX-parsed ones): the batch axis is part of the input shape,
        # and each get_batch pointer holds the whole (N, ...) input (the feeder checks it against the network)
        return 1

    def check_network_input(self, tensor: dict[str, Any]) -> None:
        if self._feeder is not None:
            self._feeder.check_network_input(tensor)

    def get_batch(self, names: list[str]) -> list[int]:
        return self.core.get_batch(names)  # [] = no data left (or a failure kept in core.error)

    def read_calibration_cache(self) -> bytes | None:  # type: ignore[override]  # None = "no table", as TensorRT documents
        return self.core.read_calibration_cache()

    def write_calibration_cache(self, cache: Any) -> None:
        self.core.write_calibration_cache(cache)

    def close(self) -> None:
        self.core.close()
