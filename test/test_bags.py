"""Bag round trips: written by tools/make_rosbag.py (trt_seg_make_rosbag), read back by rosbags, mcap-ros2-support, sqlite3 + rclpy."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from trt_segmentation.data.bags import (
    BagError,
    encode_pixels,
    image_topics,
    iter_bag_images,
    rewrite_metadata_v5,
    write_image_bag,
)
from trt_segmentation.data.image_folder import iter_image_folder

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "make_rosbag.py"


def run_tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args, "--quiet"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    from PIL import Image

    from trt_segmentation.data.street_scenes import render_scene

    folder = tmp_path_factory.mktemp("images")
    for i in range(4):
        Image.fromarray(render_scene(i, 48, 96)[0]).save(folder / f"frame_{i:02d}.png")
    return folder


def folder_frames(folder: Path) -> list[np.ndarray]:
    return [img for _, img in iter_image_folder(folder)]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_tool_bag_reads_back_with_rosbags_anyreader(tmp_path, image_folder, storage):
    from rosbags.highlevel import AnyReader

    out = tmp_path / "bag"
    result = run_tool(str(out), "--images", str(image_folder), "--storage", storage, "--fps", "5",
                      "--encoding", "bgr8", "--frame-id", "front")
    assert result.returncode == 0, result.stderr
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == storage and meta["message_count"] == 4
    expected = folder_frames(image_folder)
    with AnyReader([out]) as reader:  # no typestore given: definitions embedded in the bag are used
        (conn,) = reader.connections
        assert (conn.topic, conn.msgtype) == ("/camera/image_raw", "sensor_msgs/msg/Image")
        stamps = []
        for (c, t, raw), frame in zip(reader.messages(), expected):
            msg = reader.deserialize(raw, c.msgtype)
            assert (msg.encoding, msg.header.frame_id, msg.step) == ("bgr8", "front", 96 * 3)
            np.testing.assert_array_equal(msg.data.reshape(48, 96, 3)[..., ::-1], frame)
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
            stamps.append(t)
    assert np.diff(stamps).tolist() == [200_000_000] * 3
    # and through our own reader, back in RGB
    for (_, img), frame in zip(iter_bag_images(out), expected):
        np.testing.assert_array_equal(img, frame)


def test_mcap_bag_reads_with_mcap_ros2_support(tmp_path, image_folder):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    out = tmp_path / "bag"
    assert run_tool(str(out), "--images", str(image_folder), "--topic", "/cam/image", "--encoding", "rgba8").returncode == 0
    expected = folder_frames(image_folder)
    with open(next(out.glob("*.mcap")), "rb") as f:
        decoded = list(make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages(topics=["/cam/image"]))
    assert len(decoded) == 4
    for (schema, _, _, ros), frame in zip(decoded, expected):
        assert schema.name == "sensor_msgs/msg/Image" and ros.encoding == "rgba8"
        pixels = np.frombuffer(bytes(ros.data), np.uint8).reshape(ros.height, ros.width, 4)
        np.testing.assert_array_equal(pixels[..., :3], frame)
        assert (pixels[..., 3] == 255).all()


def test_sqlite_bag_reads_with_sqlite3_and_rclpy_deserializer(tmp_path, image_folder):
    """Plain SQL on the .db3 and ROS 2's own typesupport (rclpy) decode what we wrote: no rosbags involved."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    out = tmp_path / "bag"
    assert run_tool(str(out), "--images", str(image_folder), "--storage", "sqlite3", "--encoding", "mono8").returncode == 0
    with sqlite3.connect(next(out.glob("*.db3"))) as db:
        topics = db.execute("SELECT id, name, type, serialization_format FROM topics").fetchall()
        rows = db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp").fetchall()
    assert [t[1:] for t in topics] == [("/camera/image_raw", "sensor_msgs/msg/Image", "cdr")]
    assert len(rows) == 4
    for (_, timestamp, data), frame in zip(rows, folder_frames(image_folder)):
        msg = deserialize_message(data, Image)
        assert (msg.encoding, msg.height, msg.width, msg.step) == ("mono8", 48, 96, 96)
        assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == timestamp
        luma = np.frombuffer(bytes(msg.data), np.uint8).reshape(48, 96)
        np.testing.assert_array_equal(luma, encode_pixels(frame, "mono8")[0].reshape(48, 96))


def test_generate_and_cityscapes_sources_with_resize_and_compression(tmp_path):
    from trt_segmentation.data.street_scenes import write_street_split

    out = tmp_path / "gen"
    result = run_tool(str(out), "--generate", "3", "--size", "64x128", "--compressed", "jpeg")
    assert result.returncode == 0, result.stderr
    assert image_topics(out) == {"/camera/image_raw/compressed": "sensor_msgs/msg/CompressedImage"}
    frames = list(iter_bag_images(out))
    assert len(frames) == 3 and all(img.shape == (64, 128, 3) for _, img in frames)

    write_street_split(tmp_path / "cs", "val", 2, height=64, width=128, progress=False)
    out2 = tmp_path / "cs_bag"
    result = run_tool(str(out2), "--cityscapes", str(tmp_path / "cs"), "--split", "val", "--size", "32x64")
    assert result.returncode == 0, result.stderr
    assert [img.shape for _, img in iter_bag_images(out2)] == [(32, 64, 3)] * 2


def test_metadata_version_5_has_exactly_what_humble_reads(tmp_path, image_folder):
    out = tmp_path / "humble"
    assert run_tool(str(out), "--images", str(image_folder), "--storage", "sqlite3", "--metadata-version", "5").returncode == 0
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 5
    # the keys Humble's rosbag2 0.15 YAML decoder reads, and nothing of newer versions
    assert set(info) == {"version", "storage_identifier", "duration", "starting_time", "message_count",
                         "topics_with_message_count", "compression_format", "compression_mode",
                         "relative_file_paths", "files"}
    (topic,) = info["topics_with_message_count"]
    assert isinstance(topic["topic_metadata"]["offered_qos_profiles"], str)  # Humble parses it as a string
    assert set(topic["topic_metadata"]) == {"name", "type", "serialization_format", "offered_qos_profiles"}
    assert info["files"][0]["path"] == info["relative_file_paths"][0]
    assert len(list(iter_bag_images(out))) == 4  # still readable by rosbags
    # turn the .db3 into what Humble's recorder writes (schema 3: no message_definitions, no type hashes), so
    # the reader must fall back to the standard definitions
    with sqlite3.connect(next(out.glob("*.db3"))) as db:
        db.execute("DROP TABLE message_definitions")
        db.execute("ALTER TABLE topics DROP COLUMN type_description_hash")
        db.execute("UPDATE schema SET schema_version = 3, ros_distro = 'humble'")
    for (_, img), frame in zip(iter_bag_images(out), folder_frames(image_folder)):
        np.testing.assert_array_equal(img, frame)
    with pytest.raises(BagError, match="metadata.yaml"):
        rewrite_metadata_v5(tmp_path)


def test_clear_errors(tmp_path, image_folder):
    with pytest.raises(BagError, match="does not exist"):
        list(iter_bag_images(tmp_path / "missing"))
    bag = write_image_bag(tmp_path / "bag", [np.zeros((8, 8, 3), np.uint8)], compressed=None).path
    with pytest.raises(BagError, match="exists"):
        write_image_bag(bag, [np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(BagError, match="no Image/CompressedImage topic"):
        list(iter_bag_images(bag, topic="/nope"))
    with pytest.raises(BagError, match="encoding"):
        write_image_bag(tmp_path / "bad", [np.zeros((8, 8, 3), np.uint8)], encoding="yuv422")
    with pytest.raises(BagError, match="uint8 RGB"):
        write_image_bag(tmp_path / "bad2", [np.zeros((8, 8), np.uint8)])
    assert not (tmp_path / "bad2").exists()  # nothing half-written left behind
    result = run_tool(str(tmp_path / "x"), "--images", str(tmp_path / "empty_nowhere"))
    assert result.returncode == 2 and result.stderr.strip() == f"error: image folder not found: {tmp_path / 'empty_nowhere'}"


def test_reads_and_plays_a_bare_mcap_written_by_another_tool(tmp_path):
    """A plain .mcap from mcap-ros2-support's writer (no metadata.yaml, dict messages): read by path."""
    from mcap_ros2.writer import Writer
    from rosbags.typesys import Stores, get_typestore

    msgdef, _ = get_typestore(Stores.ROS2_HUMBLE).generate_msgdef("sensor_msgs/msg/Image", ros_version=2)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (6, 10, 3), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / "other.mcap"
    with open(path, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/Image", msgdef)
        for i, frame in enumerate(frames):
            t = 5_000_000_000 + i * 50_000_000
            bgr = frame[..., ::-1]
            padded = np.zeros((6, 32), np.uint8)  # rows padded to 32 bytes
            padded[:, :30] = bgr.reshape(6, 30)
            writer.write_message("/cam", schema, {
                "header": {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "x"},
                "height": 6, "width": 10, "encoding": "bgr8", "is_bigendian": 0, "step": 32,
                "data": padded.tobytes()}, log_time=t, publish_time=t)
        writer.finish()
    got = list(iter_bag_images(path))
    assert [t for t, _ in got] == [5_000_000_000, 5_050_000_000, 5_100_000_000]
    for (_, img), frame in zip(got, frames):
        np.testing.assert_array_equal(img, frame)


def test_tool_writes_several_cameras_each_with_its_topic_frame_id_size_and_rate(tmp_path):
    """--cameras: one topic per camera, its own frame_id, size (--camera-size) and rate (--camera-rate); messages in
    time order across cameras; read back by rosbags' AnyReader (embedded definitions) and by our reader."""
    from rosbags.highlevel import AnyReader

    out = tmp_path / "three"
    result = run_tool(str(out), "--generate", "4", "--size", "32x64", "--fps", "10", "--cameras", "front", "left",
                      "right", "--camera-size", "left=16x48", "--camera-rate", "right=5")
    assert result.returncode == 0, result.stderr
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] == 12
    expected = {"front": ((32, 64), 100_000_000), "left": ((16, 48), 100_000_000), "right": ((32, 64), 200_000_000)}
    seen: dict[str, list] = {name: [] for name in expected}
    times = []
    with AnyReader([out]) as reader:
        assert sorted(c.topic for c in reader.connections) == [f"/cameras/{n}/image" for n in sorted(expected)]
        for conn, t, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype)
            name = conn.topic.split("/")[2]
            assert msg.header.frame_id == name
            assert (msg.height, msg.width) == expected[name][0]
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == t
            seen[name].append(t)
            times.append(t)
    assert times == sorted(times)  # one recording, in time order
    for name, (_, period) in expected.items():
        assert len(seen[name]) == 4 and np.diff(seen[name]).tolist() == [period] * 3
    assert seen["front"][0] == seen["left"][0] == seen["right"][0]  # all cameras start together
    # generated scenes differ per camera; the single-camera bag keeps its scenes
    front = [img for _, img in iter_bag_images(out, "/cameras/front/image")]
    right = [img for _, img in iter_bag_images(out, "/cameras/right/image")]
    assert not np.array_equal(front[0], right[0])
    single = tmp_path / "single"
    assert run_tool(str(single), "--generate", "1", "--size", "32x64").returncode == 0
    from trt_segmentation.data.street_scenes import render_scene, scene_seed

    np.testing.assert_array_equal(next(iter_bag_images(single))[1], render_scene(scene_seed(0, "bag", 0), 32, 64)[0])


def test_camera_options_are_checked(tmp_path):
    bad = [
        (["--camera-size", "left=16x48"], "need --cameras"),
        (["--cameras", "front", "--camera-rate", "rear=5"], "NAME one of --cameras"),
        (["--cameras", "front", "--camera-size", "front=big"], "size must look like"),
        (["--cameras", "front", "front"], "names a camera twice"),
        (["--cameras", "front", "--topic", "/x"], "--topic names the single camera"),
        (["--cameras", "front/left"], "ROS name tokens"),
    ]
    for extra, message in bad:
        result = run_tool(str(tmp_path / "x"), "--generate", "1", "--size", "16x16", *extra)
        assert result.returncode == 2 and message in result.stderr, (extra, result.stderr)
        assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()


def test_bag_camera_names_follow_the_nodes_rule():
    """One rule (artifacts.CAMERA_NAME): a bag camera the node would refuse as a ``cameras`` entry is refused."""
    from trt_segmentation.data.bags import BagError, camera_topic
    from trt_segmentation.node.params import params_from_dict

    for name in ("front", "front_left", "cam2", "Rear"):
        assert camera_topic(name) == f"/cameras/{name}/image"
        params_from_dict({"cameras": [name]})
    for name in ("_front", "fr\u00f6nt", "2nd", "front/left", "front-left", ""):
        with pytest.raises(BagError, match="ROS name tokens"):
            camera_topic(name)
        with pytest.raises(ValueError, match="no valid camera name"):
            params_from_dict({"cameras": [name]})
