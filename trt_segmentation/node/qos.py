"""The image QoS profile, defined once: the node's camera subscriptions (in-process and in the I/O process) and
the bag player's publishers (data/bag_player.py) take it. rclpy is imported when a profile is made."""

from __future__ import annotations

from typing import Any

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


__all__ = ["RELIABILITIES", "image_qos"]
