"""sensor_msgs/Image and CompressedImage in their serialized (CDR) form: parse without building message objects,
and build label/colour images around an input's header.

rclpy can hand a subscription the serialized bytes (``raw=True``) and publish serialized bytes. Turning them into
Python message objects and back costs more than the network on a GPU (8-9 ms for a 1024x2048 frame on the lent
H200), so the node reads the few fields it needs here and views the pixel bytes with numpy. The layout is fixed
by the message definitions and the OMG CDR rules ROS 2 uses (XCDR1 "plain CDR" with the 4-byte encapsulation
header of RTPS: 0x0000 big-endian, 0x0001 little-endian; primitives aligned to their size, counted from the end
of that header; strings as uint32 length incl. the NUL, bytes, NUL; sequences as uint32 count, elements).
No library on PyPI does this for raw rclpy bytes without a type store and a copy of the payload, which is why it
is written here; the tests check it against ``rclpy.serialization`` for random headers, sizes and encodings.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import numpy as np

from .errors import InputError
from .image_codec import ImageDecodeError, payload_view

_ENCAPSULATION = {b"\x00\x00": ">", b"\x00\x01": "<"}  # CDR_BE, CDR_LE
_LE_HEADER = b"\x00\x01\x00\x00"


@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class Header:
    """std_msgs/Header as read from the wire; ``frame_id_raw`` keeps the exact bytes for re-publishing."""

    stamp: Stamp
    frame_id_raw: bytes

    @property
    def frame_id(self) -> str:
        return self.frame_id_raw.decode("utf-8", "replace")


@dataclass(frozen=True)
class ImageFields:
    """What the node needs of a sensor_msgs/Image; ``data`` is a read-only view into the serialized buffer."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


@dataclass(frozen=True)
class CompressedFields:
    header: Header
    format: str
    data: np.ndarray


class _Reader:
    """A cursor over one CDR body; every read checks the bounds, so truncated input is an ImageDecodeError."""

    def __init__(self, buffer: bytes) -> None:
        if len(buffer) < 4:
            raise ImageDecodeError(f"serialized message of {len(buffer)} bytes is shorter than its CDR header")
        order = _ENCAPSULATION.get(bytes(buffer[:2]))
        if order is None:
            raise ImageDecodeError(f"unsupported CDR encapsulation {bytes(buffer[:2]).hex()} (expected CDR_LE/BE)")
        self.buffer = buffer
        self.order = order
        self.pos = 4

    def _align(self, size: int) -> None:
        self.pos += -(self.pos - 4) % size

    def _need(self, size: int, what: str) -> None:
        if size < 0 or self.pos + size > len(self.buffer):
            raise ImageDecodeError(f"serialized message truncated in {what} ({len(self.buffer)} bytes)")

    def _word(self, code: str, what: str) -> int:
        """One 4-byte integer (``code`` 'I' unsigned, 'i' signed), aligned to 4."""
        self._align(4)
        self._need(4, what)
        (value,) = struct.unpack_from(self.order + code, self.buffer, self.pos)
        self.pos += 4
        return int(value)

    def uint32(self, what: str) -> int:
        return self._word("I", what)

    def int32(self, what: str) -> int:
        return self._word("i", what)

    def uint8(self, what: str) -> int:
        self._need(1, what)
        value = self.buffer[self.pos]
        self.pos += 1
        return int(value)

    def string_bytes(self, what: str) -> bytes:
        length = self.uint32(what)
        self._need(length, what)
        raw = bytes(self.buffer[self.pos:self.pos + length])
        self.pos += length
        return raw[:-1] if raw.endswith(b"\x00") else raw

    def octets(self, what: str) -> np.ndarray:
        count = self.uint32(what)
        self._need(count, what)
        view = np.frombuffer(self.buffer, dtype=np.uint8, count=count, offset=self.pos)
        self.pos += count
        return view

    def header(self) -> Header:
        sec = self.int32("header.stamp.sec")
        nanosec = self.uint32("header.stamp.nanosec")
        return Header(Stamp(sec, nanosec), self.string_bytes("header.frame_id"))


def parse_image(buffer: bytes) -> ImageFields:
    """Serialized sensor_msgs/Image -> its fields, the pixels as a view (no copy)."""
    r = _Reader(buffer)
    header = r.header()
    height = r.uint32("height")
    width = r.uint32("width")
    encoding = r.string_bytes("encoding").decode("ascii", "replace")
    is_bigendian = r.uint8("is_bigendian")
    step = r.uint32("step")
    return ImageFields(header, height, width, encoding, is_bigendian, step, r.octets("data"))


def parse_compressed(buffer: bytes) -> CompressedFields:
    """Serialized sensor_msgs/CompressedImage -> its fields, the payload as a view (no copy)."""
    r = _Reader(buffer)
    header = r.header()
    fmt = r.string_bytes("format").decode("ascii", "replace")
    return CompressedFields(header, fmt, r.octets("data"))


def _header_of(msg: Any) -> Header:
    h = msg.header
    return Header(Stamp(int(h.stamp.sec), int(h.stamp.nanosec)), h.frame_id.encode("utf-8"))


def fields_from_message(msg: Any) -> ImageFields:
    """The same fields from an rclpy Image object (the fallback where a subscription cannot take raw bytes)."""
    return ImageFields(_header_of(msg), int(msg.height), int(msg.width), str(msg.encoding),
                       int(getattr(msg, "is_bigendian", 0)), int(msg.step), payload_view(msg.data))


def compressed_from_message(msg: Any) -> CompressedFields:
    """The same fields from an rclpy CompressedImage object."""
    return CompressedFields(_header_of(msg), str(msg.format), payload_view(msg.data))


def _pad(length: int) -> bytes:
    return b"\x00" * (-length % 4)


class ImageSerializer:
    """Builds serialized little-endian sensor_msgs/Image bytes for one encoding around a given header.

    The bytes before the pixels depend only on the header, the size and the encoding; they are cached per
    (frame_id, height, width), so a frame costs one copy of its pixels into the outgoing ``bytes``."""

    CHANNELS = {"mono8": 1, "rgb8": 3, "bgr8": 3}

    def __init__(self, encoding: str) -> None:
        if encoding not in self.CHANNELS:
            raise InputError(f"cannot serialize encoding {encoding!r}; use one of {', '.join(self.CHANNELS)}")
        self.encoding = encoding
        self.channels = self.CHANNELS[encoding]
        self._tails: Dict[Tuple[bytes, int, int], bytes] = {}

    def _tail(self, frame_id: bytes, height: int, width: int) -> bytes:
        """Everything after the stamp and before the pixel bytes (the stamp is the only per-frame part)."""
        key = (frame_id, height, width)
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) > 64:  # a camera whose frame_id changes every frame: keep the cache bounded
                self._tails.clear()
            fid = frame_id + b"\x00"
            enc = self.encoding.encode("ascii") + b"\x00"
            step = width * self.channels
            body = struct.pack("<I", len(fid)) + fid
            body += _pad(8 + len(body)) + struct.pack("<II", height, width)
            body += struct.pack("<I", len(enc)) + enc
            body += b"\x00"  # is_bigendian
            body += _pad(8 + len(body)) + struct.pack("<II", step, step * height)
            tail = self._tails[key] = body
        return tail

    def prefix(self, header: Header, pixels: np.ndarray) -> bytes:
        """Every serialized byte before the pixels of ``pixels`` (checked: (H, W) uint8 for mono8, (H, W, 3) uint8
        for rgb8/bgr8) under ``header``; the pixel bytes follow it row by row, unpadded."""
        expected_ndim = 2 if self.channels == 1 else 3
        if pixels.dtype != np.uint8 or pixels.ndim != expected_ndim or (
                expected_ndim == 3 and pixels.shape[2] != 3):
            raise ImageDecodeError(f"{self.encoding} needs uint8 {'(H, W)' if expected_ndim == 2 else '(H, W, 3)'} "
                                   f"pixels, got {pixels.dtype} {pixels.shape}")
        head = _LE_HEADER + struct.pack("<iI", header.stamp.sec, header.stamp.nanosec)
        return head + self._tail(header.frame_id_raw, int(pixels.shape[0]), int(pixels.shape[1]))

    def serialize(self, header: Header, pixels: np.ndarray) -> bytes:
        """(H, W) uint8 for mono8, (H, W, 3) uint8 for rgb8/bgr8 -> serialized Image with ``header``."""
        return self.prefix(header, pixels) + np.ascontiguousarray(pixels).data.cast("B")


__all__ = [
    "CompressedFields",
    "Header",
    "ImageFields",
    "ImageSerializer",
    "Stamp",
    "compressed_from_message",
    "fields_from_message",
    "parse_compressed",
    "parse_image",
]
