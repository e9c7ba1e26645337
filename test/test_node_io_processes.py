"""io_mode process end to end: the node as launched, its camera I/O processes and their shared-memory rings.

- An I/O process that dies (SIGKILL) is restarted with back-off; meanwhile its camera's status is ERROR and names
  it, the other camera keeps getting labels, and afterwards both cameras get labels with their own headers; each
  camera's counts add up (received = processed + dropped + failed) across the process boundary.
- A node killed with SIGKILL leaves no I/O process behind (PR_SET_PDEATHSIG); the ring it could not remove is
  swept by the next node's start; SIGTERM and SIGINT end the node and every I/O process and leave no ring.
No wall-clock bound: every wait is for an event, with generous time-outs.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from node_fixtures import H, W
from node_harness import (
    STATUS,
    camera_status,
    encode_frame,
    launch_command,
    listener,
    node_process,
    save_frames,
    small_model_dir,
    start_publisher,
)

from trt_segmentation.node.camera_io.frame_ring import SHM_DIR

CAMERAS = ("front", "left")


def io_processes(node_pid: int) -> dict[str, int]:
    """The I/O processes started by node ``node_pid`` (found by their command line, so also after the node is
    gone and they would have been re-parented): {ring name: pid}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"trt_segmentation.node.camera_io.io_process" in argv and str(node_pid).encode() in argv:
            try:
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z":
                found[argv[argv.index(b"--ring") + 1].decode()] = int(entry.name)
    return found


def rings(node_pid: int) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(f"trtseg-{node_pid}-*"))


def wait_until(predicate, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def models(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    return small_model_dir(tmp_path_factory, random_model_factory, "io_process_models", (H, W), batches=(1, 2))


def test_a_killed_io_process_is_restarted_and_reported_while_the_other_camera_goes_on(models, tmp_path) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    path = save_frames(tmp_path / "frames.npz", [{"encoding": "rgb8", "height": H, "width": W, "step": step,
                                                  "data": data}])
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(models), "precision": "fp32",
                                "cameras": f"[{','.join(CAMERAS)}]", "camera_topic": "/io/{camera}/image_raw"},
                               extra={"qos_reliability": "reliable", "diagnostics_period": "0.2",
                                      "batch_timeout_ms": "20.0", "io_mode": "process"})
    topics = {c: f"/segmentation/{c}/labels" for c in CAMERAS}
    with node_process(argv, env, tmp_path / "node.log") as node, \
            listener(topics["front"], extra_topics=(topics["left"],)) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        first = wait_until(lambda: len(io_processes(node.pid)) == 2 and io_processes(node.pid), 10, "2 I/O processes")
        pubs = {c: start_publisher(path, f"/io/{c}/image_raw", rate=5.0, env=env, reliable=True, repeat=1000,
                                   frame_id_prefix=c) for c in CAMERAS}
        left = lis.images[topics["left"]]
        lis.wait_for(lambda: len(lis.labels) >= 3 and len(left) >= 3, 30, "labels of both cameras", node)
        (left_ring,) = [ring for ring in first if ring.startswith(f"trtseg-{node.pid}-1-")]
        os.kill(first[left_ring], signal.SIGKILL)
        status, values = lis.wait_for(lambda: lis.last_status(camera_status("left")) if (
            (s := lis.last_status(camera_status("left"))) and s[0].level == b"\x02") else None, 10,
            "camera left's ERROR", node)
        assert "camera I/O process left" in status.message and "exited with code -9" in status.message, status
        assert "restart 1" in status.message
        front_during = len(lis.labels)
        lis.wait_for(lambda: len(lis.labels) >= front_during + 3, 20, "front's labels while left is down", node)
        left_before = len(left)
        lis.wait_for(lambda: len(left) >= left_before + 3, 30, "left's labels after its restart", node)
        now = io_processes(node.pid)
        assert len(now) == 2 and now[left_ring.replace("-1-1", "-1-2")] != first[left_ring], (first, now)
        assert left_ring not in rings(node.pid)  # the dead generation's ring is removed
        for pub in pubs.values():
            pub.kill()
            pub.communicate(timeout=10)
        def balanced(name: str) -> bool:  # every frame taken is accounted for once nothing is in flight
            found = lis.last_status(camera_status(name))
            v = found[1] if found else {}
            return bool(v) and int(v["frames_received"]) > 0 and int(v["frames_received"]) == sum(
                int(v[k]) for k in ("frames_processed", "frames_dropped", "frames_failed"))
        for camera in CAMERAS:
            lis.wait_for(lambda name=camera: balanced(name), 10, f"camera {camera}'s counts to add up", node)
        assert node.proc.poll() is None
        # each camera's labels carry that camera's own headers (frame ids <camera><n>), at the frame's size
        for camera in CAMERAS:
            messages = lis.messages(topics[camera])
            assert messages and all(m.header.frame_id.startswith(camera) for m in messages)
            assert all((m.height, m.width) == (H, W) for m in messages)
        pid = node.pid
    # SIGINT (the harness's stop) ended the node, its I/O processes and removed its rings
    wait_until(lambda: not io_processes(pid), 10, "no I/O process after SIGINT")
    assert not rings(pid)


def test_sigkill_leaves_no_orphan_and_the_next_start_sweeps_the_ring(engine_dir, tmp_path) -> None:
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(engine_dir), "image_topic": "/k/image"},
                               extra={"diagnostics_period": "0.2", "io_mode": "process"})
    with node_process(argv, env, tmp_path / "node1.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the first node's diagnostics", node)
        first = node.pid
        assert len(io_processes(first)) == 1 and len(rings(first)) == 1
        os.kill(first, signal.SIGKILL)
        node.wait(timeout=10)
        wait_until(lambda: not io_processes(first), 10, "the killed node's I/O process to end (PR_SET_PDEATHSIG)")
        assert len(rings(first)) == 1  # SIGKILL gave the node no chance to remove it
    with node_process(argv, env, tmp_path / "node2.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the second node's diagnostics", node)
        assert rings(first) == []  # swept at start-up: its owner is dead
        assert "removed the frame ring" in node.log()
        second = node.pid
        assert len(io_processes(second)) == 1
        node.proc.send_signal(signal.SIGTERM)
        assert node.wait(timeout=15) is not None
    wait_until(lambda: not io_processes(second), 10, "no I/O process after SIGTERM")
    assert rings(second) == [], "SIGTERM must remove the node's rings"
