"""End to end: the node in its own process (ONNX Runtime backend, params file, started as the launch file
starts it), a publisher process sending frames of four encodings (two sizes: the engine's and a smaller one that
goes through the resize path), labels received here identical to offline ONNX Runtime inference of the same
images (resized with Pillow called here, independently of the package's helpers), headers preserved exactly
(stamp and frame_id as sent), colour mask published, diagnostics carrying every key, the age figure meaning
publish time minus header stamp. Then the same with jpeg/png CompressedImage input.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from node_fixtures import MODEL, H, W
from node_harness import (
    STATUS,
    encode_frame,
    expected_rgb,
    finish,
    launch_command,
    listener,
    node_process,
    save_frames,
    smooth_frames,
    start_publisher,
)
from PIL import Image

from trt_segmentation.artifacts import artifact_path
from trt_segmentation.node.diagnostics import cpu_model, report_keys
from trt_segmentation.palette import colorize
from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend


def offline_labels(backend: OnnxRuntimeBackend, rgb: np.ndarray) -> np.ndarray:
    """The reference: ONNX Runtime in this process on the same pixels, resized as docs/node.md says (Pillow
    bilinear to the engine size, Pillow nearest back), with Pillow called here rather than the package's helpers."""
    h, w = rgb.shape[:2]
    small = rgb if (h, w) == (H, W) else np.asarray(Image.fromarray(rgb).resize((W, H), Image.BILINEAR))
    labels = backend.infer(np.ascontiguousarray(small)).labels
    return labels if (h, w) == (H, W) else np.asarray(Image.fromarray(labels).resize((w, h), Image.NEAREST))


def sent_headers(record) -> dict[str, tuple[int, int]]:  # noqa: ANN001
    return {h["frame_id"]: (h["sec"], h["nanosec"]) for h in json.loads(record.read_text())}


def check_labels(lis, node_proc, references: dict[str, np.ndarray], headers: dict[str, tuple[int, int]]) -> int:
    received = lis.labels  # a copy, taken under the listener's lock
    assert received, f"no labels received\n{node_proc.log()}"
    for msg in received:
        want = references[msg.header.frame_id]
        assert msg.encoding == "mono8"
        assert (msg.height, msg.width, msg.step) == (want.shape[0], want.shape[1], want.shape[1])
        got = np.frombuffer(bytes(msg.data), np.uint8).reshape(want.shape)
        assert np.array_equal(got, want), f"{msg.header.frame_id}: {np.mean(got != want):.4%} pixels differ"
        # the input's header, unchanged: the same stamp to the nanosecond (frame_id matched by the lookup above)
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == headers[msg.header.frame_id]
    return len(received)


@pytest.mark.parametrize("io_mode", ["inprocess", "process"])
def test_labels_match_offline_inference_for_four_encodings(engine_dir, tmp_path, io_mode) -> None:
    big = smooth_frames(12, H, W, seed=1)
    small = smooth_frames(12, 192, 384, seed=2)
    plan = [("rgb8", 0, big), ("bgr8", 16, big), ("rgba8", 8, small), ("mono8", 5, small)]
    frames, references, sent_rgb = [], {}, {}
    with OnnxRuntimeBackend(artifact_path(engine_dir, MODEL, H, W, "fp32", ".onnx")) as reference:
        for i in range(24):
            encoding, pad, source = plan[i % 4]
            rgb = source[i // 4 * 2 + (i % 4) // 2]
            step, data = encode_frame(rgb, encoding, pad)
            frames.append({"encoding": encoding, "height": rgb.shape[0], "width": rgb.shape[1], "step": step,
                           "data": data})
            seen = expected_rgb(rgb, encoding)
            references[f"frame{i}"] = offline_labels(reference, seen)
            sent_rgb[f"frame{i}"] = seen
    path = save_frames(tmp_path / "frames.npz", frames)
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/e2e/camera/image_raw",
         "namespace": "e2e", "publish_color": "true", "precision": "fp32"},
        extra={"diagnostics_period": "0.5", "qos_reliability": "reliable", "io_mode": io_mode},
    )
    with node_process(argv, env, tmp_path / "node.log") as node, \
            listener("/e2e/segmentation/labels", extra_topics=("/e2e/segmentation/color",)) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        pub = start_publisher(path, "/e2e/camera/image_raw", rate=6.0, env=env, lockstep="/e2e/segmentation/labels",
                              reliable=True, record=tmp_path / "sent.json")
        out = finish(pub, 60)
        assert "sent 24" in out
        lis.wait_for(lambda: len(lis.labels) >= 24 or (
            (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) == len(lis.labels)
            and int(s[1]["frames_received"]) > 0 and len(lis.labels) >= 20), 10, ">= 20 labels", node)
        lis.wait_for(lambda: len(lis.images["/e2e/segmentation/color"]) >= len(lis.labels) - 1, 5, "colour masks")
        n = check_labels(lis, node, references, sent_headers(tmp_path / "sent.json"))
        assert n >= 20
        # the node runs on a Jetson without torch/onnx/modelopt: none of their libraries is loaded
        maps = open(f"/proc/{node.pid}/maps").read()
        assert "libtorch" not in maps and "onnx_cpp2py_export" not in maps and "modelopt" not in maps
        color = lis.messages("/e2e/segmentation/color")[0]
        want = colorize(references[color.header.frame_id])
        assert color.encoding == "rgb8"
        assert np.array_equal(np.frombuffer(bytes(color.data), np.uint8).reshape(want.shape), want)
        # diagnostics: every documented key, counts consistent with what was received
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) >= n and s, 5,
            "diagnostics counting the processed frames", node)
        missing = [k for k in report_keys() if k not in values]
        assert not missing, missing
        assert values["backend"] == "onnxruntime" and values["precision"] == "fp32"
        assert status.name == "segmentation: inference" and status.hardware_id == cpu_model()  # ORT on this CPU
        assert values["engine_file"].endswith(f"{MODEL}_{H}x{W}_fp32.onnx")
        assert values["engine_input_size"] == f"{H}x{W}"
        assert int(values["frames_received"]) >= n and values["frames_failed"] == "0"
        for stage in ("preprocess", "inference", "postprocess", "age"):
            assert float(values[f"latency_{stage}_p50_ms"]) > 0
            assert float(values[f"latency_{stage}_p50_ms"]) <= float(values[f"latency_{stage}_max_ms"])
        assert float(values["fps"]) > 0
        assert status.level in (b"\x00", b"\x01")  # OK, or WARN on a very slow machine (latency threshold)
    assert node.proc.returncode == 0, node.log()


def test_compressed_input_jpeg_and_png(engine_dir, tmp_path) -> None:
    rgbs = smooth_frames(8, H, W, seed=3)
    frames, references = [], {}
    with OnnxRuntimeBackend(artifact_path(engine_dir, MODEL, H, W, "fp32", ".onnx")) as reference:
        for i, rgb in enumerate(rgbs):
            fmt = "png" if i % 2 else "jpeg"
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format=fmt.upper(), quality=90)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            frames.append({"format": f"rgb8; {fmt} compressed rgb8", "data": buffer.getvalue()})
            references[f"frame{i}"] = offline_labels(reference, decoded)
    path = save_frames(tmp_path / "frames.npz", frames)
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/zip/image"},
        extra={"input_type": "compressed", "diagnostics_period": "0.5", "qos_reliability": "reliable"},
    )
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(path, "/zip/image/compressed", rate=6.0, env=env, compressed=True,
                               lockstep="/segmentation/labels", reliable=True, record=tmp_path / "sent.json"), 60)
        lis.wait_for(lambda: len(lis.labels) >= 8, 15, "labels of compressed frames", node)
        assert check_labels(lis, node, references, sent_headers(tmp_path / "sent.json")) == 8


def test_age_is_publish_time_minus_the_header_stamp(engine_dir, tmp_path) -> None:
    """Frames stamped 3 s in the past: every age the node reports lies between 3 s and 3 s plus the time from
    the first publish to the moment its diagnostics were read, whatever the load of the machine."""
    offset_s = 3.0
    rgb = smooth_frames(1, H, W, seed=4)[0]
    step, data = encode_frame(rgb, "rgb8")
    path = save_frames(tmp_path / "frames.npz",
                       [{"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data}] * 4)
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/age/image"},
                               extra={"diagnostics_period": "0.3", "qos_reliability": "reliable"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        started = time.time()
        finish(start_publisher(path, "/age/image", rate=5.0, env=env, lockstep="/segmentation/labels",
                               reliable=True, stamp_offset=offset_s, record=tmp_path / "sent.json"), 60)
        _, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) == 4 and s, 15,
            "diagnostics of the 4 frames", node)
        window_ms = (time.time() - started) * 1e3
    for sent in json.loads((tmp_path / "sent.json").read_text()):  # the stamps went out 3 s old
        assert sent["published_ns"] * 1e-9 - (sent["sec"] + sent["nanosec"] * 1e-9) >= offset_s - 1e-3
    low, high = offset_s * 1e3, offset_s * 1e3 + window_ms
    for stat in ("p50", "p95", "max"):
        assert low <= float(values[f"latency_age_{stat}_ms"]) <= high, (stat, values[f"latency_age_{stat}_ms"])
