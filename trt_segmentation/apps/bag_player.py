"""Play a ROS 2 bag into a live graph with rclpy (``trt_seg_play_rosbag``): topic selection, ``--remap``, QoS,
restamping, and the bag's time on ``/clock`` for nodes with ``use_sim_time`` (as ``ros2 bag play --clock``).

:func:`play_bag` hands the stored CDR bytes to rclpy's serialized publishing (``Publisher.publish(bytes)``), so a
6 MB frame costs one memory copy and no Python-level (de)serialisation; with ``stamps='now'`` it rewrites the 8 bytes
of ``header.stamp`` in place. Its publishers take the node's image QoS (node/qos.py). rclpy is imported only when
playing.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..data.bags import BagError, BagReader, _typestore
from ..node.qos import image_qos, wait_until_subscribed

_CDR_HEADER_FORMATS = {b"\x00\x00": ">iI", b"\x00\x01": "<iI"}  # plain CDR big / little endian
#: header stamps: as recorded ('keep': the old spelling of 'recorded'), or the player's clock at publish time
STAMPS = ("recorded", "keep", "now")
CLOCK_TOPIC = "/clock"
CLOCK_HZ = 40.0  # ros2 bag play --clock's rate when none is given


def restamp_cdr(raw: bytes | bytearray, sec: int, nanosec: int) -> bytes:
    """Return CDR bytes of a message whose first field is ``std_msgs/Header`` with ``header.stamp`` replaced.

    After the 4-byte encapsulation header, ``stamp.sec`` (int32) and ``stamp.nanosec`` (uint32) are the first
    8 bytes of the body in every ROS 2 message that starts with a Header, so the rest stays untouched."""
    fmt = _CDR_HEADER_FORMATS.get(bytes(raw[:2]))
    if fmt is None or len(raw) < 12:
        raise BagError(f"cannot rewrite the stamp: unsupported CDR encapsulation {bytes(raw[:2])!r}")
    buf = bytearray(raw)
    struct.pack_into(fmt, buf, 4, sec, nanosec)
    return bytes(buf)


def _starts_with_header(msgtype: str) -> bool:
    try:
        fields = _typestore().fielddefs[msgtype][1]
    except KeyError:
        return False
    return bool(fields) and fields[0][0] == "header" and "std_msgs/msg/Header" in str(fields[0][1])


def _message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class (its package must be installed)."""
    import importlib

    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def parse_remaps(items: Iterable[str] | dict[str, str] | None) -> dict[str, str]:
    """``['/from:=/to', ...]`` (ros2 bag play --remap syntax) -> {from: to}."""
    if items is None:
        return {}
    if isinstance(items, dict):
        return dict(items)
    out = {}
    for item in items:
        src, sep, dst = item.partition(":=")
        if not sep or not src or not dst:
            raise BagError(f"remap must look like /from:=/to, got {item!r}")
        out[src] = dst
    return out


def make_qos(qos: str | Any = "reliable", depth: int = 10) -> Any:
    """'reliable' | 'best_effort' (or an rclpy QoSProfile, returned as is) -> the node's image QoS profile
    (node/qos.py: keep last ``depth``, volatile)."""
    from rclpy.qos import QoSProfile

    if isinstance(qos, QoSProfile):
        return qos
    try:
        return image_qos(qos, depth)
    except ValueError as exc:
        raise BagError(str(exc)) from None


class ClockPublisher:
    """``/clock`` (rosgraph_msgs/Clock) on ``node``, reliable, keep last 10: rclpy's time source subscribes best
    effort, which matches it, and a reliable subscriber gets every tick."""

    def __init__(self, node: Any) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._message = Clock
        self.publisher = node.create_publisher(Clock, CLOCK_TOPIC,
                                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))

    def publish(self, time_ns: int) -> None:
        msg = self._message()
        msg.clock.sec, msg.clock.nanosec = divmod(int(time_ns), 10**9)
        self.publisher.publish(msg)


def check_options(rate: float, stamps: str, clock_hz: float) -> None:
    """BagError for a playback rate, stamps or clock that :func:`play_bag` cannot play with (checked before rclpy
    starts, so the command's error is its only line)."""
    if rate <= 0:
        raise BagError(f"rate must be > 0, got {rate}")
    if stamps not in STAMPS:
        raise BagError(f"stamps must be one of {', '.join(STAMPS)}, got {stamps!r}")
    if clock_hz < 0:
        raise BagError(f"clock rate must be >= 0 Hz (0: no /clock), got {clock_hz}")
    if clock_hz and stamps == "now":
        raise BagError("the clock publishes the recorded time: use it with recorded stamps (with 'now' the header "
                       "stamps would be the wall clock's, not the bag's)")


def play_bag(
    bag_dir: str | Path, topics: Iterable[str] | None = None, rate: float = 1.0, loop: bool = False,
    remap: Iterable[str] | dict[str, str] | None = None, stamps: str = "recorded", qos: str | Any = "reliable",
    depth: int = 10, progress: bool = True, node: Any = None, wait_for_subscribers: int = 0,
    wait_timeout: float = 10.0, max_messages: int | None = None, should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = print, delay: float = 0.0, clock_hz: float = 0.0,
) -> int:
    """Publish the bag's messages with their recorded timing divided by ``rate``; return how many were sent.

    ``loop`` repeats until interrupted (or ``max_messages``/``should_stop``). ``stamps='now'`` rewrites
    ``header.stamp`` to the node's clock at publish time (types without a Header are sent as recorded);
    ``'recorded'`` (or ``'keep'``) sends them as recorded. ``clock_hz > 0`` publishes the bag's time on ``/clock``
    (rosgraph_msgs/Clock), as ``ros2 bag play --clock``: the recorded time of each message just before it, and
    ``clock_hz`` ticks a second in between (a loop's next pass starts the bag's time again), so a node with
    ``use_sim_time`` measures the recorded stamps against the bag's time; it needs ``stamps='recorded'``.
    ``wait_for_subscribers=N`` waits (up to ``wait_timeout`` s) until each topic's publisher has N subscribers
    (and ``/clock``'s, with ``clock_hz``, at least 1), so that nothing is lost to discovery; ``delay`` seconds more (after any waiting) give the subscribers' side time to
    match the publishers too, which best-effort subscribers need to get the first messages. Without ``node`` a node named ``bag_player`` is created (and rclpy initialised
    and shut down if it was not running)."""
    check_options(rate, stamps, clock_hz)
    import rclpy
    from rclpy.duration import Duration

    remaps = parse_remaps(remap)
    profile = make_qos(qos, depth)
    own_rclpy = node is None and not rclpy.ok()
    if own_rclpy:
        rclpy.init()
    own_node = node is None
    if own_node:
        node = rclpy.create_node("bag_player")
    sent = 0
    bar = None
    publishers: dict[str, Any] = {}
    clock: ClockPublisher | None = None
    try:
        with BagReader(bag_dir) as reader:
            available = reader.topics
            selected = sorted(available) if topics is None else list(topics)
            unknown = [t for t in selected if t not in available]
            if unknown:
                raise BagError(f"{reader.path}: no topic {', '.join(unknown)}; topics: {', '.join(sorted(available))}")
            stray = sorted(set(remaps) - set(selected))
            if stray:
                raise BagError(f"{reader.path}: --remap names {', '.join(stray)}, not a played topic; topics: "
                               f"{', '.join(selected)}")
            restamp: dict[str, bool] = {}
            for t in selected:
                try:
                    cls = _message_class(available[t])
                except (ImportError, AttributeError, ValueError):
                    if log:
                        log(f"skipping {t}: message type {available[t]} is not installed for rclpy")
                    continue
                publishers[t] = node.create_publisher(cls, remaps.get(t, t), profile)
                restamp[t] = stamps == "now" and _starts_with_header(available[t])
            if not publishers:
                raise BagError(f"{reader.path}: nothing to play")
            if clock_hz:
                clock = ClockPublisher(node)
            waited = [*publishers.values(), *([clock.publisher] if clock is not None else [])]
            if wait_for_subscribers > 0:  # N on every topic, at least 1 on /clock (the time source of any number)
                waited_from = time.monotonic()
                subscribed = wait_until_subscribed(publishers.values(), wait_timeout, wait_for_subscribers)
                if subscribed and clock is not None:
                    subscribed = wait_until_subscribed(
                        [clock.publisher], max(0.0, wait_timeout - (time.monotonic() - waited_from)), 1)
                if not subscribed:
                    raise BagError(f"no subscriber on {', '.join(p.topic_name for p in waited)} "
                                   f"within {wait_timeout:.0f} s")
                time.sleep(0.2)  # let the subscriber side finish matching too
            if delay > 0:
                time.sleep(delay)
            total = reader.count(publishers)
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=None if loop else total, desc="playing", unit="msg")
            if log:
                names = ", ".join(f"{t}->{remaps[t]}" if t in remaps else t for t in publishers)
                log(f"playing {total} messages from {reader.path} on {names} at rate {rate:g}"
                    + (" (looping)" if loop else "") + (f", the bag's time on {CLOCK_TOPIC} at {clock_hz:g} Hz"
                                                        if clock_hz else ""))
            per_topic = max(reader.count([t]) for t in publishers)  # loop gap: one frame period of the busiest topic
            period_ns = reader.duration_ns / (per_topic - 1) if per_topic > 1 else 1e8
            offset_ns = 0  # bag time added per loop pass
            wall0: float | None = None
            bag0 = 0
            stopped = False
            while not stopped:
                last = None
                for topic, _, timestamp, raw in reader.messages(publishers):
                    if (should_stop is not None and should_stop()) or (max_messages is not None and sent >= max_messages):
                        stopped = True
                        break
                    if wall0 is None:
                        wall0, bag0 = time.monotonic(), timestamp
                    due = wall0 + (timestamp + offset_ns - bag0) / 1e9 / rate
                    while clock is not None and due - time.monotonic() > 1.0 / clock_hz:  # the bag's time, ticking
                        time.sleep(1.0 / clock_hz)
                        clock.publish(min(timestamp, bag0 - offset_ns + int((time.monotonic() - wall0) * rate * 1e9)))
                    lag = due - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)
                    if clock is not None:
                        clock.publish(timestamp)  # the bag's time is this message's recorded time before it goes out
                    data = raw if isinstance(raw, bytes) else bytes(raw)
                    if restamp[topic]:
                        now = node.get_clock().now().seconds_nanoseconds()
                        data = restamp_cdr(data, int(now[0]), int(now[1]))
                    publishers[topic].publish(data)
                    sent += 1
                    last = timestamp
                    if bar is not None:
                        bar.update()
                if not loop or last is None:
                    break
                offset_ns += last - bag0 + int(period_ns)  # the next pass starts one frame period after this one
            reliable = profile.reliability.name == "RELIABLE"
            for pub in waited if reliable else waited[len(publishers):]:  # reliable subscribers receive the tail
                pub.wait_for_all_acked(Duration(seconds=min(wait_timeout, 5.0)))
            if not reliable:  # no acknowledgements to wait for: stay in the graph a moment so the last sample is delivered
                time.sleep(0.5)
        return sent
    finally:
        if bar is not None:
            bar.close()
        if log:
            log(f"sent {sent} messages")
        for pub in [*publishers.values(), *([clock.publisher] if clock is not None else [])]:
            node.destroy_publisher(pub)
        if own_node:
            node.destroy_node()
        if own_rclpy and rclpy.ok():
            rclpy.shutdown()
