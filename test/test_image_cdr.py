"""The node's CDR reader and writer against rclpy's own (de)serialization: random headers (any frame_id length,
so every alignment case), sizes, encodings and row padding; big-endian encapsulation; truncated and malformed
buffers are bad input. Needs rclpy and sensor_msgs only."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from trt_segmentation.image_cdr import (
    Header,
    ImageSerializer,
    Stamp,
    parse_compressed,
    parse_image,
)
from trt_segmentation.image_codec import ImageDecodeError, image_to_array

serialization = pytest.importorskip("rclpy.serialization")
msgs = pytest.importorskip("sensor_msgs.msg")

ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


def random_image(rng: np.random.Generator):  # noqa: ANN201
    msg = msgs.Image()
    msg.header.stamp.sec = int(rng.integers(-2**31, 2**31))
    msg.header.stamp.nanosec = int(rng.integers(0, 10**9))
    msg.header.frame_id = "".join(chr(c) for c in rng.integers(97, 123, int(rng.integers(0, 13))))
    msg.height, msg.width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    msg.encoding = str(rng.choice(list(ENCODINGS)))
    msg.is_bigendian = int(rng.integers(0, 2))
    msg.step = msg.width * ENCODINGS[msg.encoding] + int(rng.integers(0, 9))
    msg.data = rng.integers(0, 256, msg.step * msg.height, dtype=np.uint8).tobytes()
    return msg


def test_parsed_images_equal_what_rclpy_deserializes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        msg = random_image(rng)
        raw = serialization.serialize_message(msg)
        fields = parse_image(raw)
        back = serialization.deserialize_message(raw, msgs.Image)
        assert (fields.header.stamp.sec, fields.header.stamp.nanosec) == (back.header.stamp.sec,
                                                                           back.header.stamp.nanosec)
        assert fields.header.frame_id == back.header.frame_id
        assert (fields.height, fields.width, fields.encoding, fields.is_bigendian, fields.step) == (
            back.height, back.width, back.encoding, back.is_bigendian, back.step)
        assert fields.data.tobytes() == bytes(back.data)
        assert np.shares_memory(fields.data, np.frombuffer(raw, np.uint8))  # a view, not a copy
        pixels = image_to_array(fields.encoding, fields.height, fields.width, fields.step, fields.data)
        assert pixels.shape == (fields.height, fields.width, 3)


def test_parsed_compressed_images_equal_what_rclpy_deserializes() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        msg = msgs.CompressedImage()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9))
        msg.header.frame_id = "cam" * int(rng.integers(0, 5))
        msg.format = ["jpeg", "png", "rgb8; jpeg compressed bgr8"][int(rng.integers(0, 3))]
        msg.data = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        fields = parse_compressed(serialization.serialize_message(msg))
        assert (fields.header.frame_id, fields.format, fields.data.tobytes()) == (
            msg.header.frame_id, msg.format, bytes(msg.data))
        assert (fields.header.stamp.sec, fields.header.stamp.nanosec) == (msg.header.stamp.sec,
                                                                           msg.header.stamp.nanosec)


def big_endian_image(frame_id: bytes, height: int, width: int, encoding: bytes, step: int, data: bytes) -> bytes:
    """An Image serialized with CDR_BE encapsulation, written here field by field (rclpy writes only LE)."""
    def pad(body: bytes, size: int) -> bytes:
        return body + b"\x00" * (-len(body) % size)

    body = struct.pack(">iI", 7, 8) + struct.pack(">I", len(frame_id) + 1) + frame_id + b"\x00"
    body = pad(body, 4) + struct.pack(">II", height, width) + struct.pack(">I", len(encoding) + 1) + encoding + b"\x00"
    body += b"\x00"
    body = pad(body, 4) + struct.pack(">I", step) + struct.pack(">I", len(data)) + data
    return b"\x00\x00\x00\x00" + body


def test_big_endian_encapsulation() -> None:
    data = bytes(range(2 * 7 * 3))
    fields = parse_image(big_endian_image(b"left", 2, 7, b"rgb8", 21, data))
    assert (fields.header.stamp, fields.header.frame_id) == (Stamp(7, 8), "left")
    assert (fields.height, fields.width, fields.encoding, fields.step) == (2, 7, "rgb8", 21)
    assert fields.data.tobytes() == data


def test_serialized_labels_deserialize_to_the_expected_message() -> None:
    rng = np.random.default_rng(2)
    serializers = {e: ImageSerializer(e) for e in ("mono8", "rgb8", "bgr8")}
    for i in range(200):
        encoding = ("mono8", "rgb8", "bgr8")[i % 3]
        h, w = int(rng.integers(1, 30)), int(rng.integers(1, 30))
        shape = (h, w) if encoding == "mono8" else (h, w, 3)
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        frame_id = "".join(chr(c) for c in rng.integers(65, 91, int(rng.integers(0, 11)))).encode()
        header = Header(Stamp(int(rng.integers(0, 2**31)), int(rng.integers(0, 10**9))), frame_id)
        back = serialization.deserialize_message(serializers[encoding].serialize(header, pixels), msgs.Image)
        assert (back.header.stamp.sec, back.header.stamp.nanosec, back.header.frame_id) == (
            header.stamp.sec, header.stamp.nanosec, frame_id.decode())
        assert (back.height, back.width, back.encoding, back.is_bigendian) == (h, w, encoding, 0)
        assert back.step == w * (1 if encoding == "mono8" else 3)
        assert bytes(back.data) == pixels.tobytes()


def test_a_label_image_keeps_a_non_ascii_frame_id_byte_for_byte() -> None:
    msg = msgs.Image(encoding="mono8", height=1, width=1, step=1, data=b"\x05")
    msg.header.frame_id = "kamera_vorn_ü"
    fields = parse_image(serialization.serialize_message(msg))
    out = ImageSerializer("mono8").serialize(fields.header, np.zeros((1, 1), np.uint8))
    assert serialization.deserialize_message(out, msgs.Image).header.frame_id == "kamera_vorn_ü"


@pytest.mark.parametrize("cut", [0, 3, 5, 11, 20, 30, -1])
def test_truncated_or_foreign_buffers_are_bad_input(cut: int) -> None:
    msg = msgs.Image(encoding="rgb8", height=2, width=2, step=6, data=bytes(12))
    msg.header.frame_id = "cam"
    raw = serialization.serialize_message(msg)
    with pytest.raises(ImageDecodeError):
        parse_image(raw[:cut])
    with pytest.raises(ImageDecodeError, match="encapsulation"):
        parse_image(b"\x07\x07" + raw[2:])


def test_a_huge_claimed_data_length_is_bad_input_not_an_allocation() -> None:
    msg = msgs.Image(encoding="rgb8", height=2, width=2, step=6, data=bytes(12))
    raw = bytearray(serialization.serialize_message(msg))
    struct.pack_into("<I", raw, len(raw) - 16, 2**31)  # the data length field, 12 bytes before the end + 4
    with pytest.raises(ImageDecodeError, match="truncated"):
        parse_image(bytes(raw))
