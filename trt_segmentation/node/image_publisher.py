"""Publishing a serialized sensor_msgs/Image with the interpreter lock released while the middleware copies it.

rclpy's ``Publisher.publish(bytes)`` copies the message into a C++ string and hands it to rcl without releasing
the GIL; on the batched node that, with building the ``bytes``, was 51-73 % of the inference process's GIL time
(H100 profile, docs/benchmarks.md), time in which its converter could not submit the next batch. Here each
publisher keeps one message buffer: the header bytes and the pixels are copied into it (numpy releases the GIL for
the large copy) and ``rcl_publish_serialized_message`` (what ``publish_raw`` calls) is called on it through ctypes,
which releases the GIL for the call. rclpy offers no publish that releases it and no other library does this, so
it is written here; it uses two stable C types of rcutils (``rcutils_uint8_array_t``, ``rcutils_allocator_t``) and
the entity address rclpy exposes (``handle.pointer``). Where either is missing (another rclpy, a librcl that cannot
be opened), the same bytes go out through ``Publisher.publish``.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Optional

import numpy as np

from ..image_cdr import Header, ImageSerializer


class _Allocator(ctypes.Structure):
    """rcutils_allocator_t."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p), ("reallocate", ctypes.c_void_p),
                ("zero_allocate", ctypes.c_void_p), ("state", ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """rcutils_uint8_array_t, which rcl_serialized_message_t is."""

    _fields_ = [("buffer", ctypes.c_void_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", _Allocator)]


class _ErrorString(ctypes.Structure):
    """rcutils_error_string_t."""

    _fields_ = [("str", ctypes.c_char * 1024)]


class _Rcl:
    """The three C functions this module calls, from the librcl/librcutils rclpy has already loaded."""

    def __init__(self) -> None:
        rcl = ctypes.CDLL("librcl.so")  # CDLL, not PyDLL: the call runs with the GIL released
        rcutils = ctypes.CDLL("librcutils.so")
        self.publish = rcl.rcl_publish_serialized_message
        self.publish.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SerializedMessage), ctypes.c_void_p]
        self.publish.restype = ctypes.c_int
        self.default_allocator = rcutils.rcutils_get_default_allocator
        self.default_allocator.restype = _Allocator
        self.error_string = rcutils.rcutils_get_error_string
        self.error_string.restype = _ErrorString
        self.reset_error = rcutils.rcutils_reset_error

    def error(self) -> str:
        raw: bytes = self.error_string().str
        self.reset_error()
        return raw.decode("utf-8", "replace")


_rcl: Optional[_Rcl] = None
_rcl_lock = threading.Lock()


def _load_rcl() -> Optional[_Rcl]:
    global _rcl
    with _rcl_lock:
        if _rcl is None:
            try:
                _rcl = _Rcl()
            except (OSError, AttributeError):
                return None
        return _rcl


class ImagePublisher:
    """One topic's serialized Image publisher: ``publish(header, pixels)`` from one thread at a time (a lock keeps
    the buffer to one message). ``direct`` says whether messages bypass rclpy's GIL-holding publish."""

    def __init__(self, publisher: Any, encoding: str, direct: bool = True) -> None:
        self.publisher = publisher
        self.serializer = ImageSerializer(encoding)
        self._lock = threading.Lock()
        self._buffer = np.empty(0, np.uint8)
        self._message = _SerializedMessage()
        self._rcl = _load_rcl() if direct else None
        if self._rcl is not None and not isinstance(getattr(getattr(publisher, "handle", None), "pointer", None), int):
            self._rcl = None
        if self._rcl is not None:
            self._message.allocator = self._rcl.default_allocator()

    @property
    def direct(self) -> bool:
        return self._rcl is not None

    def subscribed(self) -> bool:
        """Whether anyone subscribes to the topic now (rcl's matched count: cheap enough per frame)."""
        return int(self.publisher.get_subscription_count()) > 0

    @property
    def topic_name(self) -> str:
        return str(self.publisher.topic_name)

    def publish(self, header: Header, pixels: np.ndarray) -> None:
        """Publish ``pixels`` ((H, W) uint8 for mono8, (H, W, 3) uint8 for rgb8) under ``header``; raises
        ImageDecodeError for pixels the encoding cannot carry, RuntimeError with rcl's text when rcl refuses."""
        if self._rcl is None:
            self.publisher.publish(self.serializer.serialize(header, pixels))
            return
        prefix = self.serializer.prefix(header, pixels)
        start, end = len(prefix), len(prefix) + pixels.nbytes
        with self._lock:
            if self._buffer.size < end:
                self._buffer = np.empty(end, np.uint8)
                self._message.buffer = self._buffer.ctypes.data
                self._message.buffer_capacity = end
            self._buffer[:start] = np.frombuffer(prefix, np.uint8)
            np.copyto(self._buffer[start:end].reshape(pixels.shape), pixels)
            self._message.buffer_length = end
            with self.publisher.handle:  # rclpy's guard: the publisher is not destroyed during the call
                code = self._rcl.publish(self.publisher.handle.pointer, ctypes.byref(self._message), None)
            if code != 0:
                raise RuntimeError(f"publishing on {self.topic_name} failed (rcl {code}): {self._rcl.error()}")


__all__ = ["ImagePublisher"]
