"""Parameters that no other test showed taking effect through the node as launched: ``latency_window`` and
``warn_latency_ms`` (diagnostics over the last N frames, WARN above the bound the parameter names) and
``engine_path`` (the file the node loads is the parameter's, not the engine_dir naming). ``inflight_slots`` needs a
GPU backend: its effect shows in the device benchmarks (tools/benchmark_node.py --slots, docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np
from node_fixtures import H, W
from node_harness import (
    STATUS,
    encode_frame,
    finish,
    launch_command,
    listener,
    node_process,
    save_frames,
    start_publisher,
)


def test_latency_window_and_warn_latency_ms_shape_the_diagnostics(engine_dir, tmp_path) -> None:
    """Ten frames stamped 5 s in the past, then ten current ones: with warn_latency_ms 1000 the first ten give the
    WARN naming 1000 ms; with latency_window 10 the next ten push them out of the window (age max back under 1 s;
    the default window of 300 would keep them)."""
    rgb = np.random.default_rng(4).integers(0, 256, (H, W, 3), dtype=np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    path = save_frames(tmp_path / "f.npz", [{"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data}])
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/lw/image"},
                               extra={"diagnostics_period": "0.2", "qos_reliability": "reliable",
                                      "latency_window": "10", "warn_latency_ms": "1000.0"})
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(path, "/lw/image", rate=5.0, env=env, reliable=True, repeat=10, lockstep="/segmentation/labels",
                               stamp_offset=5.0, frame_id_prefix="old"), 90)
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) >= 10 and s, 15,
            "the late frames' diagnostics", node)
        assert "end-to-end p95" in status.message and "> 1000 ms" in status.message, status.message
        assert float(values["latency_age_max_ms"]) > 4000.0
        finish(start_publisher(path, "/lw/image", rate=5.0, env=env, reliable=True, repeat=10, lockstep="/segmentation/labels",
                               frame_id_prefix="new"), 90)
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) >= 20 and s, 15,
            "the current frames' diagnostics", node)
    assert int(values["frames_processed"]) == 20, values
    assert float(values["latency_age_max_ms"]) < 1000.0, sorted((k, v) for k, v in values.items() if "_age_" in k)  # the 10-frame window holds only current frames
    assert "end-to-end p95" not in status.message, status.message


def test_engine_path_is_the_file_the_node_loads(engine_dir, tmp_path) -> None:
    missing = tmp_path / "elsewhere" / "my_model.engine"
    argv, env = launch_command({"backend": "tensorrt", "engine_dir": str(engine_dir), "precision": "fp32"},
                               extra={"engine_path": str(missing)})
    with node_process(argv, env, tmp_path / "node.log") as node:
        assert node.wait(timeout=30) == 1
        fatal = [line for line in node.log().splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and f"TensorRT engine not found: {missing}" in fatal[0], fatal
