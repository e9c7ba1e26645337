"""Malformed images never crash the node: each is logged (throttled), counted as failed, reported as bad input
(WARN, never the ERROR of a failing inference), and good frames after them still get labels. Frames claiming more
than max_input_pixels are refused before they are decoded, and the node's memory stays flat. Start-up with a
missing or mismatched model file is one clear error and exit code 1."""

from __future__ import annotations

import io

import numpy as np
import pytest
from node_fixtures import MODEL, H, W
from node_harness import (
    STATUS,
    encode_frame,
    finish,
    jpeg_claiming,
    launch_command,
    listener,
    node_process,
    png_claiming,
    save_frames,
    start_publisher,
)
from PIL import Image

from trt_segmentation.artifacts import artifact_path


def good(rgb: np.ndarray) -> dict:
    step, data = encode_frame(rgb, "rgb8")
    return {"encoding": "rgb8", "height": rgb.shape[0], "width": rgb.shape[1], "step": step, "data": data}


def test_malformed_messages_are_counted_and_the_node_goes_on(engine_dir, tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    ok = good(rgb)
    bad = [
        dict(ok, data=ok["data"][: ok["step"] * H - 100]),  # data shorter than step*height
        dict(ok, encoding="16UC1"),  # unsupported encoding
        dict(ok, height=0, width=0, step=0, data=b""),  # zero size
        dict(ok, step=W * 3 - 1),  # step < width*channels
        dict(ok, height=6000, width=6000, step=18000),  # claims 36 MP: refused before the data size is looked at
        dict(ok, encoding="yuv422"),  # another unsupported one
    ]
    odd_size = good(rgb[:100, :150])  # not the engine's size: resized, labels at 100x150
    frames = [ok] + bad + [odd_size, ok, ok]
    path = save_frames(tmp_path / "frames.npz", frames)
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/bad/image"},
                               extra={"diagnostics_period": "0.3", "log_throttle_s": "60.0",
                                      "qos_reliability": "reliable"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(path, "/bad/image", rate=4.0, env=env, settle=STATUS, reliable=True), 60)
        lis.wait_for(lambda: len(lis.labels) >= 4, 10, "labels for the 4 good frames", node)
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) >= 4 and s, 5,
            "diagnostics of the processed frames", node)
        assert node.proc.poll() is None, "the node died"
        log = node.log()
    assert int(values["frames_failed"]) == len(bad), values
    assert int(values["frames_processed"]) == 4
    assert "yuv422" in values["last_error"] or "unsupported encoding" in values["last_error"]
    sizes = sorted({(m.height, m.width) for m in lis.labels})
    assert sizes == [(100, 150), (H, W)]
    # the first error is logged, the five that follow within log_throttle_s are not (one line, not six)
    assert log.count("bad image dropped") == 1, log
    assert "data has" in log
    assert values["last_error"].startswith("bad image dropped: ")
    # a WARN while bad frames arrive, never the ERROR of a failing inference
    statuses = [s for _, s in lis.statuses(STATUS)]
    assert any(s.level == b"\x01" and "bad frame" in s.message for s in statuses)
    assert not any(s.level == b"\x02" or "inference failing" in s.message for s in statuses)


def test_oversized_frames_are_refused_before_decoding_and_memory_stays_flat(engine_dir, tmp_path) -> None:
    """Small files that claim huge images (a 6000x6000 png of ~100 KB, a jpeg header claiming 65500x65500): bad
    input, counted, and the node's RSS does not grow (decoding one 6000x6000 frame alone would add ~200 MB)."""
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    good_png = {"format": "png", "data": buffer.getvalue()}
    bombs = [{"format": "png", "data": png_claiming(6000, 6000)}, {"format": "jpeg", "data": jpeg_claiming(65500, 65500)}]
    assert len(bombs[0]["data"]) < 200_000
    warm = save_frames(tmp_path / "warm.npz", [good_png] * 3)
    attack = save_frames(tmp_path / "attack.npz", bombs * 10 + [good_png])
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/big/image"},
                               extra={"input_type": "compressed", "diagnostics_period": "0.3",
                                      "qos_reliability": "reliable"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(warm, "/big/image/compressed", rate=4.0, env=env, compressed=True, reliable=True,
                               settle=STATUS), 60)
        lis.wait_for(lambda: len(lis.labels) >= 3, 10, "labels of the warm-up frames", node)
        rss_before = node.rss_mb()
        finish(start_publisher(attack, "/big/image/compressed", rate=8.0, env=env, compressed=True, reliable=True,
                               settle=STATUS), 90)
        _, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_failed"]) >= 20
            and int(s[1]["frames_processed"]) >= 4 and s, 15, "diagnostics of the attack", node)
        rss_after = node.rss_mb()
        assert node.proc.poll() is None, "the node died"
    assert int(values["frames_failed"]) == 20 and int(values["frames_processed"]) == 4, values
    assert "exceeds max_input_pixels" in values["last_error"] and values["last_error"].startswith("bad image dropped")
    assert rss_after - rss_before < 40.0, (rss_before, rss_after)


@pytest.mark.parametrize("io_mode", ["process", "inprocess"])
def test_max_input_pixels_is_the_launched_nodes_limit(engine_dir, tmp_path, io_mode) -> None:
    """The parameter, not the default, decides, in both io_modes (process: the camera's I/O process refuses the
    frame; inprocess: the worker does): with max_input_pixels = 100*150 a frame of the engine's size (far below
    the default limit) is refused as bad input naming the limit, and a 100x150 frame is processed."""
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    limit = 100 * 150
    assert H * W > limit
    frames = [good(rgb[:100, :150]), good(rgb), good(rgb[:100, :150])]
    path = save_frames(tmp_path / "frames.npz", frames)
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/px/image"},
                               extra={"diagnostics_period": "0.3", "qos_reliability": "reliable",
                                      "max_input_pixels": str(limit), "io_mode": io_mode})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(path, "/px/image", rate=4.0, env=env, settle=STATUS, reliable=True), 60)
        _, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) + int(s[1]["frames_failed"])
            >= 3 and s, 15, "diagnostics of the three frames", node)
    assert int(values["frames_failed"]) == 1 and int(values["frames_processed"]) == 2, values
    assert f"{H}x{W} = {H * W} pixels exceeds max_input_pixels = {limit}" in values["last_error"], values
    assert sorted({(m.height, m.width) for m in lis.labels}) == [(100, 150)]


@pytest.mark.parametrize("case", ["missing", "wrong_precision", "tensorrt_build", "tensorrt_rebuild",
                                  "out_of_range"])
def test_missing_or_mismatched_model_is_one_clear_error(engine_dir, tmp_path, case) -> None:
    if case == "out_of_range":  # a declared range is enforced at start-up, with the parameter's name
        arguments = {"backend": "onnxruntime", "engine_dir": str(engine_dir)}
        extra = {"overlay_alpha": "1.5"}
        expected = ["parameter overlay_alpha", "out of range"]
    elif case == "tensorrt_build":  # build_engine_if_missing on a machine without TensorRT: says what is missing
        arguments = {"backend": "tensorrt", "engine_dir": str(engine_dir), "precision": "fp32"}
        extra = {"build_engine_if_missing": "true"}
        expected = [f"building {artifact_path(engine_dir, MODEL, H, W, 'fp32', '.engine')} failed",
                    "TensorRT is not installed"]
    elif case == "tensorrt_rebuild":  # rebuild_engine: an engine that does not fit is rebuilt, the reason logged
        import shutil

        shutil.copy(artifact_path(engine_dir, MODEL, H, W, "fp32", ".onnx"), tmp_path)
        engine = artifact_path(tmp_path, MODEL, H, W, "fp32", ".engine")
        engine.write_bytes(b"an engine built elsewhere, without its sidecar")
        arguments = {"backend": "tensorrt", "engine_dir": str(tmp_path), "precision": "fp32"}
        extra = {"rebuild_engine": "true"}
        expected = [f"building {engine} failed", "TensorRT"]
    elif case == "missing":
        arguments = {"backend": "onnxruntime", "engine_dir": str(engine_dir), "precision": "int8"}
        extra = {"engine_height": str(H), "engine_width": str(W)}
        expected = [f"{MODEL}_{H}x{W}_int8.onnx", "tools/build_engine.py", "--precision int8",
                    f"--onnx {artifact_path(engine_dir, MODEL, H, W, 'fp32', '.onnx')}"]
    else:  # an fp32 model saved under the fp16 name: refused, never silently used
        import shutil

        shutil.copy(artifact_path(engine_dir, MODEL, H, W, "fp32", ".onnx"), tmp_path / f"{MODEL}_{H}x{W}_fp16.onnx")
        arguments = {"backend": "onnxruntime", "engine_dir": str(tmp_path), "precision": "fp16"}
        extra = {}
        expected = ["holds a fp32 model, precision fp16 was asked", "tools/build_engine.py"]
    argv, env = launch_command(arguments, extra=extra)
    with node_process(argv, env, tmp_path / "node.log") as node:
        code = node.wait(timeout=30)
        log = node.log()
    assert code == 1, log
    fatal = [line for line in log.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, log
    for text in expected:
        assert text in fatal[0], fatal[0]
    assert "Traceback" not in log
    if case == "tensorrt_rebuild":  # the parameter took effect: the start-up tried the rebuild and said why
        assert f"rebuilding {engine}: " in log, log
