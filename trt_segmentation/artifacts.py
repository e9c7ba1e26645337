"""File names of build artifacts, shared by the build tools and the node (pure Python, no dependencies).

One name encodes every setting that changes the result, so switching precision can never pick up another
precision's file: ``<model>_<H>x<W>_<precision>.onnx`` / ``.engine`` / ``.json`` (engine metadata sidecar).
"""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8", "mixed")
CALIBRATION_METHODS = ("entropy", "max", "percentile")
DEFAULT_CALIBRATION_METHOD = "entropy"


def check_variant(variant: str) -> str:
    """A variant is a precision, or ``int8-<method>`` for an INT8 file calibrated by another method than the
    default (``int8`` itself is entropy-calibrated, the method of the seed theses)."""
    base, _, method = variant.partition("-")
    if base not in PRECISIONS or (method and (base != "int8" or method not in CALIBRATION_METHODS)):
        choices = ", ".join(PRECISIONS + tuple(f"int8-{m}" for m in CALIBRATION_METHODS))
        raise ValueError(f"unknown precision variant {variant!r}; choose one of {choices}")
    return "int8" if variant == f"int8-{DEFAULT_CALIBRATION_METHOD}" else variant


def artifact_stem(model: str, height: int, width: int, precision: str) -> str:
    return f"{model}_{height}x{width}_{check_variant(precision)}"


def artifact_path(directory: str | Path, model: str, height: int, width: int, precision: str, suffix: str) -> Path:
    """e.g. artifact_path('engines', 'swiftnet_ss_rn18', 512, 1024, 'int8', '.engine')."""
    return Path(directory) / (artifact_stem(model, height, width, precision) + suffix)
