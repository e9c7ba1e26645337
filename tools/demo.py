#!/usr/bin/env python3
"""The README's demo: street scenes -> rosbag -> segmentation node (ONNX Runtime) -> pictures and latency.

Steps, each printed as it runs:
  1. render procedural street scenes (deterministic) and write them as a rosbag2 (mcap) of sensor_msgs/Image;
  2. export the bundled demo checkpoint to ONNX at the demo size, and make its int8-cpu variant (ONNX Runtime's
     CPU INT8, calibrated on 16 other generated scenes: the fastest CPU precision at FP32's accuracy,
     docs/accuracy.md);
  3. start the node exactly as `ros2 launch trt_segmentation segmentation.launch.py backend:=onnxruntime
     precision:=int8-cpu` would;
  4. replay the bag into it over real DDS (loopback only) and listen to ~/labels, ~/overlay and /diagnostics;
  5. write demo_output/: contact_sheet.png (overlay | colour labels), overlay.gif, latency.png, diagnostics_summary.md.
No GPU needed. Example: tools/demo.py --frames 8 --size 256x512
With --camera-count N: a bag of N cameras (/cameras/<name>/image, different scenes), a batch-N model, the node in
multi-camera mode (cameras:=[front,left,...]); contact_sheet.png then shows one column per camera (overlay and
labels of the same moment side by side) and diagnostics_summary.md each camera's status too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import parse_size  # noqa: E402
from trt_segmentation.node.diagnostics import status_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = ROOT / "trt_segmentation" / "assets" / "swiftnet_ss_rn18_streets.pt"
IMAGE_TOPIC = "/camera/image_raw"
NODE = "/segmentation"
STATUS = status_name(NODE.strip("/"))  # "segmentation: inference", as diagnostic_updater names it


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=12, help="street scenes in the bag (default 12)")
    p.add_argument("--size", type=parse_size, default=(512, 1024), metavar="HxW",
                   help="image and model size (default 512x1024, the demo checkpoint's training size)")
    p.add_argument("--fps", type=float, default=2.0, help="bag frame rate (default 2 Hz; the CPU keeps up)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="SwiftNet checkpoint to export")
    p.add_argument("--out", type=Path, default=ROOT / "demo_output", help="output folder (replaced)")
    p.add_argument("--seed", type=int, default=2026, help="first scene seed (default 2026)")
    p.add_argument("--camera-count", type=int, default=0, metavar="N",
                   help="multi-camera mode with N cameras (2-6) through one batch-N model; default 0 = one camera")
    return p


CAMERA_NAMES = ("front", "left", "right", "rear", "front_left", "front_right")


def camera_names(count: int) -> list[str]:
    return list(CAMERA_NAMES[:count])


def make_camera_bag(out: Path, cameras: list[str], frames: int, size: tuple[int, int], fps: float, seed: int) -> None:
    """One bag, one topic per camera (/cameras/<name>/image), each camera its own scenes, all at ``fps``."""
    from trt_segmentation.data.bags import CameraStream, camera_topic, write_camera_bag
    from trt_segmentation.data.street_scenes import render_scene

    streams = [CameraStream(camera_topic(name), [render_scene(seed + 1000 * k + i, *size)[0] for i in range(frames)],
                            fps, name, frames) for k, name in enumerate(cameras)]
    print(f"  {write_camera_bag(out / 'street_bag', streams, encoding='rgb8', storage='mcap')}")


def make_bag(out: Path, frames: int, size: tuple[int, int], fps: float, seed: int) -> None:
    from trt_segmentation.data.bags import write_image_bag
    from trt_segmentation.data.street_scenes import render_scene

    images = []
    for i in range(frames):
        rgb, _ = render_scene(seed + i, *size)
        images.append(rgb)
        print(f"  scene {i + 1}/{frames}", end="\r", flush=True)
    summary = write_image_bag(out / "street_bag", images, fps=fps, topic=IMAGE_TOPIC, encoding="rgb8",
                              frame_id="camera", storage="mcap")
    print(f"  {summary}")


#: the demo's precision: on a CPU, ONNX Runtime's own INT8 variant is the fastest at FP32's accuracy
DEMO_PRECISION = "int8-cpu"
CALIBRATION_SCENES = 16


def export_model(checkpoint: Path, models_dir: Path, size: tuple[int, int], batch: int = 1) -> Path:
    from trt_segmentation.artifacts import artifact_path
    from trt_segmentation.export import ExportOptions, export_onnx
    from trt_segmentation.models import load_checkpoint

    if not checkpoint.is_file():
        raise SystemExit(f"error: checkpoint not found: {checkpoint}")
    model = load_checkpoint(checkpoint)
    path = artifact_path(models_dir, model.arch.name, *size, "fp32", ".onnx", batch=batch)
    export_onnx(model, path, ExportOptions(*size, batch=batch))
    print(f"  {checkpoint.name} -> {path}")
    return path


def make_cpu_variant(out: Path, fp32: Path, size: tuple[int, int], seed: int) -> None:
    """The int8-cpu variant next to the FP32 file, calibrated on scenes the bag does not contain."""
    from trt_segmentation.artifacts import Precision
    from trt_segmentation.data.street_scenes import write_street_split
    from trt_segmentation.precision import make_variant

    write_street_split(out / "calibration", "train", CALIBRATION_SCENES, seed=seed + 10_000, height=size[0],
                       width=size[1], progress=False)
    target = fp32.with_name(fp32.name.replace("_fp32.onnx", f"_{DEMO_PRECISION}.onnx"))
    report = make_variant(fp32, Precision(DEMO_PRECISION), target, f"cityscapes:{out / 'calibration'}@train",
                          calibration_count=CALIBRATION_SCENES)
    print(f"  {fp32.name} -> {target.name} ({report.seconds:.0f} s)")


@contextmanager
def running_node(out: Path, model: str, size: tuple[int, int], node_arguments: dict[str, str],
                 topics: tuple[str, ...]) -> Iterator[tuple[Any, Callable[[], bool]]]:
    """The node started as the launch file would (ONNX Runtime, the demo precision, overlays on, ``node_arguments``)
    and a probe on ``topics`` and /diagnostics, once the node's first diagnostics arrived: (probe, node alive?)."""
    from harness.launch_emulation import NodeProcess, launch_command, transport_profile_env
    from harness.topic_probe import TopicProbe

    arguments = {"backend": "onnxruntime", "precision": DEMO_PRECISION, "model": model, "engine_dir": str(out / "models"),
                 "publish_overlay": "true", **node_arguments}
    # a replay, not a live camera: reliable on both ends, so that no frame is lost while the node's side of
    # discovery still matches the player (a best-effort subscriber drops such a frame silently)
    argv, env = launch_command(arguments, extra={"engine_height": str(size[0]), "engine_width": str(size[1]),
                                                 "qos_reliability": "reliable"})
    print("  " + " ".join(argv[1:]))
    os.environ.update(transport_profile_env())  # the player gets the node's transport profile, as a camera would
    with NodeProcess(argv, env, out / "node.log") as node, TopicProbe(topics) as probe:
        alive = lambda: node.proc.poll() is None  # noqa: E731
        try:
            probe.wait_for(lambda: probe.last_status(STATUS), 120, "the node's first diagnostics", alive)
        except (TimeoutError, RuntimeError) as exc:
            raise SystemExit(f"error: {exc}; node log:\n{node.log()}") from None
        yield probe, alive


def replay(out: Path) -> int:
    """Play the demo bag into the node (reliable, stamped now, once the node subscribed); the frames sent."""
    from trt_segmentation.apps.bag_player import play_bag

    return play_bag(out / "street_bag", rate=1.0, stamps="now", qos="reliable", wait_for_subscribers=1,
                    progress=False, log=lambda text: print(f"  {text}"))


def run_node_and_replay(out: Path, model: str, size: tuple[int, int], frames: int, fps: float) -> tuple:
    with running_node(out, model, size, {"image_topic": IMAGE_TOPIC}, (f"{NODE}/labels", f"{NODE}/overlay")
                      ) as (probe, alive):
        step(f"replaying {frames} frames at {fps:g} Hz into the node")
        sent = replay(out)
        try:
            probe.wait_for(lambda: probe.count(f"{NODE}/labels") >= sent, 60, "labels of the last frame", alive)
        except TimeoutError:
            print(f"  note: the node published labels for {probe.count(f'{NODE}/labels')} of {sent} frames "
                  "(it skips frames it cannot keep up with and counts them as dropped)")
        time.sleep(1.5)  # one more diagnostics period, so the summary includes the last frame
        status = probe.last_status(STATUS)
        labels = list(probe.images[f"{NODE}/labels"])
        overlays = list(probe.images[f"{NODE}/overlay"])
    return sent, status, labels, overlays


def run_cameras_and_replay(out: Path, model: str, size: tuple[int, int], cameras: list[str]) -> tuple:
    """The node in multi-camera mode fed by the multi-camera bag; (sent, main status, camera statuses, labels and
    overlays per camera)."""
    from trt_segmentation.data.bags import camera_topic
    from trt_segmentation.node.diagnostics import camera_task

    arguments = {"cameras": f"[{','.join(cameras)}]",
                 "camera_topic": camera_topic("camera").replace("/camera/", "/{camera}/")}
    topics = tuple(f"{NODE}/{c}/{kind}" for c in cameras for kind in ("labels", "overlay"))
    with running_node(out, model, size, arguments, topics) as (probe, alive):
        step(f"replaying {len(cameras)} cameras into the node (one batch of {len(cameras)} per moment)")
        sent = replay(out)
        try:
            probe.wait_for(lambda: sum(probe.count(f"{NODE}/{c}/labels") for c in cameras) >= sent, 60,
                           "labels of the last frames", alive)
        except TimeoutError:
            print("  note: the node skipped frames it could not keep up with (counted as dropped)")
        time.sleep(1.5)  # one more diagnostics period
        status = probe.last_status(STATUS)
        per_camera = {c: probe.last_status(status_name(NODE.strip("/"), camera_task(c))) for c in cameras}
        images = {c: (list(probe.images[f"{NODE}/{c}/labels"]), list(probe.images[f"{NODE}/{c}/overlay"]))
                  for c in cameras}
    return sent, status, per_camera, images


def save_camera_sheet(out: Path, images: dict) -> None:
    """contact_sheet.png of the multi-camera run: one row per moment, per camera its overlay | labels."""
    import numpy as np
    from PIL import Image

    from trt_segmentation.image_codec import image_to_array
    from trt_segmentation.palette import colorize

    columns = []
    for labels, overlays in images.values():
        by_id = {m.header.frame_id + str(m.header.stamp.sec) + str(m.header.stamp.nanosec): m for _, m in labels}
        pairs = []
        for _, ov in overlays:
            label = by_id.get(ov.header.frame_id + str(ov.header.stamp.sec) + str(ov.header.stamp.nanosec))
            if label is not None:
                mask = colorize(np.frombuffer(label.data, np.uint8).reshape(label.height, label.step)[:, : label.width])
                pairs.append(np.concatenate([image_to_array(ov.encoding, ov.height, ov.width, ov.step, ov.data),
                                             mask], axis=1))
        columns.append(pairs)
    rows = min((len(c) for c in columns), default=0)
    if not rows:
        return
    grid = [np.concatenate([np.asarray(Image.fromarray(c[i]).resize(columns[0][0].shape[1::-1]))
                            for c in columns], axis=1) for i in range(min(rows, 6))]
    sheet = np.concatenate(grid, axis=0)
    scale = 1600 / sheet.shape[1]
    Image.fromarray(sheet).resize((1600, int(sheet.shape[0] * scale))).save(out / "contact_sheet.png")


def save_pictures(out: Path, labels: list, overlays: list, status: tuple | None) -> None:
    import numpy as np
    from PIL import Image

    from trt_segmentation.image_codec import image_to_array

    def rgb_of(msg) -> np.ndarray:  # noqa: ANN001
        return image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.data)

    from trt_segmentation.palette import colorize

    by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for _, m in labels}
    rows, frames = [], []
    for _, overlay in overlays:
        label = by_stamp.get((overlay.header.stamp.sec, overlay.header.stamp.nanosec))
        if label is None:
            continue
        picture = rgb_of(overlay)
        mask = colorize(np.frombuffer(label.data, np.uint8).reshape(label.height, label.step)[:, : label.width])
        frames.append(Image.fromarray(picture))
        rows.append(np.concatenate([picture, mask], axis=1))
    if rows:
        sheet = np.concatenate(rows[:8], axis=0)
        scale = 1024 / sheet.shape[1]
        Image.fromarray(sheet).resize((1024, int(sheet.shape[0] * scale))).save(out / "contact_sheet.png")
        small = [f.resize((f.width // 2, f.height // 2)) for f in frames]
        small[0].save(out / "overlay.gif", save_all=True, append_images=small[1:], duration=500, loop=0)

    ages = np.array([(t - (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9)) * 1e3 for t, m in labels])
    values = status[1] if status else {}
    from trt_segmentation.node.diagnostics import STAGES

    stages = tuple(STAGES)  # transport, wait, preprocess, inference, postprocess, age
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if ages.size:
        left.hist(ages, bins=min(20, max(5, ages.size)), color="#4477aa")
    left.set(title="end-to-end age at the listener (ms)", xlabel="labels received - image stamp (ms)", ylabel="frames")
    p50 = [float(values.get(f"latency_{s}_p50_ms") or 0) for s in stages]
    p95 = [float(values.get(f"latency_{s}_p95_ms") or 0) for s in stages]
    x = np.arange(len(stages))
    right.bar(x - 0.2, p50, 0.4, label="p50")
    right.bar(x + 0.2, p95, 0.4, label="p95")
    right.set_xticks(x, stages)
    right.set(title="per-stage latency reported by the node (ms)", ylabel="ms")
    right.legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=90)
    plt.close(fig)

    lines = ["# Demo diagnostics summary", "",
             f"Node status: **{ {0: 'OK', 1: 'WARN', 2: 'ERROR'}.get(status[0].level[0], '?') if status else 'none'}** "
             f"{status[0].message if status else ''}", "",
             "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in values.items()]
    if ages.size:
        lines += ["", f"End-to-end age measured by the listener over {ages.size} frames: "
                      f"p50 {np.percentile(ages, 50):.0f} ms, p95 {np.percentile(ages, 95):.0f} ms, max {ages.max():.0f} ms."]
    (out / "diagnostics_summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    started = time.monotonic()
    if args.camera_count:
        if not 2 <= args.camera_count <= len(CAMERA_NAMES):
            raise SystemExit(f"error: --camera-count takes 2 to {len(CAMERA_NAMES)}")
        return main_cameras(args, out, started)
    step(f"rendering {args.frames} street scenes at {args.size[0]}x{args.size[1]} into a rosbag")
    make_bag(out, args.frames, args.size, args.fps, args.seed)
    model = prepare_model(args, out, "exporting the demo checkpoint to ONNX (uint8 camera bytes in, labels out)")
    step(f"starting the segmentation node (ONNX Runtime backend, {DEMO_PRECISION}) as the launch file would")
    sent, status, labels, overlays = run_node_and_replay(out, model, args.size, args.frames, args.fps)
    step("writing pictures and the diagnostics summary")
    save_pictures(out, labels, overlays, status)
    values = status[1] if status else {}
    print(f"  sent {sent} frames; {node_counts(values)}; "
          f"fps {values.get('fps', '?')}, inference p50 {values.get('latency_inference_p50_ms', '?')} ms")
    print_outputs(out, started)
    return 0 if labels else 1


def prepare_model(args: argparse.Namespace, out: Path, export_step: str, batch: int = 1) -> str:
    """Step 2: the demo checkpoint exported to ONNX (``export_step`` says how) and its CPU INT8 variant; the
    model name the node is given."""
    step(export_step)
    fp32 = export_model(args.checkpoint, out / "models", args.size, batch=batch)
    step(f"making its {DEMO_PRECISION} variant (ONNX Runtime CPU INT8, {CALIBRATION_SCENES} calibration scenes)")
    make_cpu_variant(out, fp32, args.size, args.seed)
    return fp32.name.split(f"_{args.size[0]}x{args.size[1]}_")[0]


def node_counts(values: dict) -> str:
    """The frame counters of the node's main status (its key/value dict) as the demo prints them."""
    return (f"node processed {values.get('frames_processed', '?')}, dropped {values.get('frames_dropped', '?')}, "
            f"failed {values.get('frames_failed', '?')}")


def print_outputs(out: Path, started: float) -> None:
    """The files the demo wrote, and how long it took."""
    for name in ("contact_sheet.png", "overlay.gif", "latency.png", "diagnostics_summary.md", "node.log"):
        print(f"  {out / name}")
    print(f"done in {time.monotonic() - started:.0f} s")


def main_cameras(args: argparse.Namespace, out: Path, started: float) -> int:
    """--camera-count N: the same steps for N cameras through one batch-N model."""
    cameras = camera_names(args.camera_count)
    step(f"rendering {args.frames} street scenes for each of {', '.join(cameras)} at {args.size[0]}x{args.size[1]} "
         "into one rosbag")
    make_camera_bag(out, cameras, args.frames, args.size, args.fps, args.seed)
    model = prepare_model(args, out, f"exporting the demo checkpoint to ONNX with a static batch of {len(cameras)} "
                          "(one frame per camera)", batch=len(cameras))
    step(f"starting the segmentation node with cameras [{', '.join(cameras)}] as the launch file would")
    sent, status, per_camera, images = run_cameras_and_replay(out, model, args.size, cameras)
    step("writing pictures and the diagnostics summary")
    everything = [pair for labels, _ in images.values() for pair in labels]
    save_pictures(out, everything, [pair for _, overlays in images.values() for pair in overlays], status)
    save_camera_sheet(out, images)
    lines = ["", "## Cameras", "", "| camera | status | processed | dropped | failed | age p95 ms | message |",
             "|---|---|---:|---:|---:|---:|---|"]
    for camera, found in per_camera.items():
        values = found[1] if found else {}
        level = {0: "OK", 1: "WARN", 2: "ERROR"}.get(found[0].level[0], "?") if found else "none"
        lines.append(f"| {camera} | {level} | {values.get('frames_processed', '?')} | {values.get('frames_dropped', '?')}"
                     f" | {values.get('frames_failed', '?')} | {values.get('latency_age_p95_ms', '?')} | "
                     f"{found[0].message if found else ''} |")
    with open(out / "diagnostics_summary.md", "a") as summary:
        summary.write("\n".join(lines) + "\n")
    values = status[1] if status else {}
    print(f"  sent {sent} frames from {len(cameras)} cameras; {node_counts(values)}; "
          f"{values.get('batches', '?')} batches, fill ratio {values.get('batch_fill_ratio', '?')}")
    print_outputs(out, started)
    return 0 if everything else 1


if __name__ == "__main__":
    sys.exit(main())
