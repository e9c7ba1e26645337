"""What passes between a camera's I/O process (io_process.py) and the inference process (io_supervisor.py): small
tuples over a local socket, pickled by ``multiprocessing.connection``; the frames themselves never travel here,
they stay in the shared-memory ring (frame_ring.py). Every frame the I/O process takes is told exactly once
(FrameReady, BadFrame or RingFull), in order, so the inference process's counts are exact."""

from __future__ import annotations

from typing import NamedTuple

from ...image_cdr import Header


# ------------------------------------------------------------------------------------ I/O process -> inference
class Ready(NamedTuple):
    """The I/O process has subscribed."""

    pid: int


class FrameReady(NamedTuple):
    """A frame's pixels are in ``slot`` (network channel order); ``received_ns``: when it was taken (ns, the node's
    ROS clock: sim time under use_sim_time), ``received_mono_ns`` the same moment on CLOCK_MONOTONIC (one clock for
    every process of the host: the in-host stages, wait and receipt-to-publish, are measured on it)."""

    slot: int
    header: Header
    height: int
    width: int
    received_ns: int
    received_mono_ns: int = 0


class BadFrame(NamedTuple):
    """A frame refused as bad input (parse/convert error), counted on this camera."""

    text: str


class RingFull(NamedTuple):
    """A frame taken while every slot was held by the inference process: dropped in the I/O process."""


class QosProblem(NamedTuple):
    text: str


# ------------------------------------------------------------------------------------ inference -> I/O process
class Release(NamedTuple):
    """The inference process is done with ``slot`` (its labels are published): the slot is free again."""

    slot: int


__all__ = ["BadFrame", "FrameReady", "QosProblem", "Ready", "Release", "RingFull"]
