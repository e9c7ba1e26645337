"""File names of build artifacts, shared by the build tools and the node (pure Python, no dependencies).

One name encodes every setting that changes the result, so switching precision can never pick up another
precision's file: ``<model>_<H>x<W>_<precision>.onnx`` / ``.engine`` / ``.json`` (engine metadata sidecar).
"""

from __future__ import annotations

from pathlib import Path

PRECISIONS = ("fp32", "fp16", "int8", "mixed")


def artifact_stem(model: str, height: int, width: int, precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return f"{model}_{height}x{width}_{precision}"


def artifact_path(directory: str | Path, model: str, height: int, width: int, precision: str, suffix: str) -> Path:
    """e.g. artifact_path('engines', 'swiftnet_ss_rn18', 512, 1024, 'int8', '.engine')."""
    return Path(directory) / (artifact_stem(model, height, width, precision) + suffix)
