"""node/image_publisher.py against real rclpy and Fast DDS: a publisher process sends label and colour images
through ImagePublisher (rcl called with the interpreter lock released, and rclpy's own publish as the fallback);
this process subscribes as any ROS tool would and checks every message field for field.

Also the publisher process's command line:
  python test/test_node_image_publisher.py --seed 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # the publisher process: the package and harness sit in the checkout's root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.topic_probe import TopicProbe  # noqa: E402
from trt_segmentation.image_cdr import Header, Stamp  # noqa: E402

FRAME_ID = "kamera_vorn_ü".encode()
SIZES = [(4, 6), (8, 10), (2, 3)]  # the buffer grows, then carries a shorter message
TOPICS = ("/pubtest/labels", "/pubtest/color", "/pubtest/fallback")


def expected(seed: int) -> list[tuple[Header, np.ndarray, np.ndarray]]:
    """Per message: its header, mono8 labels, and the (H, W, 3) colour array (a non-contiguous view)."""
    rng = np.random.default_rng(seed)
    out = []
    for index, (height, width) in enumerate(SIZES):
        labels = rng.integers(0, 19, (height, width), dtype=np.uint8)
        color = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)[:, :, ::-1]
        out.append((Header(Stamp(100 + index, 7 * index), FRAME_ID), labels, color))
    return out


def publish_main(seed: int) -> int:
    """Wait for this test's subscriber on every topic, send the messages, report what happened on stdout."""
    import rclpy
    from sensor_msgs.msg import Image

    from trt_segmentation.image_codec import ImageDecodeError
    from trt_segmentation.node.image_publisher import ImagePublisher
    from trt_segmentation.node.qos import wait_until_subscribed

    rclpy.init()
    node = rclpy.create_node("image_publisher_test")
    raw = [node.create_publisher(Image, topic, 10) for topic in TOPICS]
    labels_out = ImagePublisher(raw[0], "mono8")
    color_out = ImagePublisher(raw[1], "rgb8")
    fallback = ImagePublisher(raw[2], "mono8", direct=False)
    print(f"direct {labels_out.direct} {color_out.direct} {fallback.direct}", flush=True)
    wait_until_subscribed(raw, 20.0)
    try:
        labels_out.publish(Header(Stamp(1, 1), FRAME_ID), np.zeros((2, 2, 3), np.uint8))
    except ImageDecodeError as exc:
        print(f"refused: {exc}", flush=True)
    for header, labels, color in expected(seed):
        labels_out.publish(header, labels)
        color_out.publish(header, color)
        fallback.publish(header, labels)
    print("sent", flush=True)
    time.sleep(2)  # reliable delivery completes before the publisher goes
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def test_images_go_out_field_for_field_with_and_without_rclpy_s_publish() -> None:
    seed = 3
    with TopicProbe(TOPICS, name="image_publisher_listener") as probe:
        proc = subprocess.run([sys.executable, __file__, "--seed", str(seed)], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr[-3000:]
        probe.wait_for(lambda: all(probe.count(t) >= len(SIZES) for t in TOPICS), 10, "every message")
        time.sleep(0.3)
        received = {topic: probe.messages(topic) for topic in TOPICS}
    # on this rclpy the messages bypass rclpy's publish; the fallback was asked for
    assert "direct True True False" in proc.stdout
    # wrong pixels for the encoding: refused before anything was sent (each topic got exactly its messages)
    assert "refused: mono8 needs uint8 (H, W) pixels" in proc.stdout
    assert {topic: len(msgs) for topic, msgs in received.items()} == {topic: len(SIZES) for topic in TOPICS}
    for index, (header, labels, color) in enumerate(expected(seed)):
        for topic, encoding, pixels in ((TOPICS[0], "mono8", labels), (TOPICS[1], "rgb8", color),
                                        (TOPICS[2], "mono8", labels)):
            msg = received[topic][index]
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (header.stamp.sec, header.stamp.nanosec)
            assert msg.header.frame_id == FRAME_ID.decode()
            assert (msg.encoding, msg.height, msg.width, msg.is_bigendian) == (encoding, *labels.shape, 0)
            assert msg.step == labels.shape[1] * (1 if encoding == "mono8" else 3)
            assert bytes(msg.data) == np.ascontiguousarray(pixels).tobytes(), (topic, index)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="publisher process of test_node_image_publisher.py")
    parser.add_argument("--seed", type=int, required=True)
    sys.exit(publish_main(parser.parse_args().seed))
