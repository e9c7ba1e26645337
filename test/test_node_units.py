"""The node's pure parts without ROS: latency windows, diagnostics levels and keys, resizing, file resolution,
the backend's in-order submit/collect API."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from trt_segmentation.image_codec import resize_image, resize_nearest
from trt_segmentation.node.diagnostics import (
    ERROR,
    LEVEL_NAMES,
    OK,
    WARN,
    Counters,
    Thresholds,
    build_report,
    cpu_model,
    hardware_id,
    nvidia_gpu_model,
    report_keys,
    status_name,
)
from trt_segmentation.node.latency import RateMeter, RollingWindow, StageLatency
from trt_segmentation.node.params import params_from_dict
from trt_segmentation.node.startup import ModelFileError, resolve_model_file


def test_rolling_window_keeps_only_the_last_samples() -> None:
    window = RollingWindow(100)
    for value in range(1000):
        window.add(float(value))
    s = window.summary()
    assert s["n"] == 100 and s["max"] == 999.0
    assert s["p50"] == pytest.approx(np.percentile(np.arange(900, 1000), 50))
    assert s["p99"] == pytest.approx(np.percentile(np.arange(900, 1000), 99))
    assert np.isnan(RollingWindow(5).summary()["p50"])


def test_rate_meter_and_stage_latency() -> None:
    meter = RateMeter(horizon_s=5.0)
    for i in range(51):
        meter.tick(100.0 + i * 0.1)
    assert meter.rate(now=105.0) == pytest.approx(10.0)
    assert meter.rate(now=200.0) == 0.0  # nothing recent
    stages = StageLatency(("a",), window=10)
    stages.add_all({"a": 1.0, "b": 2.0})
    assert set(stages.summaries()) == {"a", "b"}


def _report(**overrides):
    base = dict(info={"backend": "onnxruntime"}, counters=Counters(100, 90, 10, 0), fps=30.0,
                latency={"age": {"p50": 40.0, "p95": 60.0, "p99": 70.0, "max": 80.0}},
                seconds_since_last_frame=0.1, seconds_since_start=60.0, thresholds=Thresholds(100.0, 0.5, 2.0))
    base.update(overrides)
    return build_report(**base)


def test_diagnostics_levels() -> None:
    ok = _report()
    assert ok.level == OK and ok.message.startswith("ok")
    assert [k for k, _ in ok.values] == report_keys()
    assert ok.as_dict()["latency_age_p95_ms"] == "60.00" and ok.as_dict()["latency_inference_p50_ms"] == "nan"
    slow = _report(latency={"age": {"p95": 150.0}})
    assert slow.level == WARN and "p95 150 ms > 100 ms" in slow.message
    drops = _report(counters=Counters(100, 30, 70, 0))
    assert drops.level == WARN and "dropped 70/100" in drops.message
    silent = _report(seconds_since_last_frame=None, seconds_since_start=3.0, publishers=0)
    assert silent.level == WARN and "no frame received yet" in silent.message and "no publisher" in silent.message
    starved = _report(seconds_since_last_frame=10.0, publishers=1)
    assert starved.level == WARN and "transport profile" in starved.message
    assert silent.as_dict()["seconds_since_last_frame"] == "never"
    qos = _report(qos_problems=["incompatible QoS (RELIABILITY)"])
    assert qos.level == WARN and qos.as_dict()["qos"] == "incompatible QoS (RELIABILITY)"
    bad = _report(failed_since_last_report=2, last_error="bad image dropped: zero-size image: 0x0")
    assert bad.level == WARN and "2 bad frame(s)" in bad.message
    broken = _report(runtime_error="CUDA error", qos_problems=["x"])
    assert broken.level == ERROR and broken.message.startswith("inference failing")


def test_cameras_pick_the_batch_n_file_and_are_checked(tmp_path) -> None:
    for name in ("m_256x512_fp32.onnx", "m_256x512_b3_fp32.onnx", "m_128x256_b2_fp32.onnx"):
        (tmp_path / name).touch()
    base = {"backend": "onnxruntime", "model": "m", "engine_dir": str(tmp_path), "precision": "fp32"}
    assert resolve_model_file(params_from_dict(base)).name == "m_256x512_fp32.onnx"  # a b3 file beside it is ignored
    three = params_from_dict(dict(base, cameras=["front", "left", "right"]))
    assert three.cameras == ("front", "left", "right") and three.batch == 3
    assert resolve_model_file(three).name == "m_256x512_b3_fp32.onnx"
    assert resolve_model_file(params_from_dict(dict(base, cameras=["a", "b"]))).name == "m_128x256_b2_fp32.onnx"
    with pytest.raises(ModelFileError, match=r"no m_\*x\*_b4_fp32.onnx .*batch 4: one frame per camera"):
        resolve_model_file(params_from_dict(dict(base, cameras=["a", "b", "c", "d"])))
    with pytest.raises(ValueError, match="names a camera twice"):
        params_from_dict(dict(base, cameras=["front", "front"]))
    with pytest.raises(ValueError, match="no valid camera name"):
        params_from_dict(dict(base, cameras=["front/left"]))
    for name in ("_front", "fr\u00f6nt", "1st", ""):  # the one rule of artifacts.CAMERA_NAME (bags use it too)
        with pytest.raises(ValueError, match="no valid camera name"):
            params_from_dict(dict(base, cameras=[name]))
    with pytest.raises(ValueError, match=r"cameras must be a list of names, e\.g\. \['front'\]"):
        params_from_dict(dict(base, cameras="front"))  # not five cameras 'f', 'r', 'o', 'n', 't'


def test_level_names_are_the_message_constants() -> None:
    msg = pytest.importorskip("diagnostic_msgs.msg")  # the node publishes getattr(DiagnosticStatus, LEVEL_NAMES[x])
    for level, name in LEVEL_NAMES.items():
        assert getattr(msg.DiagnosticStatus, name) == bytes([level])


def test_status_name_and_hardware_id(tmp_path) -> None:
    assert status_name("segmentation") == "segmentation: inference"  # diagnostic_updater: "<node name>: <task>"
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338\n")
    assert cpu_model(str(cpuinfo)) == "Intel(R) Xeon(R) Gold 6338"
    arm = tmp_path / "arm_cpuinfo"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd\n")
    board = tmp_path / "model"
    board.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\0")
    assert cpu_model(str(arm), str(board)) == "NVIDIA Jetson AGX Orin Developer Kit"
    gpu = tmp_path / "gpus" / "0000:01:00.0"
    gpu.mkdir(parents=True)
    (gpu / "information").write_text("Model: \t\t NVIDIA H200\nIRQ:   \t\t 42\n")
    assert nvidia_gpu_model(str(tmp_path / "gpus" / "*" / "information")) == "NVIDIA H200"
    assert hardware_id({"device": "NVIDIA H200", "backend": "tensorrt"}) == "NVIDIA H200"  # GPU backends name it
    assert hardware_id({"providers": "CPUExecutionProvider"}) == cpu_model()


def test_resize_nearest_matches_pillow_and_round_trips() -> None:
    labels = np.random.default_rng(0).integers(0, 19, (64, 128), dtype=np.uint8)
    for size in ((256, 512), (37, 91), (64, 128)):
        ours = resize_nearest(labels, *size)
        pillow = np.asarray(Image.fromarray(labels).resize(size[::-1], Image.NEAREST))
        assert ours.shape == size and np.array_equal(ours, pillow)
    assert np.array_equal(resize_nearest(resize_nearest(labels, 128, 256), 64, 128), labels)
    image = np.zeros((100, 150, 3), np.uint8)
    assert resize_image(image, 64, 128).shape == (64, 128, 3)
    assert resize_image(image, 100, 150) is image


def test_precision_picks_the_file(tmp_path) -> None:
    for name in ("m_256x512_fp32.onnx", "m_256x512_int8.onnx", "m_512x1024_fp16.onnx", "m_256x512_fp16.onnx"):
        (tmp_path / name).write_bytes(b"")
    d = str(tmp_path)
    assert resolve_model_file(params_from_dict({"backend": "onnxruntime", "model": "m", "engine_dir": d,
                                                "precision": "int8"})).name == "m_256x512_int8.onnx"
    assert resolve_model_file(params_from_dict({"backend": "tensorrt", "model": "m", "engine_dir": d,
                                                "precision": "int8", "engine_height": 256, "engine_width": 512})
                              ).name == "m_256x512_int8.engine"
    assert resolve_model_file(params_from_dict({"backend": "onnxruntime", "onnx_path": "/x/y.onnx"})).name == "y.onnx"
    with pytest.raises(ModelFileError, match="several sizes"):
        resolve_model_file(params_from_dict({"backend": "onnxruntime", "model": "m", "engine_dir": d,
                                             "precision": "fp16"}))
    with pytest.raises(ModelFileError, match="tools/build_engine.py"):
        resolve_model_file(params_from_dict({"backend": "onnxruntime", "model": "m", "engine_dir": d,
                                             "precision": "mixed"}))
    with pytest.raises(ValueError, match="choose one of"):
        params_from_dict({"precision": "int4"})
    with pytest.raises(ValueError, match="outside"):
        params_from_dict({"overlay_alpha": 1.5})


def test_submit_collect_keeps_order_on_a_synchronous_backend(tmp_path, random_model_factory) -> None:
    pytest.importorskip("torch", reason="exports a SwiftNet; the Jazzy leg has no torch")
    from trt_segmentation.export import ExportOptions, export_onnx
    from trt_segmentation.runtime import BackendError, create_backend

    path = tmp_path / "m.onnx"
    export_onnx(random_model_factory("single_scale", "resnet18", seed=0), path, ExportOptions(64, 128))
    backend = create_backend("onnxruntime", path)
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 128, 3), dtype=np.uint8)
    got = []
    for i, frame in enumerate(frames):
        backend.submit(frame, tag=i)
        with pytest.raises(BackendError, match="in flight"):
            backend.submit(frame)
        got.append(backend.collect())
    assert [tag for tag, _ in got] == [0, 1, 2]
    assert np.array_equal(got[1][1].labels, backend.infer(frames[1]).labels)
    with pytest.raises(BackendError, match="nothing in flight"):
        backend.collect()
    with pytest.raises(BackendError, match="unknown or unavailable backend"):
        create_backend("tflite", path)


def test_tensorrt_backend_refuses_clearly_before_needing_a_gpu(tmp_path) -> None:
    from trt_segmentation.engine.metadata import EngineMetadata, write_metadata
    from trt_segmentation.runtime import BackendError
    from trt_segmentation.runtime.tensorrt_backend import EngineMismatch, TensorRtBackend, check_engine_metadata

    engine = tmp_path / "m_256x512_int8.engine"
    with pytest.raises(BackendError, match="engine not found"):
        TensorRtBackend(engine)
    engine.write_bytes(b"plan")
    with pytest.raises(EngineMismatch, match="metadata .* is missing"):
        TensorRtBackend(engine)
    meta = EngineMetadata(model="m", height=256, width=512, precision="fp16", tensorrt_version="10.3.0",
                          builder="tensorrt", typing="strong", gpu_name="Orin", compute_capability="8.7",
                          onnx_sha256="0" * 64)
    write_metadata(engine, meta)
    with pytest.raises(BackendError, match="TensorRT is not installed"):  # this machine has no TensorRT
        TensorRtBackend(engine)
    onnx = tmp_path / "m_256x512_int8.onnx"
    onnx.write_bytes(b"re-exported")
    with pytest.raises(EngineMismatch) as info:
        check_engine_metadata(engine, meta, precision="int8", tensorrt_version="10.7.0", compute_capability="8.7",
                              onnx_path=onnx)
    text = str(info.value)
    for part in (str(engine), "precision is fp16, int8 was asked", "built with TensorRT 10.3.0, this is TensorRT "
                 "10.7.0", "the ONNX changed", "Expected TensorRT 10.7.0", "tools/build_on_target.py"):
        assert part in text, text
    check_engine_metadata(engine, meta, precision="fp16", tensorrt_version="10.3.0", compute_capability="8.7")


def test_frame_worker_keeps_the_newest_frame_in_order(tmp_path, random_model_factory) -> None:
    """The node's worker without ROS: posted much faster than processed, labels come out in order, every frame
    is processed or counted as dropped (also the one left waiting at stop)."""
    pytest.importorskip("torch", reason="exports a SwiftNet; the Jazzy leg has no torch")
    import threading
    import time
    from types import SimpleNamespace

    from trt_segmentation.export import ExportOptions, export_onnx
    from trt_segmentation.node import FrameWorker
    from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend

    path = tmp_path / "m.onnx"
    export_onnx(random_model_factory("single_scale", "resnet18", seed=0), path, ExportOptions(64, 128))
    rgb = np.random.default_rng(0).integers(0, 256, (96, 160, 3), dtype=np.uint8)  # resized to 64x128 and back
    published, lock = [], threading.Lock()

    def publish(pending, labels) -> None:
        with lock:
            published.append((int(pending.header.frame_id), labels))

    backend = OnnxRuntimeBackend(path, threads=1)
    worker = FrameWorker(backend, publish)
    worker.start()
    for i in range(300):
        header = SimpleNamespace(frame_id=str(i), stamp=SimpleNamespace(sec=1, nanosec=0))
        worker.post(SimpleNamespace(encoding="bgr8", height=96, width=160, step=480, data=rgb[..., ::-1].tobytes(),
                                    header=header))
        time.sleep(0.001)
    worker.stop()
    counters = worker.snapshot()
    ids = [i for i, _ in published]
    assert ids == sorted(ids) and len(ids) >= 2
    assert counters.received == 300 == counters.processed + counters.dropped
    assert counters.dropped > 0 and counters.failed == 0
    expected = resize_nearest(backend.infer(np.ascontiguousarray(resize_image(rgb, 64, 128))).labels, 96, 160)
    assert all(np.array_equal(labels, expected) for _, labels in published)


def test_documented_startup_error_is_what_the_node_prints(tmp_path, monkeypatch) -> None:
    """docs/node.md's start-up error example (wrapped there) is the message load_backend raises for that case,
    with the installed TensorRT named as on a JetPack 6 Jetson."""
    import re
    from pathlib import Path

    from trt_segmentation.node.startup import StartupError, installed_tensorrt, load_backend

    docs = (Path(__file__).resolve().parents[1] / "docs" / "node.md").read_text()
    block = re.search(r"### Start-up errors.*?```\n(.*?)```", docs, re.S)
    assert block, "docs/node.md: no start-up error example"
    documented = " ".join(line.strip() for line in block.group(1).splitlines())
    (tmp_path / "engines").mkdir()
    (tmp_path / "engines" / "swiftnet_ss_rn18_1024x2048_fp32.onnx").touch()
    monkeypatch.chdir(tmp_path)
    params = params_from_dict({"backend": "tensorrt", "precision": "int8", "engine_dir": "engines",
                               "engine_height": 1024, "engine_width": 2048})
    with pytest.raises(StartupError) as raised:
        load_backend(params, None)
    printed = f"[FATAL] [segmentation]: cannot start: {raised.value}".replace(installed_tensorrt(), "TensorRT 10.3.0")
    assert documented == printed


def test_the_node_processes_keep_frames_on_the_heap_where_glibc_runs_them() -> None:
    """heap.keep_frames_on_heap (called by the node and each I/O process before their first take) is taken by
    glibc; the environment form the benchmark hands its camera/relay/listener holds the same numbers."""
    import platform

    from trt_segmentation.node.heap import ENVIRONMENT, MMAP_THRESHOLD, TRIM_THRESHOLD, keep_frames_on_heap

    assert keep_frames_on_heap() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert ENVIRONMENT == {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    assert MMAP_THRESHOLD >= 1024 * 2048 * 3  # above a 1024x2048 RGB frame


def test_the_in_host_wait_is_measured_on_the_monotonic_clock_whatever_the_ros_clock_reads() -> None:
    """Under use_sim_time a frame's ROS receipt time is the bag's (or 0 before the first /clock): the mailbox wait
    comes from CLOCK_MONOTONIC at receipt and at conversion, never from that clock; without a monotonic receipt
    time (0) it is not measured."""
    from types import SimpleNamespace

    from trt_segmentation.node.frames import Frame, convert_frame

    header = SimpleNamespace(frame_id="cam", stamp=SimpleNamespace(sec=1_700_000_000, nanosec=0))
    msg = SimpleNamespace(encoding="rgb8", height=2, width=2, step=6, data=bytes(12), header=header)
    for ros_received_ns in (0, 1_700_000_000 * 10**9, 5 * 10**18):
        frame = Frame(msg, False, ros_received_ns, received_mono_ns=10_000_000)
        pending, _ = convert_frame(frame, "rgb", (2, 2), 1 << 20, False, wait_end_ns=13_000_000)
        assert pending.wait_ms == pytest.approx(3.0)
    pending, _ = convert_frame(Frame(msg, False, 1), "rgb", (2, 2), 1 << 20, False, wait_end_ns=13_000_000)
    assert pending.wait_ms != pending.wait_ms  # NaN
