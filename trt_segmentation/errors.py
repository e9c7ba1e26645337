"""The package's error root: every exception raised on purpose by trt_segmentation derives from
:class:`SegmentationError` (and keeps its ValueError / RuntimeError / FileNotFoundError base), so that a caller
catches the package's errors in one clause and each command turns them into one line (:func:`cli.command`).

No imports: every layer (and the Python 3.8 on-target check) may import it."""

from __future__ import annotations


class SegmentationError(Exception):
    """Root of every trt_segmentation error: a message meant for the user, never a bug."""


#: what a command turns into ``error: <message>`` and exit code 2 (ValueError: argument values checked in code)
COMMAND_ERRORS = (SegmentationError, OSError, ValueError)
