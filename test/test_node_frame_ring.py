"""The shared-memory frame ring without ROS: two mappings of one ring see the same pixels and labels, a slot never
spills into the next, frames larger than a slot are refused, and the start-up sweep removes exactly the rings whose
owning node is gone (names carry the owner's pid)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from trt_segmentation.node.camera_io.frame_ring import FrameRing, ring_name, sweep_stale_rings


def test_two_mappings_share_pixels_slot_by_slot(tmp_path) -> None:
    owner = FrameRing.create("trtseg-1-0-1", slots=3, max_pixels=6 * 8, directory=tmp_path)
    other = FrameRing.attach("trtseg-1-0-1", slots=3, max_pixels=6 * 8, directory=tmp_path)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (6, 8, 3), dtype=np.uint8) for _ in range(3)]
    for slot, frame in enumerate(frames):
        np.copyto(other.pixels(slot, 6, 8), frame)  # the I/O process writes
    for slot, frame in enumerate(frames):
        assert np.array_equal(owner.pixels(slot, 6, 8), frame)  # the inference process reads in place
    assert np.array_equal(owner.pixels(1, 3, 4), frames[1].reshape(-1)[:36].reshape(3, 4, 3))  # smaller frames fit
    with pytest.raises(ValueError, match="does not fit"):
        owner.pixels(0, 7, 8)
    owner.unlink()
    assert not (tmp_path / "trtseg-1-0-1").exists()
    assert np.array_equal(other.pixels(2, 6, 8), frames[2])  # a mapping outlives the name


def test_sweep_removes_only_rings_of_dead_owners(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    alive = FrameRing.create(ring_name(1, 0, 1), 1, 4, directory=tmp_path)  # pid 1 always runs
    stale = FrameRing.create(ring_name(dead_pid, 2, 3), 1, 4, directory=tmp_path)
    (tmp_path / "unrelated-123").write_bytes(b"x")
    assert sweep_stale_rings(tmp_path) == [stale.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "unrelated-123"])
