"""The image QoS profile, defined once: the node's camera subscriptions (in-process and in the I/O process) and
the bag player's publishers (data/bag_player.py) take it. rclpy is imported when a profile is made. Also the one
wait for publishers' subscribers to match, which the bag player, the benchmarks and the tests share."""

from __future__ import annotations

import time
from typing import Any, Iterable

#: image reliabilities a profile can have (the node's ``qos_reliability`` values)
RELIABILITIES = ("best_effort", "reliable")


def image_qos(reliability: str, depth: int) -> Any:
    """Keep last ``depth``, volatile, ``reliability`` 'reliable' or 'best_effort' (else ValueError)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    policies = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
    if reliability not in policies:
        raise ValueError(f"qos must be 'reliable' or 'best_effort', got {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policies[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def wait_until_subscribed(publishers: Iterable[Any], timeout_s: float, minimum: int = 1) -> bool:
    """Wait until every publisher has matched at least ``minimum`` subscriptions (polled every 20 ms); False when
    ``timeout_s`` passed first. Matching is seen on the publishing side first: callers that need the way back
    (the subscriber's side) settled too sleep a little after a True."""
    publishers = list(publishers)
    deadline = time.monotonic() + timeout_s
    while any(p.get_subscription_count() < minimum for p in publishers):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


__all__ = ["RELIABILITIES", "image_qos", "wait_until_subscribed"]
