"""What publishing a label image costs the publishing process's interpreter lock: rclpy's ``publish(bytes)`` (the
serialized message built, then copied under the GIL) against the node's ImagePublisher (the middleware's copy
with the GIL released; trt_segmentation/node/image_publisher.py).

One process publishes mono8 label images of the given size as fast as it can for a few seconds per path while a
second Python thread counts loop turns (standing in for the node's converter); a subscriber process takes every
message it can (raw, best effort) so the middleware really delivers. Printed, from one run: publishes/s, the
counting thread's turns/s, and the ratios of the direct path to rclpy's. DDS stays on loopback (scripts/env.sh).

    python -m harness.publish_gil --size 1024x2048 --seconds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from typing import Callable, Dict

import numpy as np

from trt_segmentation.cli import parse_size

TOPIC = "/publish_gil/labels"


def subscriber(seconds: float) -> None:
    """Take every label message offered for ``seconds`` (raw, best effort); print how many arrived."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("publish_gil_listener")
    count = [0]

    def take(_msg: bytes) -> None:
        count[0] += 1

    node.create_subscription(Image, TOPIC, take, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
                             raw=True)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(f"listener received {count[0]} messages", flush=True)
    os._exit(0)  # noqa: SLF001 - a benchmark helper: no teardown to wait for


def measure(publish: Callable[[], None], seconds: float) -> Dict[str, float]:
    """Publish for ``seconds`` while a second thread counts; publishes/s and the counter's turns/s."""
    stop = threading.Event()
    turns = [0]

    def count() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        turns[0] = n

    thread = threading.Thread(target=count)
    thread.start()
    published = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        publish()
        published += 1
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    return {"published_per_s": published / elapsed, "turns_per_s": turns[0] / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="label image HxW (default 1024x2048)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per path and per round (default 3)")
    parser.add_argument("--listener", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listener:
        subscriber(args.seconds)
        return 0
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from trt_segmentation.image_cdr import Header, ImageSerializer, Stamp
    from trt_segmentation.node.image_publisher import ImagePublisher

    height, width = args.size
    rounds = 2
    listener = subprocess.Popen([sys.executable, "-m", "harness.publish_gil", "--listener", "--seconds",
                                 str(3 + 2 * rounds * (args.seconds + 0.5) + 3)])
    rclpy.init()
    node = rclpy.create_node("publish_gil")
    sys.setswitchinterval(0.0005)  # the node's (ros_node.SWITCH_INTERVAL_S)
    raw = node.create_publisher(Image, TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    direct = ImagePublisher(raw, "mono8")
    if not direct.direct:
        print("this rclpy does not expose its publishers to rcl: nothing to compare", file=sys.stderr)
        return 1
    serializer = ImageSerializer("mono8")
    header = Header(Stamp(1, 2), b"camera")
    labels = np.random.default_rng(0).integers(0, 19, (height, width), dtype=np.uint8)
    time.sleep(3)  # discovery: the listener matched before the first round
    idle = measure(lambda: time.sleep(0.0005), args.seconds)
    results: Dict[str, Dict[str, float]] = {}
    for _ in range(rounds):  # alternating, so a drift in the machine's load touches both paths alike
        for name, publish in (("rclpy publish(bytes)", lambda: raw.publish(serializer.serialize(header, labels))),
                              ("ImagePublisher (GIL released)", lambda: direct.publish(header, labels))):
            figures = measure(publish, args.seconds)
            for key, value in figures.items():
                results.setdefault(name, {}).setdefault(key, 0.0)
                results[name][key] += value / rounds
    listener.wait(timeout=60)
    print(f"\nmono8 {height}x{width} labels, {args.seconds:g} s x {rounds} rounds per path; a second thread counting "
          f"{idle['turns_per_s'] / 1e6:.2f} M turns/s beside a sleeping publisher")
    print("| path | publishes/s | ms a publish | counting thread, M turns/s | of its idle rate |")
    print("|---|---:|---:|---:|---:|")
    for name, figures in results.items():
        rate = figures["published_per_s"]
        print(f"| {name} | {rate:.0f} | {1e3 / rate:.3f} | {figures['turns_per_s'] / 1e6:.2f} | "
              f"{figures['turns_per_s'] / idle['turns_per_s']:.2f} |")
    old, new = results["rclpy publish(bytes)"], results["ImagePublisher (GIL released)"]
    print(f"\ndirect / rclpy: publishes/s {new['published_per_s'] / old['published_per_s']:.2f}x, the other "
          f"thread's turns {new['turns_per_s'] / old['turns_per_s']:.2f}x")
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
