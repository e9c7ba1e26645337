#!/usr/bin/env python3
"""Soak the segmentation node: a single-camera node and a 4-camera node side by side for a long run (30 minutes by
default), each fed by independent camera processes at a steady rate over real DDS on loopback.

Every --sample-s seconds it records the resident memory of each node process (the inference process and every
camera I/O process) and the /dev/shm frame rings the nodes own; at the end, each camera's counts from /diagnostics
(received = processed + dropped + failed). The model is near-free (labels = one input channel), so the soak is
about the node's own work. Writes to --out: soak.md (tables), soak.json (every sample), soak_rss.png (RSS over
time), the nodes' and cameras' logs.

  tools/soak_node.py                                   # 30 minutes, 256x512 at 30 Hz
  tools/soak_node.py --seconds 120 --out /tmp/soak     # a two-minute rehearsal
Keep DDS on loopback (scripts/env.sh sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_LOCALHOST_ONLY=1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import parse_size  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(256, 512), help="camera frame size HxW (default 256x512)")
    p.add_argument("--rate", type=float, default=30.0, help="frames per second of each camera (default 30)")
    p.add_argument("--seconds", type=float, default=1800.0, help="how long the cameras publish (default 1800)")
    p.add_argument("--sample-s", type=float, default=5.0, help="seconds between memory samples (default 5)")
    p.add_argument("--domains", type=int, nargs=2, default=(161, 162), metavar=("ONE", "FOUR"),
                   help="ROS domain ids of the single-camera and the 4-camera configuration (default 161 162: above "
                        "the 1-100 the tests claim, so a soak never shares a domain with a test run)")
    p.add_argument("--out", type=Path, default=Path("soak_output"), help="output folder (default soak_output)")
    return p


def main(argv: list | None = None) -> int:
    args = build_parser().parse_args(argv)
    from harness.soak import run

    run(args.size, args.rate, args.seconds, args.sample_s, args.out, tuple(args.domains))
    return 0


if __name__ == "__main__":
    sys.exit(main())
