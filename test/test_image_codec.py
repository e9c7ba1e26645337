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
    resize_image,
    resize_nearest,
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


# ------------------------------------------------------------------ resize filters: frames bilinear, labels nearest
def nearest_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest neighbour with pixel centres (source index floor((i + 0.5) * in / out)), written with numpy."""
    rows = np.minimum(((np.arange(height) + 0.5) * image.shape[0] / height).astype(int), image.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * image.shape[1] / width).astype(int), image.shape[1] - 1)
    return image[rows][:, cols]


def bilinear_reference(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear interpolation with pixel centres and clamped edges (what enlarging with a bilinear filter is),
    written with numpy."""
    def axis(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(x).astype(int)
        return low, np.minimum(low + 1, n_in - 1), x - low

    r0, r1, fr = axis(height, image.shape[0])
    c0, c1, fc = axis(width, image.shape[1])
    img = image.astype(np.float64)
    top = img[r0][:, c0] * (1 - fc)[None, :, None] + img[r0][:, c1] * fc[None, :, None]
    bottom = img[r1][:, c0] * (1 - fc)[None, :, None] + img[r1][:, c1] * fc[None, :, None]
    return top * (1 - fr)[:, None, None] + bottom * fr[:, None, None]


def test_frames_are_enlarged_bilinear() -> None:
    """Guards the frame filter of every resize to the engine's size (node and evaluation): bilinear, within one
    grey level of a numpy bilinear; a nearest or bicubic filter is several levels off."""
    frame = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = resize_image(frame, 50, 75)
    assert out.shape == (50, 75, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(np.float64) - bilinear_reference(frame, 50, 75)).max() < 1.01  # Pillow rounds in fixed point
    assert np.abs(nearest_reference(frame, 50, 75).astype(np.float64) - bilinear_reference(frame, 50, 75)).max() > 20


def test_frames_are_shrunk_antialiased() -> None:
    """Shrinking a one-pixel checkerboard 4x gives its mean grey, not the aliased black or white of sampling."""
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = resize_image(np.repeat(board[..., None], 3, axis=2), 16, 16)
    assert np.abs(out.astype(int) - 127.5).max() <= 2, np.unique(out)


@pytest.mark.parametrize("size", [(40, 70), (9, 13), (17, 31)])
def test_labels_are_resized_nearest_and_stay_labels(size: tuple[int, int]) -> None:
    """Guards the label filter (the node's published labels, the evaluation's scored labels): nearest neighbour,
    equal to a numpy nearest, and no value that was not a label before."""
    labels = np.random.default_rng(2).integers(0, 19, (20, 35), dtype=np.uint8)
    out = resize_nearest(labels, *size)
    assert out.shape == size
    assert np.array_equal(out, nearest_reference(labels, *size))
    assert set(np.unique(out)) <= set(np.unique(labels))
