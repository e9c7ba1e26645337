#!/usr/bin/env python3
"""Write a ROS 2 bag of camera images (sensor_msgs/msg/Image, or CompressedImage) without a ROS install.

Frames come from one source: an image folder, a Cityscapes-layout split, or freshly generated street scenes.
Examples:
    python tools/make_rosbag.py bags/street --generate 40 --size 512x1024 --fps 10
    python tools/make_rosbag.py bags/val --cityscapes data/street --split val --encoding bgr8 --storage sqlite3
    python tools/make_rosbag.py bags/folder --images my_pictures/ --size 720x1280 --compressed jpeg
    python tools/make_rosbag.py bags/humble --generate 20 --metadata-version 5   # readable by Humble's ros2 bag
The bag directory gets <name>.mcap (or .db3) plus metadata.yaml; `ros2 bag info <dir>` describes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import parse_size  # noqa: E402
from trt_segmentation.data.bags import (  # noqa: E402
    DEFAULT_TOPIC,
    METADATA_VERSIONS,
    STORAGES,
    WRITE_ENCODINGS,
    BagError,
    write_image_bag,
)
from trt_segmentation.image_codec import resize_image  # noqa: E402


def _resize(rgb: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or rgb.shape[:2] == size:
        return rgb
    return resize_image(rgb, *size)


def frames_from_args(args: argparse.Namespace) -> tuple[Iterator[np.ndarray], int]:
    """(frame iterator, frame count) for the chosen source; frames are produced lazily."""
    if args.generate is not None:
        from trt_segmentation.data.street_scenes import render_scene, scene_seed

        h, w = args.size or (512, 1024)
        count = args.generate
        return (render_scene(scene_seed(args.seed, "bag", i), h, w)[0] for i in range(count)), count
    if args.cityscapes is not None:
        from trt_segmentation.data.cityscapes import CityscapesSplit
        from trt_segmentation.data.image_folder import read_rgb

        split = CityscapesSplit(args.cityscapes, args.split)
        paths = split.image_paths[: args.limit] if args.limit else split.image_paths
        return (_resize(read_rgb(p), args.size) for p in paths), len(paths)
    from trt_segmentation.data.image_folder import list_images, read_rgb

    paths = list_images(args.images)
    if not paths:
        raise BagError(f"no .png/.jpg images in {args.images}")
    paths = paths[: args.limit] if args.limit else paths
    return (_resize(read_rgb(p), args.size) for p in paths), len(paths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="bag directory to create (must not exist unless --overwrite)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="DIR", help="folder of .png/.jpg images (sorted by name)")
    source.add_argument("--cityscapes", type=Path, metavar="ROOT", help="Cityscapes-layout root (see --split)")
    source.add_argument("--generate", type=int, metavar="N", help="render N procedural street scenes")
    parser.add_argument("--split", default="val", help="split of --cityscapes (default val)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --generate (default 0)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use at most N frames")
    parser.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                        help="resize frames to HEIGHTxWIDTH (default: keep; --generate defaults to 512x1024)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the recorded timestamps (default 10)")
    parser.add_argument("--encoding", choices=WRITE_ENCODINGS, default="rgb8", help="Image encoding (default rgb8)")
    parser.add_argument("--compressed", choices=("jpeg", "png"), default=None,
                        help="write sensor_msgs/CompressedImage on <topic>/compressed instead of raw Images")
    parser.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1-95 (default 90)")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"image topic (default {DEFAULT_TOPIC})")
    parser.add_argument("--frame-id", default="camera", help="header.frame_id (default camera)")
    parser.add_argument("--storage", choices=STORAGES, default="mcap", help="storage plugin (default mcap)")
    parser.add_argument("--metadata-version", type=int, choices=METADATA_VERSIONS, default=9,
                        help="metadata.yaml version: 9 (Jazzy+), 8, or 5 (Humble's ros2 bag reads it; default 9)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        frames, count = frames_from_args(args)
        summary = write_image_bag(
            args.output, frames, fps=args.fps, topic=args.topic, encoding=args.encoding, frame_id=args.frame_id,
            storage=args.storage, compressed=args.compressed, jpeg_quality=args.jpeg_quality,
            metadata_version=args.metadata_version, overwrite=args.overwrite, progress=not args.quiet, total=count)
    except (BagError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
