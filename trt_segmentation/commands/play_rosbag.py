"""Play a ROS 2 bag (mcap or sqlite3, from ros2 bag, rosbags or trt_seg_make_rosbag) into a live ROS 2 graph.

Messages go out with their recorded timing (scaled by --rate), as the stored CDR bytes, through rclpy.
Examples:
    trt_seg_play_rosbag bags/street
    trt_seg_play_rosbag bags/street --rate 0.5 --loop --stamps now --remap /camera/image_raw:=/image
    trt_seg_play_rosbag bags/street --qos best_effort --wait-for-subscribers 1
    trt_seg_play_rosbag bags/street --ros-args -r __node:=front_player   # ROS arguments go last
A node with use_sim_time:=true measures the recorded stamps against the bag's time on /clock (ros2 bag play --clock):
    trt_seg_play_rosbag bags/street --stamps recorded --clock
A bag of several cameras (trt_seg_make_rosbag --cameras) plays every topic, interleaved by recorded time:
    trt_seg_play_rosbag bags/three --remap /cameras/front/image:=/segmentation/front/image \
        /cameras/left/image:=/segmentation/left/image
Stop with Ctrl-C; the number of messages sent is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli
from ..apps.bag_player import CLOCK_HZ, STAMPS, check_options

TOOL = "play_rosbag"


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(this tool's arguments, the ROS arguments from ``--ros-args`` on). Only the latter reach rclpy.init: given
    the tool's own argv, rcl reads ``--remap /a:=/b`` as a legacy remap rule and warns that the syntax is
    deprecated."""
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser(TOOL, __doc__)
    parser.add_argument("bag", type=Path, help="bag directory (with metadata.yaml) or a single .mcap/.db3 file")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="play only these topics (default all)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0 = recorded timing)")
    parser.add_argument("--loop", action="store_true", help="repeat the bag until interrupted")
    parser.add_argument("--remap", nargs="+", action="extend", metavar="FROM:=TO",
                        help="rename topics, e.g. /a:=/b; one rule per topic, several after one --remap or repeated")
    parser.add_argument("--stamps", choices=STAMPS, default="recorded",
                        help="header stamps: as recorded (old spelling: keep), or rewritten to the current time "
                             "(default recorded)")
    parser.add_argument("--clock", type=float, nargs="?", const=CLOCK_HZ, default=0.0, metavar="HZ",
                        help=f"publish the bag's time on /clock (rosgraph_msgs/Clock, as ros2 bag play --clock): each "
                             f"message's recorded time before it, and HZ ticks a second between (default {CLOCK_HZ:g}); "
                             "for nodes with use_sim_time:=true; needs --stamps recorded")
    parser.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable",
                        help="publisher reliability (default reliable; a best_effort subscriber matches both)")
    parser.add_argument("--depth", type=int, default=10, help="publisher history depth (default 10)")
    parser.add_argument("--wait-for-subscribers", type=int, default=0, metavar="N",
                        help="wait until every topic has N subscribers before starting (default 0: start at once)")
    parser.add_argument("--wait-timeout", type=float, default=30.0, help="seconds to wait for subscribers (default 30)")
    parser.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                        help="sleep this long before playing (after --wait-for-subscribers; default 0)")
    parser.add_argument("--max-messages", type=int, default=None, metavar="N", help="stop after N messages")
    parser.add_argument("--info", action="store_true", help="only list the bag's topics and message counts")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


@cli.command
def main(argv: list[str] | None = None) -> int:
    own_args, ros_args = split_ros_args(sys.argv[1:] if argv is None else list(argv))
    args = cli.parse_args(build_parser(), own_args, TOOL)
    from ..apps.bag_player import play_bag
    from ..data.bags import BagReader

    try:
        if args.info:
            with BagReader(args.bag) as reader:
                print(f"{reader.path}: {reader.count()} messages, {reader.duration_ns / 1e9:.2f} s")
                for topic, msgtype in sorted(reader.topics.items()):
                    print(f"  {topic}  {msgtype}  {reader.count([topic])} messages")
            return 0
        check_options(args.rate, args.stamps, args.clock)  # before rclpy: its start-up may log
        import rclpy

        rclpy.init(args=[sys.argv[0], *ros_args])  # play_bag uses this context and leaves it running
        try:
            play_bag(args.bag, topics=args.topics, rate=args.rate, loop=args.loop, remap=args.remap, stamps=args.stamps,
                     qos=args.qos, depth=args.depth, progress=not args.quiet,
                     wait_for_subscribers=args.wait_for_subscribers, wait_timeout=args.wait_timeout,
                     max_messages=args.max_messages, delay=args.delay, clock_hz=args.clock)
        finally:
            rclpy.try_shutdown()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
