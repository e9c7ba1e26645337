"""Overload: frames arrive much faster than the node can segment them (40 Hz of 512x1024 frames, one ONNX
Runtime thread). The node keeps working on the newest frame, counts the rest as dropped, keeps publishing
diagnostics and its memory stays flat."""

from __future__ import annotations

import time

import numpy as np
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

RATE, SECONDS, PERIOD = 40.0, 8, 0.25


def test_overload_drops_old_frames_stays_responsive_and_flat(engine_dir, tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(4):
        step, data = encode_frame(rng.integers(0, 256, (512, 1024, 3), dtype=np.uint8), "bgr8")
        frames.append({"encoding": "bgr8", "height": 512, "width": 1024, "step": step, "data": data})
    path = save_frames(tmp_path / "frames.npz", frames)
    total = int(RATE * SECONDS)
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/fast/image"},
        extra={"diagnostics_period": str(PERIOD), "ort_threads": "1", "warn_drop_ratio": "0.3"},
    )
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        pub = start_publisher(path, "/fast/image", RATE, env=env, repeat=total // len(frames))
        lis.wait_for(lambda: len(lis.labels) >= 2, 20, "the first labels", node)
        t_overload = time.monotonic()
        rss = [node.rss_mb()]
        while pub.poll() is None and time.monotonic() - t_overload < 30:
            time.sleep(0.5)
            rss.append(node.rss_mb())
        finish(pub, 30)
        t_end = time.monotonic()
        # once the camera stops, every received frame is accounted for: processed, dropped or failed
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_received"]) == (
                int(s[1]["frames_processed"]) + int(s[1]["frames_dropped"]) + int(s[1]["frames_failed"])) and s,
            5, "the books to balance", node)
        stamps = [t for t, _ in lis.statuses(STATUS) if t_overload <= t <= t_end]
        assert node.proc.poll() is None
    received, processed, dropped = (int(values[k]) for k in ("frames_received", "frames_processed",
                                                              "frames_dropped"))
    print(f"\noverload: sent {total}, received {received}, processed {processed}, dropped {dropped}, "
          f"fps {values['fps']}, RSS {rss[0]:.0f} -> {max(rss):.0f} MB, "
          f"max diagnostics gap {max(np.diff(stamps)):.2f} s")
    assert received >= 0.5 * total
    assert dropped > 0.3 * received and processed >= 5
    assert values["frames_failed"] == "0"
    assert len(lis.labels) == processed
    # diagnostics keep coming while inference runs flat out (that the subscription side never waits for inference
    # is shown without timing in test_node_worker.py; a wall-clock bound on the gaps would not hold on a loaded
    # 2-core machine, so the gap is printed above, not asserted)
    assert len(stamps) >= 2
    # WARN about drops (the configured threshold is 30%)
    assert status.level == b"\x01" and "dropped" in status.message
    # memory: no queue grows; allow for allocator noise only
    assert max(rss) - rss[0] < 40, rss
