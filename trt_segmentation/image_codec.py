"""Convert between ROS image message fields and numpy arrays without rclpy, cv_bridge or per-pixel loops.

``image_to_array`` turns the raw fields of a ``sensor_msgs/Image`` (encoding, height, width, step, data) into an
(H, W, 3) uint8 array in the channel order a model wants. It wraps the message buffer with ``np.frombuffer`` and
builds strided views (row padding, channel reordering, alpha dropping); it copies only when the caller gets an
array that must not alias a read-only message buffer in a different layout (mono8 is broadcast, which is a view
too). ``decode_compressed`` decodes jpeg/png
``sensor_msgs/CompressedImage`` payloads with Pillow. cv_bridge is not installable from PyPI, which is why this
exists. Every frame is checked against a pixel budget (``max_pixels``) before anything is decoded or converted, so
a message claiming a huge size is refused as bad input without allocating it.
"""

from __future__ import annotations

import io
from typing import Dict, Tuple

import numpy as np

from .errors import InputError, SegmentationError

#: the channel orders a network input (and a frame handed to it) can have
CHANNEL_ORDERS = ("rgb", "bgr")

# encoding -> (channels, index of R, G, B inside a pixel); mono8 has one channel used for all three
ENCODINGS: Dict[str, Tuple[int, Tuple[int, int, int]]] = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(ENCODINGS)
COMPRESSED_FORMATS = ("jpeg", "png")
#: default pixel budget of one frame: 2**25 = 33.5 MP, above any automotive or industrial camera (4K UHD is 8.3 MP)
DEFAULT_MAX_PIXELS = 1 << 25


class ImageDecodeError(ValueError, SegmentationError):
    """An image message cannot be turned into pixels (bad size, step, encoding or payload)."""


def check_pixel_budget(height: int, width: int, max_pixels: int, what: str = "image") -> None:
    """Refuse a frame whose (claimed) size exceeds ``max_pixels`` (0 = no limit) before it is decoded."""
    if max_pixels and height * width > max_pixels:
        raise ImageDecodeError(
            f"{what} of {height}x{width} = {height * width} pixels exceeds max_input_pixels = {max_pixels}"
        )


def payload_view(data: object) -> np.ndarray:
    """The message payload as a flat uint8 array, without copying when the object exposes a buffer."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    try:  # array.array('B') (what rclpy gives for uint8[]) and anything else with the buffer protocol
        return np.frombuffer(memoryview(data), dtype=np.uint8)  # type: ignore[arg-type]
    except TypeError:
        return np.asarray(bytearray(data), dtype=np.uint8)  # type: ignore[call-overload]  # list of ints


def image_to_array(
    encoding: str, height: int, width: int, step: int, data: object, order: str = "rgb",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Image message fields -> (height, width, 3) uint8 array in channel ``order`` ('rgb' or 'bgr').

    The result is a strided view of ``data`` whenever possible; it may therefore be read-only and
    non-contiguous. Callers that need a contiguous array call ``np.ascontiguousarray`` exactly once.
    """
    if order not in CHANNEL_ORDERS:
        raise InputError(f"order must be 'rgb' or 'bgr', got {order!r}")
    if encoding not in ENCODINGS:
        raise ImageDecodeError(
            f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        )
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"zero-size image: {height}x{width}")
    check_pixel_budget(height, width, max_pixels)
    channels, rgb_index = ENCODINGS[encoding]
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is smaller than width*channels = {width}*{channels} = {row_bytes} for {encoding}"
        )
    flat = payload_view(data)
    if flat.size < step * height:
        raise ImageDecodeError(
            f"data has {flat.size} bytes, {encoding} {height}x{width} with step {step} needs {step * height}"
        )
    rows = np.lib.stride_tricks.as_strided(
        flat, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    index = rgb_index if order == "rgb" else rgb_index[::-1]
    if channels == 1:
        return np.broadcast_to(rows, (height, width, 3))
    if index == (0, 1, 2):
        return rows[:, :, :3]
    if index == (2, 1, 0):
        return rows[:, :, 2::-1]
    return rows[:, :, list(index)]  # pragma: no cover - every supported layout is handled above


def compressed_format(format_field: str) -> str:
    """'jpeg', 'png' or '' from a CompressedImage ``format`` such as 'rgb8; jpeg compressed bgr8'."""
    text = format_field.lower()
    if "png" in text:
        return "png"
    if "jpeg" in text or "jpg" in text:
        return "jpeg"
    return ""


def encode_compressed(image: np.ndarray, kind: str, quality: int = 90) -> bytes:
    """JPEG or PNG bytes (Pillow) of an RGB (H, W, 3) or mono (H, W) uint8 image, as a ``CompressedImage`` carries
    them; PNG at zlib level 1 (lossless, fast). The inverse of :func:`decode_compressed`."""
    from PIL import Image

    if kind not in COMPRESSED_FORMATS:
        raise InputError(f"compressed format must be one of {', '.join(COMPRESSED_FORMATS)}, got {kind!r}")
    buffer = io.BytesIO()
    if kind == "jpeg":
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_compressed(format: str, data: object, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:  # noqa: A002
    """CompressedImage ``format`` and ``data`` -> (H, W, 3) uint8 RGB array (jpeg or png, decoded by Pillow).

    The size the header claims is checked against ``max_pixels`` before the pixels are decoded (Pillow reads only
    the header in ``Image.open``), so a small file that claims a huge image costs no memory."""
    kind = compressed_format(format)
    if not kind:
        raise ImageDecodeError(f"unsupported compressed format {format!r}; supported: jpeg, png")
    flat = payload_view(data)
    if flat.size == 0:
        raise ImageDecodeError("compressed image has no data")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(flat.tobytes())) as img:
            check_pixel_budget(img.height, img.width, max_pixels, f"{kind} image")
            rgb = img.convert("RGB")
            array = np.asarray(rgb)
    except Image.DecompressionBombError as exc:  # Pillow's own cap (2 x Image.MAX_IMAGE_PIXELS), hit in open()
        raise ImageDecodeError(f"{kind} image exceeds max_input_pixels = {max_pixels}: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, ImageDecodeError):
            raise
        raise ImageDecodeError(f"cannot decode {kind} payload of {flat.size} bytes: {exc}") from exc
    if array.size == 0:
        raise ImageDecodeError("compressed image decodes to zero size")
    return array


def pil_filter(name: str) -> int:
    """A Pillow resampling filter by name (``Image.Resampling`` since Pillow 9.1; Humble and JetPack 6 ship 9.0)."""
    from PIL import Image

    return int(getattr(getattr(Image, "Resampling", Image), name))


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) uint8 label image with Pillow: labels stay labels. The node's
    published labels and the evaluation's scored labels both come from here."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), pil_filter("NEAREST")))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an (H, W, 3) uint8 frame with Pillow (antialiased when shrinking)."""
    if image.shape[0] == height and image.shape[1] == width:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), pil_filter("BILINEAR")))


def reorder_channels(image: np.ndarray, order: str) -> np.ndarray:
    """An RGB ``image`` (..., 3) in channel ``order`` ('rgb': itself; 'bgr': a view with the channels reversed);
    the swap is its own inverse, so the same call turns a frame in ``order`` back into RGB."""
    return image if order == "rgb" else image[..., ::-1]


__all__ = [
    "encode_compressed",
    "CHANNEL_ORDERS",
    "reorder_channels",
    "COMPRESSED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "ImageDecodeError",
    "SUPPORTED_ENCODINGS",
    "check_pixel_budget",
    "compressed_format",
    "decode_compressed",
    "image_to_array",
    "payload_view",
    "pil_filter",
    "resize_image",
    "resize_nearest",
]
