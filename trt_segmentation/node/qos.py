"""The image QoS profile, defined once: the node's camera subscriptions (in-process and in the I/O process) and
the bag player's publishers take it. The camera subscription itself, made once for both programs: serialized where
rclpy can, its incompatible-QoS event turned into the line the diagnostics show. rclpy is imported when a profile
or a subscription is made. Also the one wait for publishers' subscribers to match, which the bag player, the
benchmarks and the tests share."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Tuple

from ..errors import InputError

#: image reliabilities a profile can have (the node's ``qos_reliability`` values)
RELIABILITIES = ("best_effort", "reliable")


def image_qos(reliability: str, depth: int) -> Any:
    """Keep last ``depth``, volatile, ``reliability`` 'reliable' or 'best_effort' (else ValueError)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    policies = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
    if reliability not in RELIABILITIES:
        raise InputError(f"qos must be one of {', '.join(RELIABILITIES)}, got {reliability!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policies[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def subscribe_images(node: Any, msg_type: Any, topic: str, callback: Callable[[Any], None], reliability: str,
                     depth: int, on_incompatible: Callable[[str], None],
                     warn: Callable[[str], None] = lambda text: None) -> Tuple[Any, bool]:
    """``node``'s camera subscription to ``topic`` with the image QoS; (subscription, serialized). It hands
    ``callback`` the serialized bytes (raw=True: no Python message object per frame); where this rclpy cannot, it
    hands over message objects and says so through ``warn`` (either way frames.decode_message reads them). A
    publisher with incompatible QoS calls ``on_incompatible`` with the line that names the topic, the policy and
    the fix."""
    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks  # type: ignore[no-redef,unused-ignore]

    resolved = node.resolve_topic_name(topic)

    def incompatible(event: Any) -> None:
        from rclpy.qos import QoSPolicyKind

        try:
            policy = QoSPolicyKind(event.last_policy_kind).name
        except ValueError:
            policy = str(event.last_policy_kind)
        on_incompatible(f"a publisher of {resolved} has incompatible QoS ({policy}; {event.total_count} so far): "
                        f"this node subscribes {reliability}; set qos_reliability to match the camera")

    events = SubscriptionEventCallbacks(incompatible_qos=incompatible)
    qos = image_qos(reliability, depth)
    try:
        return node.create_subscription(msg_type, topic, callback, qos, event_callbacks=events, raw=True), True
    except TypeError:
        warn("this rclpy cannot subscribe to serialized messages (raw=True): converting every frame to a Python "
             "message object, which costs milliseconds per large frame")
        return node.create_subscription(msg_type, topic, callback, qos, event_callbacks=events), False


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


__all__ = ["RELIABILITIES", "image_qos", "subscribe_images", "wait_until_subscribed"]
