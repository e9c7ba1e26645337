"""Small argparse helpers shared by the command-line tools (no heavy imports)."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' -> (1024, 2048); argparse type with a message a newcomer understands."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like HEIGHTxWIDTH, e.g. 1024x2048; got {text!r}") from None
    if height <= 0 or width <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width
