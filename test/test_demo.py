"""The README's main job, small: the demo replays a generated bag through the node and writes its pictures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_pictures_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--frames", "3", "--size", "256x512", "--fps", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=400,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sent 3 frames" in run.stdout
    summary = (out / "diagnostics_summary.md").read_text()
    values = dict(re.findall(r"^\| (\w+) \| (.*) \|$", summary, re.M))
    # every sent frame arrived and is accounted for (the node may drop one it cannot keep up with; none fails)
    processed, dropped = int(values["frames_processed"]), int(values["frames_dropped"])
    assert int(values["frames_received"]) == 3 and processed >= 1 and processed + dropped == 3, values
    assert int(values["frames_failed"]) == 0 and values["last_error"].strip() == "", values
    assert values["precision"] == "int8-cpu" and values["engine_file"].endswith("_256x512_int8-cpu.onnx"), values
    assert float(values["latency_inference_p50_ms"]) > 0, values
    # the pictures are images of the frames the node labelled (Pillow reads them back)
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.format == "PNG" and sheet.width == 1024 and sheet.height >= 1024 // 4  # overlay | labels rows
    with Image.open(out / "overlay.gif") as gif:
        assert gif.format == "GIF" and 1 <= gif.n_frames <= processed and gif.size == (256, 128)
    with Image.open(out / "latency.png") as latency:
        assert latency.format == "PNG" and latency.size == (990, 360)  # 11x4 inches at 90 dpi


def test_demo_with_two_cameras_runs_one_batched_model(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--frames", "2", "--size", "256x512", "--fps", "2",
         "--camera-count", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=400,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sent 4 frames from 2 cameras" in run.stdout
    summary = (out / "diagnostics_summary.md").read_text()
    values = dict(re.findall(r"^\| (\w+) \| (.*) \|$", summary, re.M))
    assert values["engine_file"].endswith("_256x512_b2_int8-cpu.onnx") and values["cameras"] == "front,left", values
    processed, dropped = int(values["frames_processed"]), int(values["frames_dropped"])
    assert int(values["frames_received"]) == 4 and processed >= 2 and processed + dropped == 4, values
    rows = re.findall(r"^\| (front|left) \| (OK|WARN) \| (\d+) \| (\d+) \| 0 \|", summary, re.M)
    assert [r[0] for r in rows] == ["front", "left"], summary
    with Image.open(out / "contact_sheet.png") as sheet:  # per camera: overlay | labels, side by side
        assert sheet.format == "PNG" and sheet.width == 1600 and sheet.height >= 1600 // 8  # >= one row
