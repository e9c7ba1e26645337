"""The package's error root: every exception raised on purpose by trt_segmentation derives from
:class:`SegmentationError` (and keeps its ValueError / RuntimeError / FileNotFoundError base), so that a caller
catches the package's errors in one clause and each command turns them into one line (:func:`cli.command`).
Anything else (a bare ValueError, KeyError, OSError...) is a bug or an unforeseen failure: it keeps its traceback.

No imports: every layer (and the Python 3.8 on-target check) may import it."""

from __future__ import annotations


class SegmentationError(Exception):
    """Root of every trt_segmentation error: a message meant for the user, never a bug."""


class InputError(ValueError, SegmentationError):
    """A value the user gave (a flag, a parameter, a file's content) that the package cannot take."""


class MissingFile(FileNotFoundError, SegmentationError):
    """A file or folder the user named, or one that must sit beside it, is not there. Raise it as
    ``MissingFile(errno.ENOENT, what, path)`` (printed as ``file not found: <path>``) or with one message."""


#: what a command turns into ``error: <message>`` and exit code 2: the package's own errors only
COMMAND_ERRORS = (SegmentationError,)
