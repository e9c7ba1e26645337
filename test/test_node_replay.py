"""A recorded drive replayed through the node (issue 33) with the package's player, its header stamps as
recorded (a day before the test machine's clock): with ``--clock`` and ``use_sim_time:=true`` the /diagnostics
status is OK with transport and age measured on the bag's time in every process of the node (the camera's I/O
process included); without ``--clock`` on a wall-clock node it is OK, the ``stamps`` key says the stamps are
another clock's, transport and age are not measured and the receipt-to-publish latency is."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
from node_harness import REPO, STATUS, launch_command, listener, node_process

from trt_segmentation.data.bags import write_image_bag
from trt_segmentation.node.diagnostics import FOREIGN_STAMPS, OK

START = 1_700_000_000_000_000_000 - 86_400 * 10**9  # a drive recorded a day before any "now" of the test machine
FRAMES = 4


def _measured(values: dict) -> bool:
    """A frame was published with its age measured on the node's clock, and the last frame's stamp was that clock's."""
    return values["stamps"].startswith("ok") and not math.isnan(float(values["latency_age_max_ms"]))


def _replay(engine_dir, tmp_path, sim_time: bool) -> dict:
    """The node (sim time or not) and the looping player (--clock or not): the main status's values once a frame
    was processed with the stamps note (without --clock), or once a frame was measured on the bag's time (with it:
    the inference process's discovery of the player can lag the I/O process's, which is the one /clock subscriber
    the player waits for, and a frame it publishes before its first /clock reads 0 there and counts as another
    clock's)."""
    rng = np.random.default_rng(11)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(FRAMES)]
    bag = write_image_bag(tmp_path / "bag", frames, fps=10, start_ns=START, frame_id="cam0").path
    # warn_latency_ms, warn_drop_ratio: a slow shared machine must not make the OK a speed test; the ages below
    # tell the clocks apart (a day vs well under a second)
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/camera/image_raw",
         "use_sim_time": "true" if sim_time else "false"},
        extra={"diagnostics_period": "0.2", "warn_latency_ms": "5000.0", "warn_drop_ratio": "1.0"})
    player = [sys.executable, str(REPO / "tools" / "play_rosbag.py"), str(bag), "--stamps", "recorded",
              "--wait-for-subscribers", "1", "--quiet", "--loop"] + (["--clock", "50"] if sim_time else [])
    # the bag loops until the status shows what is asked: a best-effort frame sent before both directions of the
    # discovery matched is lost, so no fixed number of sent frames is sure to arrive on a loaded machine
    done = _measured if sim_time else (lambda v: int(v["frames_processed"]) >= 1
                                       and v["stamps"].startswith(FOREIGN_STAMPS))
    with node_process(argv, env, tmp_path / "node.log") as node, listener() as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        playing = subprocess.Popen(player, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                   start_new_session=True)
        try:
            status, values = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and done(s[1]) and s, 30,
                                          "a frame measured on the bag's time" if sim_time
                                          else "a frame processed with the stamps note", node)
        finally:
            playing.kill()
            playing.communicate(timeout=10)
    assert status.level == bytes([OK]), (status.message, values)
    assert int(values["frames_processed"]) >= 1 and values["frames_failed"] == "0", values
    return values


def test_recorded_stamps_with_clock_and_sim_time_are_measured_on_the_bags_time(engine_dir, tmp_path) -> None:
    values = _replay(engine_dir, tmp_path, sim_time=True)
    assert values["stamps"].startswith("ok"), values  # the last frame's stamp was the bag's time
    # not a day: the bag's time (a loop's next pass starts that time again, so a frame of the pass before may be
    # published a little "before" its stamp)
    assert abs(float(values["latency_age_max_ms"])) < 5000.0, values
    assert abs(float(values["latency_transport_max_ms"])) < 5000.0, values  # the I/O process is on /clock too


def test_recorded_stamps_without_clock_are_processed_and_not_measured(engine_dir, tmp_path) -> None:
    values = _replay(engine_dir, tmp_path, sim_time=False)
    assert values["stamps"].startswith(FOREIGN_STAMPS), values
    assert math.isnan(float(values["latency_age_p95_ms"])) and math.isnan(float(values["latency_transport_p95_ms"]))
    assert float(values["latency_node_max_ms"]) >= 0.0, values
