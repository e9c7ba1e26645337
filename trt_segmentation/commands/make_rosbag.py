"""Write a ROS 2 bag of camera images (sensor_msgs/msg/Image, or CompressedImage) without a ROS install.

Frames come from one source: an image folder, a Cityscapes-layout split, or freshly generated street scenes.
Examples:
    trt_seg_make_rosbag bags/street --generate 40 --size 512x1024 --fps 10
    trt_seg_make_rosbag bags/val --cityscapes data/street --split val --encoding bgr8 --storage sqlite3
    trt_seg_make_rosbag bags/folder --images my_pictures/ --size 720x1280 --compressed jpeg
    trt_seg_make_rosbag bags/humble --generate 20 --metadata-version 5   # readable by Humble's ros2 bag
Several cameras (topics /cameras/<name>/image, frame_id <name>, N frames each, in time order across cameras):
    trt_seg_make_rosbag bags/three --generate 20 --cameras front left right --size 512x1024 --fps 10 \\
        --camera-size left=256x512 --camera-rate right=5
The bag directory gets <name>.mcap (or .db3) plus metadata.yaml; `ros2 bag info <dir>` describes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import cli
from ..errors import InputError

TOOL = "make_rosbag"
DEFAULT_SIZE = (512, 1024)  # --generate without --size


def _resize(rgb: Any, size: tuple[int, int] | None) -> Any:
    from ..image_codec import resize_image

    if size is None or rgb.shape[:2] == size:
        return rgb
    return resize_image(rgb, *size)


def frames_from_args(args: argparse.Namespace, size: tuple[int, int] | None = None,
                     camera: str | None = None) -> tuple[Iterator[Any], int]:
    """(frame iterator, frame count) for the chosen source at ``size`` (default --size); frames are produced
    lazily. Generated scenes differ per ``camera`` (a single-camera bag keeps the scenes it always had)."""
    from ..data.bags import BagError

    size = size or args.size
    if args.generate is not None:
        from ..data.street_scenes import render_scene, scene_seed

        h, w = size or DEFAULT_SIZE
        count = args.generate
        stream = "bag" if camera is None else f"bag-{camera}"
        return (render_scene(scene_seed(args.seed, stream, i), h, w)[0] for i in range(count)), count
    if args.cityscapes is not None:
        from ..data.cityscapes import CityscapesSplit
        from ..data.image_folder import read_rgb

        split = CityscapesSplit(args.cityscapes, args.split)
        paths = split.image_paths[: args.limit] if args.limit else split.image_paths
        return (_resize(read_rgb(p), size) for p in paths), len(paths)
    from ..data.image_folder import list_images, read_rgb

    paths = list_images(args.images)
    if not paths:
        raise BagError(f"no .png/.jpg images in {args.images}")
    paths = paths[: args.limit] if args.limit else paths
    return (_resize(read_rgb(p), size) for p in paths), len(paths)


def _per_camera(items: list[str], cameras: list[str], flag: str, parse: Any) -> dict[str, Any]:
    """['left=256x512', ...] -> {'left': (256, 512)}; every name must be one of --cameras."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in cameras:
            raise InputError(f"{flag} takes NAME=VALUE with NAME one of --cameras ({' '.join(cameras) or 'none'}), "
                             f"got {item!r}")
        try:
            out[name] = parse(value)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise InputError(f"{flag} {item}: {exc}") from None
    return out


def _rate(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise InputError(f"rate must be > 0 Hz, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from ..data.bags import DEFAULT_TOPIC, METADATA_VERSIONS, STORAGES, WRITE_ENCODINGS

    parser = cli.new_parser(TOOL, __doc__)
    parser.add_argument("output", type=Path, help="bag directory to create (must not exist unless --overwrite)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="DIR", help="folder of .png/.jpg images (sorted by name)")
    source.add_argument("--cityscapes", type=Path, metavar="ROOT", help="Cityscapes-layout root (see --split)")
    source.add_argument("--generate", type=int, metavar="N", help="render N procedural street scenes (per camera)")
    parser.add_argument("--split", default="val", help="split of --cityscapes (default val)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --generate (default 0)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N frames")
    cli.add_size(parser, help="resize frames to HEIGHTxWIDTH (default: keep; --generate defaults to 512x1024)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the recorded timestamps (default 10)")
    parser.add_argument("--encoding", choices=WRITE_ENCODINGS, default="rgb8", help="Image encoding (default rgb8)")
    parser.add_argument("--compressed", choices=("jpeg", "png"), default=None,
                        help="write sensor_msgs/CompressedImage on <topic>/compressed instead of raw Images")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1-95 (default 90)")
    parser.add_argument("--topic", default=None, help=f"image topic of a single-camera bag (default {DEFAULT_TOPIC})")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id of a single-camera bag (default camera)")
    parser.add_argument("--cameras", nargs="+", default=[], metavar="NAME",
                        help="several cameras, e.g. front left right: topics /cameras/<NAME>/image, frame_id NAME, "
                             "the same source (generated scenes differ per camera) at --size and --fps")
    parser.add_argument("--camera-size", action="append", default=[], metavar="NAME=HxW",
                        help="one camera's frame size instead of --size (repeatable)")
    parser.add_argument("--camera-rate", action="append", default=[], metavar="NAME=HZ",
                        help="one camera's frame rate instead of --fps (repeatable)")
    parser.add_argument("--storage", choices=STORAGES, default="mcap", help="storage plugin (default mcap)")
    parser.add_argument("--metadata-version", type=int, choices=METADATA_VERSIONS, default=9,
                        help="metadata.yaml version: 9 (Jazzy+), 8, or 5 (Humble's ros2 bag reads it; default 9)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@cli.command
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, argv, TOOL)
    cli.require_file(args.images, "image folder", folder=True)
    cli.require_file(args.cityscapes, "dataset root", folder=True)
    from ..data.bags import DEFAULT_TOPIC, CameraStream, camera_topic, write_camera_bag

    if args.cameras and args.topic:
        parser.error("--topic names the single camera's topic; with --cameras each camera is /cameras/<NAME>/image")
    if (args.camera_size or args.camera_rate) and not args.cameras:
        parser.error("--camera-size / --camera-rate need --cameras")
    if len(set(args.cameras)) != len(args.cameras):
        parser.error(f"--cameras names a camera twice: {' '.join(args.cameras)}")
    if args.cameras:
        sizes = _per_camera(args.camera_size, args.cameras, "--camera-size", cli.parse_size)
        rates = _per_camera(args.camera_rate, args.cameras, "--camera-rate", _rate)
        streams = []
        for name in args.cameras:
            frames, count = frames_from_args(args, sizes.get(name), camera=name)
            streams.append(CameraStream(camera_topic(name), frames, rates.get(name, args.fps), name, count))
    else:
        frames, count = frames_from_args(args)
        streams = [CameraStream(args.topic or DEFAULT_TOPIC, frames, args.fps, args.frame_id, count)]
    summary = write_camera_bag(
        args.output, streams, encoding=args.encoding, storage=args.storage, compressed=args.compressed,
        jpeg_quality=args.jpeg_quality, metadata_version=args.metadata_version, overwrite=args.overwrite,
        progress=not args.quiet)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
