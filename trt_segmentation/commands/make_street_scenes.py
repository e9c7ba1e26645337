"""Generate procedural street scenes with exact labels in the Cityscapes layout (a test/demo domain only).

Example: 300 training and 100 validation scenes at 512x1024 with 2 processes:
    trt_seg_make_street_scenes data/street --train 300 --val 100 --size 512x1024 --workers 2
Numbers measured on these scenes say nothing about accuracy on Cityscapes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import cli

TOOL = "make_street_scenes"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser(TOOL, __doc__)
    parser.add_argument("root", type=Path, help="output dataset root (leftImg8bit/ and gtFine/ are created inside)")
    parser.add_argument("--train", type=int, default=0, metavar="N", help="number of training scenes (default 0)")
    parser.add_argument("--val", type=int, default=0, metavar="N", help="number of validation scenes (default 0)")
    parser.add_argument("--test", type=int, default=0, metavar="N", help="number of test scenes (default 0)")
    cli.add_size(parser, default=(1024, 2048), help="image size")
    parser.add_argument("--seed", type=int, default=0, help="base seed; each split and index gets its own scene (default 0)")
    parser.add_argument("--city", default="synthcity", help="city folder / file-name prefix (default synthcity)")
    parser.add_argument("--workers", type=int, default=1, help="processes to render with (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@cli.command
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, argv, TOOL)
    if args.train + args.val + args.test <= 0:
        parser.error("nothing to do: give --train, --val and/or --test counts")
    from ..data.street_scenes import write_street_split

    height, width = args.size
    for split, count in (("train", args.train), ("val", args.val), ("test", args.test)):
        if count <= 0:
            continue
        start = time.perf_counter()
        write_street_split(args.root, split, count, seed=args.seed, height=height, width=width, city=args.city,
                           workers=args.workers, progress=not args.quiet)
        print(f"{split}: {count} scenes of {height}x{width} in {time.perf_counter() - start:.1f} s -> "
              f"{args.root / 'leftImg8bit' / split / args.city}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
