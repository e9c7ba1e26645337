"""The node's diagnostic status as plain data: level, message and key-values, decided by pure functions.

The node turns a :class:`DiagnosticReport` into a ``diagnostic_msgs/DiagnosticStatus`` named the way
diagnostic_updater names its statuses (``<node name>: <task>``, :func:`status_name`), with the device as
``hardware_id`` (:func:`hardware_id`); everything that decides OK/WARN/ERROR lives here so it can be tested without
ROS (and on the vehicle's Python 3.8 without the message packages). Keys are listed in ``STAGES``/``report_keys``
and documented in docs/node.md.
"""

from __future__ import annotations

import glob
import math
import platform
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# The levels are diagnostic_msgs/DiagnosticStatus's OK/WARN/ERROR/STALE byte values; the node publishes the
# message's own constant of the same name (LEVEL_NAMES), and test_node_units checks the two agree.
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}

#: the task of the node's main status ("segmentation: inference"): the whole pipeline, camera to labels
INFERENCE_TASK = "inference"


def status_name(node_name: str, task: str = INFERENCE_TASK) -> str:
    """``<node name>: <task>``, as diagnostic_updater names a task's status (the node's name without namespace)."""
    return f"{node_name}: {task}"


def camera_task(camera: str) -> str:
    """The task of one camera's status in multi-camera mode: ``camera <name>``."""
    return f"camera {camera}"


def _first_value(path: str, keys: tuple[str, ...]) -> str:
    """The value of the first ``key: value`` line of ``path`` whose key is one of ``keys``; "" if none/unreadable."""
    try:
        with open(path, errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() in keys and value.strip():
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_model(cpuinfo: str = "/proc/cpuinfo", device_tree_model: str = "/proc/device-tree/model") -> str:
    """The CPU's model name: ``model name`` in /proc/cpuinfo (x86; ``Model``/``Hardware`` on some ARM kernels);
    where cpuinfo has none, the board's device-tree model (e.g. a Jetson's); else ``platform.machine()``."""
    found = _first_value(cpuinfo, ("model name", "Model", "Hardware"))
    if found:
        return found
    try:
        with open(device_tree_model, "rb") as handle:
            board = handle.read().rstrip(b"\0").decode(errors="replace").strip()
        if board:
            return board
    except OSError:
        pass
    return platform.machine() or "cpu"


def nvidia_gpu_model(pattern: str = "/proc/driver/nvidia/gpus/*/information") -> str:
    """The first NVIDIA GPU's model from the driver's /proc files (no CUDA library loaded); "" without them."""
    for path in sorted(glob.glob(pattern)):
        found = _first_value(path, ("Model",))
        if found:
            return found
    return ""


def hardware_id(describe: Mapping[str, str]) -> str:
    """The device a backend runs on, from its ``describe()``: the GPU name GPU backends report as ``device``;
    for ONNX Runtime the GPU of its CUDA provider when that one runs first, else the CPU model."""
    device = describe.get("device", "")
    if device:
        return device
    providers = [p for p in describe.get("providers", "").split(",") if p]
    if providers and providers[0] == "CUDAExecutionProvider":
        return nvidia_gpu_model() or "CUDA GPU"
    return cpu_model()

# stage -> what it covers; every stage gets p50/p95/p99/max keys in milliseconds
STAGES: dict[str, str] = {
    "transport": "camera to node: the subscription callback's time minus the input header stamp (includes any "
                 "clock offset between the camera's and this machine's clock)",
    "wait": "callback to the start of conversion: time in the mailbox, waiting for a free backend slot",
    "preprocess": "message -> array conversion, resize to the engine size, copy into the input (host-to-device)",
    "inference": "the network (GPU time from CUDA events on tensorrt/torch, wall time on onnxruntime)",
    "postprocess": "device-to-host copy, label resize back to the image size, publishing",
    "age": "end to end: labels published minus the input header stamp",
    "node": "receipt to publish: labels published minus the time the frame was taken (both on CLOCK_MONOTONIC, "
            "never sim time; measured also for stamps from another clock)",
}
#: the ``stamps`` key while the last frame's stamp was more than stamp_tolerance_s from the node's clock
FOREIGN_STAMPS = "not measured (stamps from another clock)"


def stamps_value(last_foreign: bool, foreign: int) -> str:
    """The ``stamps`` key: ``ok``, or :data:`FOREIGN_STAMPS` with how many frames so far."""
    if not last_foreign:
        return "ok" if not foreign else f"ok ({foreign} earlier frame(s) stamped by another clock)"
    return (f"{FOREIGN_STAMPS}: {foreign} frame(s) stamped more than stamp_tolerance_s from the node's clock, "
            "left out of latency_transport_* and latency_age_*")


STATS = ("p50", "p95", "p99", "max")
INFO_KEYS = ("backend", "precision", "engine_file", "model", "engine_input_size", "device", "memory")
COUNTER_KEYS = ("frames_received", "frames_processed", "frames_dropped", "frames_failed")
TAIL_KEYS = ("seconds_since_last_frame", "publishers", "input_size", "qos", "last_error")  # after the latencies


@dataclass
class Counters:
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before the worker took it
    failed: int = 0  # bad input or an inference error


@dataclass(frozen=True)
class Thresholds:
    warn_latency_ms: float = 250.0
    warn_drop_ratio: float = 0.5
    warn_no_frames_s: float = 5.0


DEFAULT_THRESHOLDS = Thresholds()  # frozen: one shared default is safe


@dataclass
class DiagnosticReport:
    level: int
    message: str
    values: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)


def report_keys() -> list[str]:
    """Every key a report carries, in order."""
    keys = list(INFO_KEYS) + list(COUNTER_KEYS) + ["fps"]
    keys += [f"latency_{stage}_{stat}_ms" for stage in STAGES for stat in STATS]
    keys += list(TAIL_KEYS)
    return keys


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"


def _counter_values(counters: Counters, fps: float) -> list[tuple[str, str]]:
    """The ``COUNTER_KEYS`` and ``fps`` of a report."""
    return [
        ("frames_received", str(counters.received)),
        ("frames_processed", str(counters.processed)),
        ("frames_dropped", str(counters.dropped)),
        ("frames_failed", str(counters.failed)),
        ("fps", f"{fps:.2f}"),
    ]


def _latency_values(latency: dict[str, dict[str, float]], stages: Iterable[str]) -> list[tuple[str, str]]:
    """``latency_<stage>_<stat>_ms`` of every stage in ``stages`` ("nan" where a stage has no sample yet)."""
    values: list[tuple[str, str]] = []
    for stage in stages:
        summary = latency.get(stage, {})
        values += [(f"latency_{stage}_{stat}_ms", _fmt(summary.get(stat, float("nan")))) for stat in STATS]
    return values


def _tail_values(seconds_since_last_frame: float | None, publishers: int | None, last_input_size: str,
                 qos_problems: list[str] | None, last_error: str) -> list[tuple[str, str]]:
    """The ``TAIL_KEYS`` of a report."""
    return [
        ("seconds_since_last_frame",
         "never" if seconds_since_last_frame is None else f"{seconds_since_last_frame:.2f}"),
        ("publishers", "" if publishers is None else str(publishers)),
        ("input_size", last_input_size),
        ("qos", "; ".join(qos_problems) if qos_problems else "ok"),
        ("last_error", last_error),
    ]


def _idle_problem(seconds_since_last_frame: float | None, seconds_since_start: float, publishers: int | None,
                  qos_problems: list[str] | None, thresholds: Thresholds) -> str:
    """The no-frames WARN text with a hint at the likely cause, or "" while frames arrive."""
    idle = seconds_since_last_frame if seconds_since_last_frame is not None else seconds_since_start
    if idle <= thresholds.warn_no_frames_s:
        return ""
    what = "no frame received yet" if seconds_since_last_frame is None else "no frames"
    if publishers and qos_problems:
        hint = "the publisher's QoS is incompatible (see qos)"
    elif publishers:
        # matched but silent: typically large frames lost by the default DDS transport
        hint = (f"{publishers} publisher(s) matched but nothing arrives: large frames need the shared-memory "
                "transport profile (config/fastdds_shm.xml) in the camera's process too")
    elif publishers == 0:
        hint = "no publisher on the topic (check the remapping and the publisher's QoS)"
    else:
        hint = "check the topic, the publisher's QoS and the DDS transport"
    return f"{what} for {idle:.1f} s; {hint}"


def input_problems(counters: Counters, latency: dict[str, dict[str, float]], seconds_since_last_frame: float | None,
                   seconds_since_start: float, publishers: int | None, qos_problems: list[str] | None,
                   failed_since_last_report: int, last_error: str, thresholds: Thresholds) -> list[str]:
    """The WARN reasons of one camera input: no frames, incompatible QoS, age p95, drops, bad frames."""
    problems: list[str] = []
    idle = _idle_problem(seconds_since_last_frame, seconds_since_start, publishers, qos_problems, thresholds)
    if idle:
        problems.append(idle)
    problems += list(qos_problems or [])
    age_p95 = latency.get("age", {}).get("p95", float("nan"))
    if not math.isnan(age_p95) and age_p95 > thresholds.warn_latency_ms:
        problems.append(f"end-to-end p95 {age_p95:.0f} ms > {thresholds.warn_latency_ms:.0f} ms")
    if counters.received and counters.dropped / counters.received > thresholds.warn_drop_ratio:
        problems.append(
            f"dropped {counters.dropped}/{counters.received} frames "
            f"(> {thresholds.warn_drop_ratio:.0%}; the node cannot keep up with the camera rate)"
        )
    if failed_since_last_report:
        problems.append(f"{failed_since_last_report} bad frame(s) since the last report: {last_error}")
    return problems


def build_report(
    *,
    info: dict[str, str],
    counters: Counters,
    fps: float,
    latency: dict[str, dict[str, float]],
    seconds_since_last_frame: float | None,
    seconds_since_start: float,
    publishers: int | None = None,
    last_input_size: str = "",
    qos_problems: list[str] | None = None,
    failed_since_last_report: int = 0,
    runtime_error: str = "",
    last_error: str = "",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    extra_problems: list[str] | None = None,
    extra_values: list[tuple[str, str]] | None = None,
) -> DiagnosticReport:
    """Decide the level and message and list every key (see ``report_keys``; multi-camera mode appends
    ``extra_values``, the batch keys, and ``extra_problems``, e.g. the stale cameras)."""
    problems: list[str] = []
    level = OK
    if runtime_error:
        level = ERROR
        problems.append(f"inference failing: {runtime_error}")
    problems += input_problems(counters, latency, seconds_since_last_frame, seconds_since_start, publishers,
                               qos_problems, failed_since_last_report, last_error, thresholds)
    problems += list(extra_problems or [])
    if problems and level == OK:
        level = WARN
    message = "; ".join(problems) if problems else f"ok, {fps:.1f} fps"

    values: list[tuple[str, str]] = [(key, str(info.get(key, ""))) for key in INFO_KEYS]
    values += _counter_values(counters, fps)
    values += _latency_values(latency, STAGES)
    values += _tail_values(seconds_since_last_frame, publishers, last_input_size, qos_problems, last_error)
    values += list(extra_values or [])
    return DiagnosticReport(level, message, values)


# ------------------------------------------------------------------------------------------------ multi-camera mode
CAMERA_STAGES = ("transport", "wait", "age")  # per camera; preprocess/inference/postprocess are the batch's
BATCH_KEYS = ("cameras", "batch", "batch_timeout_ms", "batches", "batch_fill_ratio", "batch_slot_wait_p50_ms",
              "batch_due_wait_p50_ms")


def camera_report_keys() -> list[str]:
    """Every key of a camera's status (``segmentation: camera <name>``), in order."""
    keys = ["camera", "topic"] + list(COUNTER_KEYS) + ["fps"]
    keys += [f"latency_{stage}_{stat}_ms" for stage in CAMERA_STAGES for stat in STATS]
    keys += list(TAIL_KEYS)
    return keys


def batch_values(cameras: list[str], batch: int, timeout_ms: float, batches: int, fill_ratio: float,
                 slot_wait_ms: float, due_wait_ms: float) -> list[tuple[str, str]]:
    """The batch keys of the main status: camera names, rows per batch, batches run, their mean fill ratio
    (real rows / batch over the latency window) and the median time the converter waited per batch for a free
    backend slot (the GPU or publishing is the bound) and then for the batch to be due (the cameras are)."""
    return [("cameras", ",".join(cameras)), ("batch", str(batch)), ("batch_timeout_ms", f"{timeout_ms:g}"),
            ("batches", str(batches)), ("batch_fill_ratio", _fmt(fill_ratio)),
            ("batch_slot_wait_p50_ms", _fmt(slot_wait_ms)), ("batch_due_wait_p50_ms", _fmt(due_wait_ms))]


def build_camera_report(
    *,
    camera: str,
    topic: str,
    counters: Counters,
    fps: float,
    latency: dict[str, dict[str, float]],
    seconds_since_last_frame: float | None,
    seconds_since_start: float,
    publishers: int | None = None,
    last_input_size: str = "",
    qos_problems: list[str] | None = None,
    failed_since_last_report: int = 0,
    last_error: str = "",
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    io_error: str = "",
) -> DiagnosticReport:
    """One camera's status in multi-camera mode: WARN when it is stale (no frame for ``warn_no_frames_s``), its
    frames are late, dropped or bad; ERROR only while its I/O process is down (``io_error``, io_mode process; a
    failing inference is the main status's)."""
    problems = [io_error] if io_error else []
    problems += input_problems(counters, latency, seconds_since_last_frame, seconds_since_start, publishers,
                               qos_problems, failed_since_last_report, last_error, thresholds)
    level = ERROR if io_error else WARN if problems else OK
    message = "; ".join(problems) if problems else f"ok, {fps:.1f} fps"
    values: list[tuple[str, str]] = [("camera", camera), ("topic", topic)]
    values += _counter_values(counters, fps)
    values += _latency_values(latency, CAMERA_STAGES)
    values += _tail_values(seconds_since_last_frame, publishers, last_input_size, qos_problems, last_error)
    return DiagnosticReport(level, message, values)


__all__ = [
    "BATCH_KEYS",
    "CAMERA_STAGES",
    "FOREIGN_STAMPS",
    "COUNTER_KEYS",
    "Counters",
    "DiagnosticReport",
    "ERROR",
    "INFERENCE_TASK",
    "INFO_KEYS",
    "LEVEL_NAMES",
    "OK",
    "STAGES",
    "STALE",
    "STATS",
    "TAIL_KEYS",
    "Thresholds",
    "WARN",
    "batch_values",
    "build_camera_report",
    "build_report",
    "camera_report_keys",
    "camera_task",
    "cpu_model",
    "hardware_id",
    "input_problems",
    "nvidia_gpu_model",
    "report_keys",
    "stamps_value",
    "status_name",
]
