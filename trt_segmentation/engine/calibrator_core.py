"""What the implicit INT8 calibrator does, without TensorRT: feed inputs, hand TensorRT a table, keep one on disk.

TensorRT calls the calibrator's methods from C++ and reads an exception inside ``get_batch`` as "no more data":
it would finish calibration on the inputs fed so far and pass the truncated table to ``write_calibration_cache``,
which then seeds every later build. So every failure is caught here and recorded in :attr:`CalibratorCore.error`;
a table is written only after every input was fed without one, and the builder raises the recorded error after
the build (engine/builder.py). Two sources: a :class:`CalibrationFeeder` (TensorRT's entropy calibration over
images), or a fixed table (calibration_table.py, the explicit variant's Q/DQ scales), which TensorRT reads and
never asks for inputs. Kept apart from implicit_calibrator.py (the TensorRT subclass) so that it runs, and is
tested, on a machine without TensorRT.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, List, Optional, Union

from ..errors import InputError
from .calibration_table import table_problem

LOG = logging.getLogger(__name__)


class CalibratorCore:
    """``feeder``: an object with ``len()``, ``next_pointer() -> int | None`` and ``close()`` (None with a fixed
    ``table``); ``table_path``: where TensorRT's table is read from and written to."""

    def __init__(self, feeder: Any, table_path: Union[str, Path], table: Optional[bytes] = None) -> None:
        if (feeder is None) == (table is None):
            raise ValueError("give calibration inputs (a feeder) or a fixed calibration table, not both or neither")
        if table is not None:
            problem = table_problem(table)
            if problem:
                raise InputError(f"the calibration table for {table_path} is not one: {problem}")
        self.feeder = feeder
        self.table = table
        self.table_path = Path(table_path)
        self.fed = 0
        self.error: Optional[str] = None  # the first failure; the builder raises it after the build

    def get_batch(self, names: List[str]) -> List[int]:
        """The device pointer of the next input for every name; [] (TensorRT: no more data) when all were fed or
        when anything fails, the failure kept in :attr:`error`."""
        if self.error is not None:
            return []
        if self.feeder is None:
            self.error = (f"TensorRT did not accept the calibration table {self.table_path} and asked for images; "
                          "the table's header or tensor names do not fit this network")
            return []
        try:
            pointer = self.feeder.next_pointer()
        except Exception as exc:  # noqa: BLE001 - TensorRT would swallow it as "no more data"
            self.error = f"calibration input {self.fed + 1} of {len(self.feeder)} failed: {type(exc).__name__}: {exc}"
            LOG.error("implicit INT8 calibration: %s", self.error)
            return []
        if pointer is None:
            return []
        self.fed += 1
        return [pointer for _ in names]

    def complete(self) -> bool:
        """True when the table TensorRT writes describes every input (or is the fixed table) and nothing failed."""
        return self.error is None and (self.feeder is None or self.fed == len(self.feeder))

    def read_calibration_cache(self) -> Optional[bytes]:
        """The fixed table; else the table on disk when it parses (None: TensorRT calibrates)."""
        if self.table is not None:
            return self.table
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
        """Keep TensorRT's table, unless calibration was incomplete (then nothing is written: the next build
        calibrates afresh instead of reusing a table of part of the inputs)."""
        if not self.complete():
            LOG.error("calibration table %s not written: %s", self.table_path,
                      self.error or f"only {self.fed} of {len(self.feeder)} inputs were fed")
            return
        self.table_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.table_path.with_name(self.table_path.name + ".tmp")
        tmp.write_bytes(bytes(cache))
        tmp.replace(self.table_path)
        LOG.info("wrote calibration table %s", self.table_path)

    def close(self) -> None:
        if self.feeder is not None:
            self.feeder.close()


__all__ = ["CalibratorCore"]
