"""Precision variants of an exported FP32 ONNX (onnx -> onnx): FP16, calibrated INT8 (explicit Q/DQ), mixed, and
INT8 for ONNX Runtime's CPU kernels (int8-cpu). The variants themselves are ``trt_segmentation.artifacts.Precision``.

Entry point: :func:`make_variant` (see :mod:`.variants`). Needs onnx + NVIDIA ModelOpt + ONNX Runtime at build
time only; the quantizers run in child processes. Nothing here is imported by the runtime or the node.
"""

from __future__ import annotations

from .calibration_data import (
    CalibrationDataError,
    CalibrationSet,
    CalibrationSource,
    load_calibration_set,
    parse_source,
)
from .variants import VARIANTS, VariantError, VariantReport, make_variant

__all__ = [
    "VARIANTS",
    "CalibrationDataError",
    "CalibrationSet",
    "CalibrationSource",
    "VariantError",
    "VariantReport",
    "load_calibration_set",
    "make_variant",
    "parse_source",
]
