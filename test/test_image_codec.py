"""image_codec: every supported encoding with row padding, views instead of copies, clear errors, compressed."""

from __future__ import annotations

import io

import numpy as np
import pytest
from node_harness import encode_frame, expected_rgb
from PIL import Image

from trt_segmentation.image_codec import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    compressed_format,
    decode_compressed,
    image_to_array,
)

RGB = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_decodes_every_encoding_with_padding(encoding: str, pad: int, order: str) -> None:
    step, data = encode_frame(RGB, encoding, pad)
    out = image_to_array(encoding, 5, 7, step, data, order)
    want = expected_rgb(RGB, encoding)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    assert np.array_equal(out, want if order == "rgb" else want[..., ::-1])


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_result_is_a_view_of_the_message_buffer(encoding: str) -> None:
    step, data = encode_frame(RGB, encoding, pad=8)
    buffer = np.frombuffer(data, np.uint8)
    out = image_to_array(encoding, 5, 7, step, buffer)
    assert np.shares_memory(out, buffer), "converted without copying the pixels"
    assert not out.flags.writeable


def test_accepts_array_array_and_memoryview() -> None:
    import array

    step, data = encode_frame(RGB, "bgr8")
    for payload in (array.array("B", data), memoryview(data), bytearray(data), list(data)):
        assert np.array_equal(image_to_array("bgr8", 5, 7, step, payload), RGB)


@pytest.mark.parametrize(
    ("encoding", "height", "width", "step", "size", "message"),
    [
        ("rgb8", 5, 7, 21, 104, "data has 104 bytes"),
        ("16UC1", 5, 7, 14, 70, "unsupported encoding '16UC1'"),
        ("rgb8", 0, 7, 21, 0, "zero-size"),
        ("rgb8", 5, 0, 0, 0, "zero-size"),
        ("rgb8", 5, 7, 20, 100, "step 20 is smaller than width*channels"),
        ("rgba8", 5, 7, 21, 105, "step 21 is smaller than width*channels = 7*4 = 28"),
    ],
)
def test_malformed_messages_raise_clear_errors(encoding, height, width, step, size, message) -> None:
    with pytest.raises(ImageDecodeError, match=message.replace("*", r"\*")):
        image_to_array(encoding, height, width, step, bytes(size))


def test_serialized_images_round_trip_without_rclpy() -> None:
    from trt_segmentation.image_cdr import Header, ImageSerializer, Stamp, parse_image

    header = Header(Stamp(12, 34), b"cam0")
    labels = np.arange(35, dtype=np.uint8).reshape(5, 7)
    fields = parse_image(ImageSerializer("mono8").serialize(header, labels))
    assert (fields.header, fields.height, fields.width, fields.step, fields.encoding) == (header, 5, 7, 7, "mono8")
    assert np.array_equal(image_to_array("mono8", 5, 7, 7, fields.data)[..., 0], labels)
    fields = parse_image(ImageSerializer("rgb8").serialize(header, RGB[:, ::-1]))  # non-contiguous input
    assert fields.step == 21 and np.array_equal(image_to_array("rgb8", 5, 7, 21, fields.data), RGB[:, ::-1])
    with pytest.raises(ImageDecodeError, match=r"mono8 needs uint8 \(H, W\)"):
        ImageSerializer("mono8").serialize(header, RGB)
    with pytest.raises(ValueError, match="cannot serialize encoding"):
        ImageSerializer("16UC1")


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_decode_compressed(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, format=fmt.upper())
    out = decode_compressed(f"rgb8; {fmt} compressed bgr8", buffer.getvalue())
    reference = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(out, reference)
    if fmt == "png":
        assert np.array_equal(out, RGB)


def test_decode_compressed_errors() -> None:
    assert compressed_format("jpg") == "jpeg" and compressed_format("tiff") == ""
    with pytest.raises(ImageDecodeError, match="unsupported compressed format"):
        decode_compressed("tiff", b"123")
    with pytest.raises(ImageDecodeError, match="no data"):
        decode_compressed("png", b"")
    with pytest.raises(ImageDecodeError, match="cannot decode png"):
        decode_compressed("png", b"not a png at all")
