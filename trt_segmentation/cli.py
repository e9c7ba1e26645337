"""Small argparse helpers shared by the command-line tools (no heavy imports)."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """'1024x2048' -> (1024, 2048); argparse type with a message a newcomer understands."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x1024 (HEIGHTxWIDTH), got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return height, width
