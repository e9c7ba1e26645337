"""What both node workers (single camera: frame_worker.FrameWorker; several cameras: batch_worker.BatchWorker) do to one
camera message: the mailbox entry, its conversion to an array at the engine's size, and what is kept until its
labels come back. No ROS, no threads in here.

Messages are the serialized CDR bytes of a raw subscription or duck-typed rclpy message objects:
``encoding/height/width/step/data/header`` (Image) or ``format/data/header`` (CompressedImage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Tuple

import numpy as np

from ..image_cdr import Header, compressed_from_message, fields_from_message, parse_compressed, parse_image
from ..image_codec import ImageDecodeError, decode_compressed, image_to_array, reorder_channels, resize_image


class InputFrame(Protocol):
    """A frame in a worker's mailbox: a camera message (:class:`Frame`) or, io_mode process, a frame its I/O process
    has already decoded into a shared-memory ring slot (:class:`~.camera_io.frame_ring.SlotFrame`)."""

    received_ns: int  # when it was taken (ns, the node's ROS clock)
    received_mono_ns: int  # the same moment on CLOCK_MONOTONIC (0: unknown): wait and receipt-to-publish use it

    def decode(self, order: str, max_pixels: int) -> Tuple[Header, np.ndarray]:
        """Its header and pixels, (H, W, 3) uint8 in ``order``."""

    def release(self) -> None:
        """Done with it (its labels are published, or it was dropped or failed): give back what it holds."""

    def held(self) -> Optional[InputFrame]:
        """What must stay until its labels are published (then released): itself where it holds a ring slot."""


@dataclass
class Frame:
    """A camera message: its serialized bytes (raw subscriptions) or an rclpy message object."""

    msg: Any
    compressed: bool
    received_ns: int = 0  # when the subscription callback handed it over (ns, the node's ROS clock)
    received_mono_ns: int = 0  # the same moment on CLOCK_MONOTONIC

    def decode(self, order: str, max_pixels: int) -> Tuple[Header, np.ndarray]:
        return decode_message(self.msg, self.compressed, order, max_pixels)

    def release(self) -> None:
        """Nothing to give back: the message is this process's own."""

    def held(self) -> Optional[InputFrame]:
        """Nothing: the decoded arrays keep what they need of the message."""
        return None


@dataclass
class Pending:
    """What the worker remembers about a submitted frame until its labels come back."""

    header: Header
    height: int
    width: int
    rgb: Optional[np.ndarray]  # kept only when an overlay is published
    preprocess_ms: float
    transport_ms: float = float("nan")
    wait_ms: float = float("nan")
    source: Optional[InputFrame] = None  # what the frame holds until published (io_mode process: its ring slot)
    received_ns: int = 0  # when it was taken, on the node's clock
    foreign: bool = False  # its stamp is more than the tolerance from the node's clock: no transport or age for it
    received_mono_ns: int = 0  # the same moment as received_ns on CLOCK_MONOTONIC (0: unknown)

    def release(self) -> None:
        """Its labels are published, or it failed: give back what its frame held (a ring slot goes back now)."""
        if self.source is not None:
            self.source.release()


def stamp_ns(header: Header) -> int:
    """The header stamp in nanoseconds (0 for an unstamped header)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def decode_message(msg: Any, compressed: bool, order: str, max_pixels: int) -> tuple[Header, np.ndarray]:
    """A camera message's header and pixels, (H, W, 3) uint8 in ``order`` ('rgb' or 'bgr'): the one decode of
    both programs (the workers' conversion here, the camera I/O process's take). ``msg`` is serialized CDR bytes or
    a duck-typed rclpy message (Image, or CompressedImage when ``compressed``); bad input raises
    ``ImageDecodeError`` (image_codec), a malformed message whatever reading it raised."""
    serialized = isinstance(msg, (bytes, bytearray, memoryview))
    if compressed:
        packed = parse_compressed(msg) if serialized else compressed_from_message(msg)
        rgb = decode_compressed(packed.format, packed.data, max_pixels)
        return packed.header, reorder_channels(rgb, order)
    fields = parse_image(msg) if serialized else fields_from_message(msg)
    return fields.header, image_to_array(fields.encoding, fields.height, fields.width, fields.step, fields.data, order,
                                         max_pixels)


#: stamp_tolerance_s's default: a header stamp further than this from the node's clock at receipt is another clock's
DEFAULT_STAMP_TOLERANCE_NS = 10 * 1_000_000_000


def convert_frame(frame: InputFrame, order: str, size: tuple[int, int], max_pixels: int, keep_rgb: bool,
                  wait_end_ns: int, tolerance_ns: int = DEFAULT_STAMP_TOLERANCE_NS) -> tuple[Pending, np.ndarray]:
    """Parse and convert ``frame`` into the network image ((H, W, 3) uint8 in ``order`` at ``size``) and its
    :class:`Pending`; ``wait_end_ns``: now on CLOCK_MONOTONIC (the frame waited in its mailbox since its
    ``received_mono_ns``). Raises ``ImageDecodeError`` for bad input (unsupported encoding, truncated or oversized
    data, undecodable jpeg/png). A stamp more than ``tolerance_ns`` from the frame's receipt time is another
    clock's (a recorded drive replayed without /clock): the frame is processed, ``Pending.foreign`` says so.

    Both workers' one rule: whatever fails in here is the frame's fault (a bad image, WARN), whatever fails in the
    backend is an inference failure (ERROR); so any other exception of the conversion (e.g. the AttributeError of
    a malformed duck-typed message) is raised as ``ImageDecodeError`` too, naming its type."""
    try:
        return _convert(frame, order, size, max_pixels, keep_rgb, wait_end_ns, tolerance_ns)
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - see the docstring: conversion failures are bad input
        raise ImageDecodeError(f"{type(exc).__name__}: {exc}") from exc


def _convert(frame: InputFrame, order: str, size: tuple[int, int], max_pixels: int, keep_rgb: bool,
             wait_end_ns: int, tolerance_ns: int) -> tuple[Pending, np.ndarray]:
    t0 = time.perf_counter()
    header, image = frame.decode(order, max_pixels)
    rgb = reorder_channels(image, order)
    height, width = image.shape[:2]
    network_image = resize_image(image, size[0], size[1])
    stamp = stamp_ns(header)
    offset = frame.received_ns - stamp
    foreign = stamp > 0 and abs(offset) > tolerance_ns
    pending = Pending(header, height, width, rgb if keep_rgb else None, (time.perf_counter() - t0) * 1e3,
                      offset * 1e-6 if stamp > 0 and not foreign else float("nan"),
                      (wait_end_ns - frame.received_mono_ns) * 1e-6 if frame.received_mono_ns > 0 else float("nan"),
                      frame.held(), frame.received_ns, foreign, frame.received_mono_ns)
    return pending, network_image


def age_ms(header: Header, now_ns: int) -> float:
    """Publish time minus the header stamp in milliseconds; NaN for an unstamped header."""
    stamp = stamp_ns(header)
    return (now_ns - stamp) * 1e-6 if stamp > 0 else float("nan")


__all__ = ["DEFAULT_STAMP_TOLERANCE_NS", "Frame", "InputFrame", "Pending", "age_ms", "convert_frame", "decode_message", "stamp_ns"]
