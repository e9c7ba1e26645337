"""Multi-camera mode end to end: one node process (ONNX Runtime, a batch-3 model, started as the launch file starts
it with cameras:=[front,left,right]) and three independent camera publisher processes at different rates, sizes
and encodings, over real DDS on loopback. Every label carries its own camera's header (frame_id, stamp) and size
and equals the labels of the same frame run on its own through the batch-1 model of the same weights (offline,
with the same resize), so batching changes nothing in the result. A camera that stops leaves the other two
processed and is named stale (WARN) in the diagnostics; bad input on one camera is counted on that camera and the
others are unaffected; a model whose batch is not the number of cameras is one start-up error.

Each publisher sends its next frame only once the labels of the previous one arrived (lockstep) or the camera's
status accounts for it (settle), so a slow shared machine cannot turn these into drop tests; no wall-clock bound.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from node_fixtures import MODEL, H, W
from node_harness import (
    STATUS,
    camera_status,
    encode_frame,
    expected_rgb,
    finish,
    launch_command,
    listener,
    node_process,
    save_frames,
    small_model_dir,
    smooth_frames,
    start_publisher,
)
from PIL import Image

from trt_segmentation.artifacts import artifact_path
from trt_segmentation.node.diagnostics import WARN, camera_report_keys
from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend

CAMERAS = ("front", "left", "right")
NODE = "/segmentation"


@pytest.fixture(scope="module")
def models(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    """swiftnet_ss_rn18_256x512_fp32.onnx and ..._b3_fp32.onnx: one seeded random net, batch 1 and batch 3."""
    return small_model_dir(tmp_path_factory, random_model_factory, "multi_camera_models", (H, W), batches=(1, 3))


def offline_labels(backend: OnnxRuntimeBackend, rgb: np.ndarray) -> np.ndarray:
    """The reference: the batch-1 model on this frame alone, resized as docs/node.md says (Pillow bilinear to the
    engine size, Pillow nearest back), with Pillow called here rather than the package's helpers."""
    h, w = rgb.shape[:2]
    small = rgb if (h, w) == (H, W) else np.asarray(Image.fromarray(rgb).resize((W, H), Image.BILINEAR))
    labels = backend.infer(np.ascontiguousarray(small)).labels
    return labels if (h, w) == (H, W) else np.asarray(Image.fromarray(labels).resize((w, h), Image.NEAREST))


def camera_frames(reference: OnnxRuntimeBackend, camera: str, count: int, size: tuple[int, int], encoding: str,
                  seed: int) -> tuple[list, dict]:
    """Frames for one camera's publisher and the labels each must get, by frame id (``<camera><n>``)."""
    frames, references = [], {}
    for i, rgb in enumerate(smooth_frames(count, *size, seed=seed)):
        step, data = encode_frame(rgb, encoding)
        frames.append({"encoding": encoding, "height": size[0], "width": size[1], "step": step, "data": data})
        references[f"{camera}{i}"] = offline_labels(reference, expected_rgb(rgb, encoding))
    return frames, references


def node_argv(models, **extra: str) -> tuple[list[str], dict]:  # noqa: ANN001
    params = {"qos_reliability": "reliable", "diagnostics_period": "0.3", "batch_timeout_ms": "40.0"}
    params.update(extra)
    return launch_command({"backend": "onnxruntime", "engine_dir": str(models), "precision": "fp32",
                           "cameras": f"[{','.join(CAMERAS)}]", "camera_topic": "/cams/{camera}/image_raw"},
                          extra=params)


def labels_topic(camera: str) -> str:
    return f"{NODE}/{camera}/labels"


def check_camera(lis, node, camera: str, references: dict, record) -> int:  # noqa: ANN001
    """Every label of ``camera``: its own frame's header and size, the offline labels; returns how many."""
    sent = {h["frame_id"]: (h["sec"], h["nanosec"]) for h in json.loads(record.read_text())}
    received = lis.messages(labels_topic(camera))
    assert received, f"no labels of {camera}\n{node.log()}"
    for msg in received:
        assert msg.header.frame_id in references, f"{camera} got {msg.header.frame_id}"  # no other camera's frame
        want = references[msg.header.frame_id]
        assert (msg.encoding, msg.height, msg.width, msg.step) == ("mono8", *want.shape, want.shape[1])
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == sent[msg.header.frame_id]
        got = np.frombuffer(bytes(msg.data), np.uint8).reshape(want.shape)
        assert np.array_equal(got, want), f"{msg.header.frame_id}: {np.mean(got != want):.4%} pixels differ"
    return len(received)


def test_three_cameras_each_get_their_own_labels_equal_to_frames_run_one_at_a_time(models, tmp_path) -> None:
    # different sizes (the engine's, smaller, larger), encodings and rates; each camera its own process
    plan = {"front": ((H, W), "rgb8", 5.0, 6), "left": ((200, 400), "bgr8", 3.0, 5), "right": ((320, 640), "rgb8",
                                                                                                 2.0, 4)}
    references, paths = {}, {}
    with OnnxRuntimeBackend(artifact_path(models, MODEL, H, W, "fp32", ".onnx")) as reference:
        assert reference.batch == 1
        for seed, (camera, (size, encoding, _, count)) in enumerate(plan.items(), start=10):
            frames, references[camera] = camera_frames(reference, camera, count, size, encoding, seed)
            paths[camera] = save_frames(tmp_path / f"{camera}.npz", frames)
    argv, env = node_argv(models)
    with node_process(argv, env, tmp_path / "node.log") as node, \
            listener(extra_topics=tuple(labels_topic(c) for c in CAMERAS)) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 60, "the node's first diagnostics", node)
        publishers = {camera: start_publisher(paths[camera], f"/cams/{camera}/image_raw", rate, env=env,
                                              reliable=True, lockstep=labels_topic(camera),
                                              record=tmp_path / f"{camera}.json", frame_id_prefix=camera)
                      for camera, (_, _, rate, _) in plan.items()}
        for camera, proc in publishers.items():
            assert f"sent {plan[camera][3]}" in finish(proc, 120)
        counts = {c: lis.wait_for(lambda c=c: lis.count(labels_topic(c)) >= plan[c][3] and lis.count(labels_topic(c)),
                                  30, f"every label of {c}", node) for c in CAMERAS}
        status, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and int(s[1]["frames_processed"]) == sum(counts.values()) and s,
            15, "diagnostics counting every frame", node)
        cameras = {c: lis.wait_for(lambda c=c: (s := lis.last_status(camera_status(c))) and int(
            s[1]["frames_processed"]) == plan[c][3] and s, 15, f"the {c} status", node) for c in CAMERAS}
    for camera in CAMERAS:
        assert check_camera(lis, node, camera, references[camera], tmp_path / f"{camera}.json") == plan[camera][3]
    assert values["cameras"] == "front,left,right" and values["batch"] == "3"
    assert values["engine_file"].endswith(f"{MODEL}_{H}x{W}_b3_fp32.onnx")
    batches = int(values["batches"])
    assert max(plan[c][3] for c in CAMERAS) <= batches <= sum(plan[c][3] for c in CAMERAS)
    # the fill ratio is the real rows per batch: every frame was one row of one batch
    assert float(values["batch_fill_ratio"]) == pytest.approx(sum(counts.values()) / (3 * batches), abs=0.006)
    # the converter's waits per batch are measured (milliseconds, not nan)
    assert float(values["batch_slot_wait_p50_ms"]) >= 0 and float(values["batch_due_wait_p50_ms"]) >= 0
    for camera, (cam_status, cam_values) in cameras.items():
        assert [k for k in camera_report_keys() if k not in cam_values] == []
        assert cam_values["camera"] == camera and cam_values["topic"] == f"/cams/{camera}/image_raw"
        assert cam_values["frames_failed"] == "0" and cam_values["frames_dropped"] == "0"
        assert cam_values["input_size"] == "{}x{}".format(*plan[camera][0])
        assert cam_values["latency_age_p50_ms"] != "nan"
        assert cam_status.hardware_id == status.hardware_id
    assert node.proc.returncode == 0, node.log()


def test_a_stopped_camera_is_named_stale_and_the_others_keep_being_processed(models, tmp_path) -> None:
    with OnnxRuntimeBackend(artifact_path(models, MODEL, H, W, "fp32", ".onnx")) as reference:
        plan = {"front": 10, "left": 10, "right": 2}  # right sends 2 frames, then its process ends
        references, paths = {}, {}
        for seed, (camera, count) in enumerate(plan.items(), start=20):
            frames, references[camera] = camera_frames(reference, camera, count, (H, W), "rgb8", seed)
            paths[camera] = save_frames(tmp_path / f"{camera}.npz", frames)
    argv, env = node_argv(models, warn_no_frames_s="1.0")
    with node_process(argv, env, tmp_path / "node.log") as node, \
            listener(extra_topics=tuple(labels_topic(c) for c in CAMERAS)) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 60, "the node's first diagnostics", node)
        right = start_publisher(paths["right"], "/cams/right/image_raw", 4.0, env=env, reliable=True,
                                lockstep=labels_topic("right"), record=tmp_path / "right.json", frame_id_prefix="right")
        assert "sent 2" in finish(right, 120)
        lis.wait_for(lambda: lis.count(labels_topic("right")) == 2, 30, "the right camera's labels", node)
        # the right camera has stopped; front and left start now and must all be processed without it
        others = {c: start_publisher(paths[c], f"/cams/{c}/image_raw", 4.0, env=env, reliable=True,
                                     lockstep=labels_topic(c), record=tmp_path / f"{c}.json", frame_id_prefix=c)
                  for c in ("front", "left")}
        stale, stale_values = lis.wait_for(
            lambda: (s := lis.last_status(camera_status("right"))) and s[0].level == bytes([WARN])
            and "no frames" in s[0].message and s, 60, "the right camera's stale WARN", node)
        main = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and "camera right stale" in s[0].message and s,
                            30, "the node's status naming the stale camera", node)
        for camera, proc in others.items():
            assert f"sent {plan[camera]}" in finish(proc, 120)
            lis.wait_for(lambda c=camera: lis.count(labels_topic(c)) >= plan[c], 30, f"every label of {camera}", node)
        fresh = {c: lis.wait_for(lambda c=c: (s := lis.last_status(camera_status(c))) and int(
            s[1]["frames_processed"]) == plan[c] and s, 15, f"the {c} status", node) for c in ("front", "left")}
    for camera, count in plan.items():
        assert check_camera(lis, node, camera, references[camera], tmp_path / f"{camera}.json") == count
    assert stale_values["frames_processed"] == "2" and stale_values["seconds_since_last_frame"] != "never"
    assert main[0].level == bytes([WARN])
    assert all("right" not in values["camera"] for _, values in fresh.values())
    assert node.proc.returncode == 0, node.log()


def test_bad_input_on_one_camera_is_counted_there_and_the_others_are_unaffected(models, tmp_path) -> None:
    with OnnxRuntimeBackend(artifact_path(models, MODEL, H, W, "fp32", ".onnx")) as reference:
        good = {c: camera_frames(reference, c, 4, (H, W), "rgb8", seed) for seed, c in enumerate(CAMERAS, start=30)}
    for camera in ("left", "right"):
        save_frames(tmp_path / f"{camera}.npz", good[camera][0])
    # front: good frames between bad ones (unsupported encoding, data shorter than step*height, zero size)
    bad = [{"encoding": "16UC1", "height": H, "width": W, "step": W * 2, "data": bytes(H * W * 2)},
           {"encoding": "rgb8", "height": H, "width": W, "step": W * 3, "data": bytes(100)},
           {"encoding": "rgb8", "height": 0, "width": 0, "step": 0, "data": b""}]
    front = [good["front"][0][0], bad[0], good["front"][0][1], bad[1], bad[2], good["front"][0][2]]
    save_frames(tmp_path / "front.npz", front)
    front_refs = {"front0": good["front"][1]["front0"], "front2": good["front"][1]["front1"],
                  "front5": good["front"][1]["front2"]}  # frame ids count every frame sent, bad ones too
    argv, env = node_argv(models)
    with node_process(argv, env, tmp_path / "node.log") as node, \
            listener(extra_topics=tuple(labels_topic(c) for c in CAMERAS)) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 60, "the node's first diagnostics", node)
        procs = {c: start_publisher(tmp_path / f"{c}.npz", f"/cams/{c}/image_raw", 4.0, env=env, reliable=True,
                                    settle=camera_status(c), record=tmp_path / f"{c}.json", frame_id_prefix=c)
                 for c in CAMERAS}
        for camera, proc in procs.items():
            assert f"sent {6 if camera == 'front' else 4}" in finish(proc, 120)
        values = {c: lis.wait_for(lambda c=c: (s := lis.last_status(camera_status(c))) and int(
            s[1]["frames_processed"]) + int(s[1]["frames_failed"]) == (6 if c == "front" else 4) and s[1], 15,
            f"the {c} status accounting for every frame", node) for c in CAMERAS}
        assert node.proc.poll() is None, "the node died"
    assert (values["front"]["frames_failed"], values["front"]["frames_processed"]) == ("3", "3")
    assert "camera front" in values["front"]["last_error"] and "bad image dropped" in values["front"]["last_error"]
    for camera in ("left", "right"):
        assert (values[camera]["frames_failed"], values[camera]["frames_processed"]) == ("0", "4"), values[camera]
        assert values[camera]["last_error"] == ""
        assert check_camera(lis, node, camera, good[camera][1], tmp_path / f"{camera}.json") == 4
    assert check_camera(lis, node, "front", front_refs, tmp_path / "front.json") == 3
    assert "inference failing" not in node.log()


@pytest.mark.parametrize("case", ["two_cameras_for_batch_3", "single_camera_on_batch_3"])
def test_a_model_of_another_batch_is_one_start_up_error(models, tmp_path, case) -> None:
    b3 = artifact_path(models, MODEL, H, W, "fp32", ".onnx", batch=3)
    cameras = "[front,rear]" if case == "two_cameras_for_batch_3" else ""
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(models), "cameras": cameras},
                               extra={"onnx_path": str(b3)})
    with node_process(argv, env, tmp_path / "node.log") as node:
        code = node.wait(timeout=60)
        log = node.log()
    assert code == 1, log
    fatal = [line for line in log.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and "Traceback" not in log, log
    assert f"{b3} runs batches of 3 frames" in fatal[0]
    assert ("cameras has 2 name(s) (front, rear)" if cameras else "single-camera mode") in fatal[0], fatal[0]


@pytest.mark.parametrize("io_mode", ["process", "inprocess"])
def test_batch_timeout_ms_is_how_long_a_lone_cameras_frame_waits_for_the_others(models, tmp_path, io_mode) -> None:
    """Guards batch_timeout_ms (both io_modes): with only front publishing, each of its frames waits for the other
    cameras until the parameter's 600 ms pass, not the worker's default of 30 ms."""
    timeout_ms = 600.0
    frames = engine_size_frames(4)
    path = save_frames(tmp_path / "front.npz", frames)
    argv, env = node_argv(models, batch_timeout_ms=str(timeout_ms), io_mode=io_mode)
    with node_process(argv, env, tmp_path / "node.log") as node, listener(labels_topic("front")) as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 60, "the node's first diagnostics", node)
        finish(start_publisher(path, "/cams/front/image_raw", 2.0, env=env, reliable=True,
                               settle=camera_status("front")), 120)
        _, front = lis.wait_for(lambda: (s := lis.last_status(camera_status("front"))) and int(
            s[1]["frames_processed"]) == 4 and s, 15, "front's status counting its 4 frames", node)
        _, batch = lis.wait_for(lambda: (s := lis.last_status(STATUS)) and int(s[1]["batches"]) == 4 and s, 15,
                                "the batch status counting 4 batches", node)
    assert batch["batch_timeout_ms"] == f"{timeout_ms:g}"
    assert float(front["latency_wait_p50_ms"]) >= 0.9 * timeout_ms, front
    assert float(batch["batch_due_wait_p50_ms"]) >= 0.9 * timeout_ms, batch


def engine_size_frames(count: int) -> list:
    """``count`` rgb8 frames of the engine's size for a publisher (no offline labels)."""
    frames = []
    for rgb in smooth_frames(count, H, W, seed=5):
        step, data = encode_frame(rgb, "rgb8")
        frames.append({"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data})
    return frames
