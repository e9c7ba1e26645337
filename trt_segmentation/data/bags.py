"""ROS 2 bags of camera images without a ROS install: write and read them (playing them: apps/bag_player.py).

* :func:`write_image_bag` (one camera) and :func:`write_camera_bag` (several, each its own topic, frame_id, rate
  and size, in time order) write ``sensor_msgs/msg/Image`` (or ``CompressedImage``) with the ``rosbags`` Writer,
  mcap (default) or sqlite3 storage, metadata version 9 (Jazzy and newer), 8, or 5 (the version Humble writes;
  see :func:`rewrite_metadata_v5` and docs/data.md).
* :func:`iter_bag_images` reads image topics of any ROS 2 bag (mcap or sqlite3, a bag directory or a bare
  ``.mcap``/``.db3`` file, written by ``ros2 bag``, rosbags or other tools) through ``rosbags.highlevel.AnyReader``.
* The player (publishing a bag into a live graph with rclpy) is apps/bag_player.py.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import check_camera_name
from ..errors import SegmentationError
from ..image_codec import COMPRESSED_FORMATS, encode_compressed

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
WRITE_ENCODINGS = ("rgb8", "bgr8", "mono8", "rgba8", "bgra8")
STORAGES = ("mcap", "sqlite3")
METADATA_VERSIONS = (9, 8, 5)
DEFAULT_TOPIC = "/camera/image_raw"


class BagError(SegmentationError):
    """A bag cannot be written, read or played; the message names the bag, topic or message."""


@lru_cache(maxsize=1)
def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    # Image, CompressedImage and Header are identical in every ROS 2 distro's store (checked Humble vs Jazzy)
    return get_typestore(Stores.ROS2_HUMBLE)


# ------------------------------------------------------------------------------------------------------ write
def encode_pixels(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    """(H, W, 3) uint8 RGB -> (flat uint8 data, step) for a ``sensor_msgs/Image`` with ``encoding``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BagError(f"frames must be (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        out = rgb
    elif encoding == "bgr8":
        out = rgb[..., ::-1]
    elif encoding == "mono8":  # ITU-R BT.601 luma, the weights cv_bridge/OpenCV use
        out = np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32) + 0.5, 0, 255).astype(np.uint8)
    elif encoding in ("rgba8", "bgra8"):
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        out = np.concatenate([rgb if encoding == "rgba8" else rgb[..., ::-1], alpha], axis=2)
    else:
        raise BagError(f"cannot write encoding {encoding!r}; choose one of {', '.join(WRITE_ENCODINGS)}")
    out = np.ascontiguousarray(out)
    return out.reshape(-1), out.strides[0]


def compress_frame(rgb: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """JPEG or PNG bytes of an RGB frame (image_codec.encode_compressed), as carried by
    ``sensor_msgs/CompressedImage``."""
    if fmt not in COMPRESSED_FORMATS:
        raise BagError(f"compressed format must be 'jpeg' or 'png', got {fmt!r}")
    return encode_compressed(rgb, fmt, quality)


@dataclass
class BagSummary:
    path: Path
    topic: str  # the first camera's topic (the only one of a single-camera bag)
    msgtype: str
    messages: int
    start_ns: int
    duration_ns: int
    storage: str
    metadata_version: int
    topics: dict[str, int] = field(default_factory=dict)  # every topic -> its message count

    def __str__(self) -> str:
        where = (f"on {self.topic}" if len(self.topics) <= 1
                 else "on " + ", ".join(f"{t} ({n})" for t, n in self.topics.items()))
        return (f"{self.path}: {self.messages} x {self.msgtype} {where}, {self.duration_ns / 1e9:.2f} s, "
                f"{self.storage}, metadata v{self.metadata_version}")


@dataclass
class CameraStream:
    """One camera of a bag: RGB frames on ``topic`` at ``fps``, each header with ``frame_id``."""

    topic: str
    frames: Iterable[np.ndarray]
    fps: float = 10.0
    frame_id: str = "camera"
    count: int | None = None  # frames expected (progress bar only)


def camera_topic(name: str) -> str:
    """The topic of camera ``name`` in a multi-camera bag: ``/cameras/<name>/image``."""
    try:
        check_camera_name(name)
    except ValueError as exc:
        raise BagError(str(exc)) from None
    return f"/cameras/{name}/image"


def write_image_bag(
    out_dir: str | Path, frames: Iterable[np.ndarray], *, fps: float = 10.0, topic: str = DEFAULT_TOPIC,
    encoding: str = "rgb8", frame_id: str = "camera", storage: str = "mcap", compressed: str | None = None,
    jpeg_quality: int = 90, start_ns: int | None = None, metadata_version: int = 9, overwrite: bool = False,
    progress: bool = False, total: int | None = None,
) -> BagSummary:
    """Write RGB frames as a rosbag2 at ``fps`` (receive time = header stamp = start + i / fps).

    ``compressed='jpeg'|'png'`` writes ``sensor_msgs/CompressedImage`` on ``<topic>/compressed`` (the
    image_transport convention) instead of raw images. ``metadata_version=5`` writes a bag Humble's
    ``ros2 bag`` reads (see :func:`rewrite_metadata_v5`)."""
    return write_camera_bag(
        out_dir, [CameraStream(topic, frames, fps, frame_id, total)], encoding=encoding, storage=storage,
        compressed=compressed, jpeg_quality=jpeg_quality, start_ns=start_ns, metadata_version=metadata_version,
        overwrite=overwrite, progress=progress)


def _scheduled(index: int, camera: CameraStream, start: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
    period = 1e9 / camera.fps
    for i, rgb in enumerate(camera.frames):
        yield start + int(round(i * period)), index, i, rgb


def write_camera_bag(
    out_dir: str | Path, cameras: Sequence[CameraStream], *, encoding: str = "rgb8", storage: str = "mcap",
    compressed: str | None = None, jpeg_quality: int = 90, start_ns: int | None = None, metadata_version: int = 9,
    overwrite: bool = False, progress: bool = False,
) -> BagSummary:
    """Write one or more cameras into one rosbag2, messages in time order across cameras.

    Camera ``k``'s frame ``i`` is stamped (header and receive time) ``start + i / fps_k``; each camera has its own
    topic (``<topic>/compressed`` with ``compressed``), frame_id, rate and frame size. Frames are pulled lazily, one
    ahead per camera."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if not cameras:
        raise BagError("no camera to write")
    for cam in cameras:
        if cam.fps <= 0:
            raise BagError(f"fps must be > 0, got {cam.fps} ({cam.topic})")
        if not cam.topic.startswith("/"):
            raise BagError(f"topic must be absolute (start with '/'), got {cam.topic!r}")
    if len({cam.topic for cam in cameras}) != len(cameras):
        raise BagError(f"two cameras on one topic: {', '.join(cam.topic for cam in cameras)}")
    if storage not in STORAGES:
        raise BagError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if metadata_version not in METADATA_VERSIONS:
        raise BagError(f"metadata_version must be one of {METADATA_VERSIONS}, got {metadata_version}")
    if compressed is None and encoding not in WRITE_ENCODINGS:
        raise BagError(f"cannot write encoding {encoding!r}; choose one of {', '.join(WRITE_ENCODINGS)}")
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise BagError(f"{out} exists; choose another output or allow overwriting")
        import shutil

        shutil.rmtree(out)
    ts = _typestore()
    Image, CompressedImage = ts.types[IMAGE_TYPE], ts.types[COMPRESSED_TYPE]
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    out_topics = [f"{cam.topic.rstrip('/')}/compressed" if compressed else cam.topic for cam in cameras]
    start = time.time_ns() if start_ns is None else int(start_ns)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    bar = None
    if progress:
        from tqdm import tqdm

        counts = [cam.count for cam in cameras]
        bar = tqdm(total=None if None in counts else sum(c or 0 for c in counts), desc=f"writing {out.name}",
                   unit="msg")
    counts_by_topic = dict.fromkeys(out_topics, 0)
    count, last = 0, start
    try:
        with Writer(out, version=8 if metadata_version in (8, 5) else 9, storage_plugin=plugin) as writer:
            conns = [writer.add_connection(t, msgtype, typestore=ts) for t in out_topics]
            # time order across cameras (ties: camera order), so that players and readers see a real recording
            stream = heapq.merge(*(_scheduled(k, cam, start) for k, cam in enumerate(cameras)),
                                 key=lambda item: (item[0], item[1]))
            for stamp, k, i, rgb in stream:
                header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=cameras[k].frame_id)
                if compressed:
                    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                        raise BagError(f"{out_topics[k]} frame {i}: frames must be (H, W, 3) uint8 RGB, got "
                                       f"{rgb.shape} {rgb.dtype}")
                    payload = np.frombuffer(compress_frame(rgb, compressed, jpeg_quality), np.uint8)
                    msg = CompressedImage(header=header, format=compressed, data=payload)
                else:
                    data, step = encode_pixels(rgb, encoding)
                    msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding=encoding,
                                is_bigendian=0, step=step, data=data)
                writer.write(conns[k], stamp, ts.serialize_cdr(msg, msgtype))
                count, last = count + 1, max(last, stamp)
                counts_by_topic[out_topics[k]] += 1
                if bar is not None:
                    bar.update()
    except Exception:
        import shutil

        shutil.rmtree(out, ignore_errors=True)  # never leave a half-written bag behind
        raise
    finally:
        if bar is not None:
            bar.close()
    if metadata_version == 5:
        rewrite_metadata_v5(out)
    return BagSummary(out, out_topics[0], msgtype, count, start, last - start, storage, metadata_version,
                      counts_by_topic)


def rewrite_metadata_v5(bag_dir: str | Path) -> None:
    """Rewrite a rosbags-written ``metadata.yaml`` (version 8 or 9) as version 5, the layout Humble writes.

    Humble's rosbag2 (0.15.x) parses ``offered_qos_profiles`` as a YAML *string*; version 9 stores a list there,
    which Humble rejects. Version 5 keeps exactly the keys Humble reads (the storage files are unchanged);
    Jazzy, Kilted and rosbags read version 5 too. Profiles are kept when they are a string, else dropped (the
    player then uses its default QoS)."""
    import yaml

    path = Path(bag_dir) / "metadata.yaml"
    if not path.is_file():
        raise BagError(f"{path} not found: not a rosbag2 directory")
    doc = yaml.safe_load(path.read_text())
    info = doc.get("rosbag2_bagfile_information") if isinstance(doc, dict) else None
    if not isinstance(info, dict):
        raise BagError(f"{path} has no rosbag2_bagfile_information")
    topics = []
    for entry in info.get("topics_with_message_count", []):
        meta = entry["topic_metadata"]
        qos = meta.get("offered_qos_profiles", "")
        topics.append({"topic_metadata": {"name": meta["name"], "type": meta["type"],
                                          "serialization_format": meta["serialization_format"],
                                          "offered_qos_profiles": qos if isinstance(qos, str) else ""},
                       "message_count": int(entry["message_count"])})
    keep = ("storage_identifier", "duration", "starting_time", "message_count", "compression_format",
            "compression_mode", "relative_file_paths", "files")
    missing = [k for k in keep if k not in info]
    if missing:
        raise BagError(f"{path} lacks {', '.join(missing)}; cannot rewrite it as version 5")
    v5 = {"version": 5, **{k: info[k] for k in keep}, "topics_with_message_count": topics}
    path.write_text(yaml.safe_dump({"rosbag2_bagfile_information": v5}, sort_keys=False))


# ------------------------------------------------------------------------------------------------------- read
def resolve_bag(path: str | Path) -> Path:
    """A bag directory with metadata.yaml, or a single ``.mcap``/``.db3`` file (also one found alone in a
    directory without metadata.yaml, as some tools write)."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag {p} does not exist")
    if p.is_file():
        if p.suffix not in (".mcap", ".db3"):
            raise BagError(f"{p} is not a rosbag2 storage file (.mcap or .db3)")
        return p
    if (p / "metadata.yaml").is_file():
        return p
    files = sorted(p.glob("*.mcap")) + sorted(p.glob("*.db3"))
    if len(files) == 1:
        return files[0]
    raise BagError(f"{p} is not a rosbag2 bag: no metadata.yaml" + (f" and {len(files)} storage files" if files else
                                                                     " and no .mcap/.db3 file"))


class BagReader:
    """Context manager over ``AnyReader``: topic list, message counts and raw (topic, type, time, CDR) tuples."""

    def __init__(self, path: str | Path) -> None:
        self.path = resolve_bag(path)
        self._reader: Any = None

    def __enter__(self) -> BagReader:
        from rosbags.highlevel import AnyReader

        try:
            self._reader = AnyReader([self.path], default_typestore=_typestore())
            self._reader.open()
        except Exception as exc:  # rosbags raises several reader error types
            raise BagError(f"cannot open bag {self.path}: {exc}") from exc
        if not self._reader.is2:
            raise BagError(f"{self.path} is a ROS 1 bag; only ROS 2 bags are supported")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def topics(self) -> dict[str, str]:
        return {c.topic: c.msgtype for c in self._reader.connections}

    def count(self, topics: Iterable[str] | None = None) -> int:
        wanted = None if topics is None else set(topics)
        return sum(c.msgcount for c in self._reader.connections if wanted is None or c.topic in wanted)

    @property
    def duration_ns(self) -> int:
        return int(self._reader.duration)

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        wanted = None if topics is None else set(topics)
        conns = [c for c in self._reader.connections if wanted is None or c.topic in wanted]
        if not conns:
            return
        for conn, timestamp, raw in self._reader.messages(connections=conns):
            yield conn.topic, conn.msgtype, int(timestamp), raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self._reader.deserialize(raw, msgtype)


def image_topics(bag: str | Path) -> dict[str, str]:
    """Image and CompressedImage topics of a bag -> message type."""
    with BagReader(bag) as reader:
        return {t: m for t, m in sorted(reader.topics.items()) if m in IMAGE_TYPES}


def _decode_image(msg: Any, msgtype: str) -> np.ndarray:
    from ..image_codec import decode_compressed, image_to_array

    if msgtype == COMPRESSED_TYPE:
        return decode_compressed(msg.format, msg.data)
    return np.ascontiguousarray(image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.data, "rgb"))


def _image_topic(reader: BagReader, topic: str | None) -> str:
    available = {t: m for t, m in reader.topics.items() if m in IMAGE_TYPES}
    if topic is None:
        if len(available) != 1:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(available.items())) or "none"
            raise BagError(f"{reader.path}: choose an image topic; image topics in the bag: {listing}")
        return next(iter(available))
    if topic not in available:
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(reader.topics.items())) or "none"
        raise BagError(f"{reader.path}: no Image/CompressedImage topic {topic!r}; topics: {listing}")
    return topic


def bag_image_times(bag_dir: str | Path, topic: str | None = None) -> list[int]:
    """Receive times (ns) of the image topic's messages, in bag order (nothing is deserialized)."""
    with BagReader(bag_dir) as reader:
        return [timestamp for _, _, timestamp, _ in reader.messages([_image_topic(reader, topic)])]


def iter_bag_images(bag_dir: str | Path, topic: str | None = None, limit: int | None = None,
                    indices: set[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(receive time in ns, RGB uint8 HxWx3)`` for an Image or CompressedImage topic of a bag: the first
    ``limit`` messages, or (``indices``) only the messages at those positions.

    Without ``topic`` the bag must hold exactly one image topic."""
    from ..image_codec import ImageDecodeError

    with BagReader(bag_dir) as reader:
        topic = _image_topic(reader, topic)
        last = max(indices) if indices else None
        for i, (_, msgtype, timestamp, raw) in enumerate(reader.messages([topic])):
            if (limit is not None and i >= limit) or (last is not None and i > last):
                return
            if indices is not None and i not in indices:
                continue
            try:
                image = _decode_image(reader.deserialize(raw, msgtype), msgtype)
            except ImageDecodeError as exc:
                raise BagError(f"{reader.path} {topic} message {i}: {exc}") from exc
            yield timestamp, image
