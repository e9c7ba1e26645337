"""Runtime parameters and lazy outputs through a running node (one node process for every assertion): with
publish_color on and nobody on ~/color, no frame is coloured (``frames_colored`` stays 0); ``ros2 param set``'s
service turns ~/overlay and ~/labels/compressed on (they appear and carry frames once a viewer subscribes, and so
does ~/color; the PNG labels are the labels of the same header), refuses
``precision`` with a reason that names it and asks for a restart, and a changed warn_latency_ms decides the next
status. The same node republishes the camera's camera_info (/rp/camera_info beside /rp/image) on ~/camera_info
with each label image's header and size."""

from __future__ import annotations

import io

import numpy as np
from node_harness import (
    STATUS,
    encode_frame,
    launch_command,
    listener,
    node_process,
    save_frames,
    start_publisher,
)
from PIL import Image

from trt_segmentation.node.diagnostics import WARN

NODE = "/segmentation"


def _set(lis, **values):
    """SetParameters on the node (what `ros2 param set` calls): the result of each."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = lis.node.create_client(SetParameters, f"{NODE}/set_parameters")
    assert client.wait_for_service(timeout_sec=30.0)
    future = client.call_async(SetParameters.Request(
        parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()]))
    lis.wait_for(future.done, 30, "set_parameters")
    return future.result().results


def test_runtime_parameters_and_outputs_only_for_subscribers(engine_dir, tmp_path) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, CompressedImage

    h, w = 48, 96
    rgb = np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    frames = save_frames(tmp_path / "f.npz", [{"encoding": "rgb8", "height": h, "width": w, "step": step,
                                               "data": data}])
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/rp/image",
                                "publish_color": "true"},
                               extra={"diagnostics_period": "0.2", "publish_camera_info": "true",
                                      "warn_latency_ms": "100000.0"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        publisher = start_publisher(frames, "/rp/image", rate=20.0, env=env, repeat=100000)
        try:
            _, values = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) >= 3
                                     and s, 30, "three frames processed", node)
            assert values["frames_colored"] == "0" and values["frames_overlaid"] == "0", values  # nobody looks
            pubs = dict(lis.node.get_publisher_names_and_types_by_node("segmentation", "/"))
            assert "/segmentation/color" in pubs and "/segmentation/overlay" not in pubs

            camera_info = lis.node.create_publisher(CameraInfo, "/rp/camera_info", 10)
            infos: list = []
            lis.node.create_subscription(CameraInfo, "/segmentation/camera_info", infos.append, 10)

            def relayed() -> list:
                camera_info.publish(CameraInfo(height=480, width=640, distortion_model="plumb_bob",
                                               k=[500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]))
                return infos
            info = lis.wait_for(relayed, 20, "the relayed camera_info", node)[-1]
            assert (info.height, info.width, info.distortion_model, info.k[0]) == (h, w, "plumb_bob", 500.0)
            assert info.header.frame_id.startswith("frame") and info.header.stamp.sec > 0

            results = _set(lis, publish_overlay=True, publish_labels_compressed=True)
            assert all(r.successful for r in results), [r.reason for r in results]
            (refused,) = _set(lis, precision="fp16")
            assert not refused.successful
            assert "precision" in refused.reason and "restart" in refused.reason, refused.reason
            (same,) = _set(lis, precision="fp32")  # its own value (`ros2 param load` of its file): no change
            assert same.successful, same.reason

            with listener(extra_topics=("/segmentation/color", "/segmentation/overlay"), name="viewer") as viewer:
                pngs: list = []
                viewer.node.create_subscription(CompressedImage, "/segmentation/labels/compressed", pngs.append,
                                                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
                viewer.wait_for(lambda: viewer.count("/segmentation/overlay") >= 2 and len(pngs) >= 2
                                and viewer.count("/segmentation/color") >= 2, 30, "overlay, colour, PNG labels", node)
                shown = viewer.messages("/segmentation/overlay")[-1]
                png = pngs[-1]
            assert (shown.encoding, shown.height, shown.width) == ("rgb8", h, w)
            assert png.format == "mono8; png compressed"
            raw = lis.wait_for(lambda: [m for m in lis.labels if (m.header.stamp, m.header.frame_id)
                                        == (png.header.stamp, png.header.frame_id)], 10, "the PNG's labels", node)[0]
            decoded = np.asarray(Image.open(io.BytesIO(bytes(png.data))))
            assert decoded.shape == (h, w)
            assert np.array_equal(decoded, np.frombuffer(bytes(raw.data), np.uint8).reshape(h, w))
            _, values = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_overlaid"]) >= 2
                                     and s, 10, "the overlay counted", node)
            assert int(values["frames_colored"]) >= 2

            status, _ = lis.wait_for(lambda: lis.last_status(STATUS), 10, "a status", node)
            assert "end-to-end p95" not in status.message, status.message  # 100 s: no age is over it
            (result,) = _set(lis, warn_latency_ms=0.0)  # every frame's age is over 0 ms now
            assert result.successful, result.reason
            status, _ = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and "end-to-end p95" in s[0].message
                                     and s, 10, "the WARN of the new threshold", node)
            assert status.level == bytes([WARN])
        finally:
            publisher.kill()
            publisher.communicate(timeout=10)
    assert "parameters changed: publish_overlay=True" in node.log()
