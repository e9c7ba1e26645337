"""The README's main job, small: the demo replays a generated bag through the node and writes its pictures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_writes_pictures_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--frames", "3", "--size", "256x512", "--fps", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=400,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for name in ("contact_sheet.png", "overlay.gif", "latency.png", "diagnostics_summary.md"):
        assert (out / name).stat().st_size > 0, name
    summary = (out / "diagnostics_summary.md").read_text()
    assert "| frames_processed |" in summary and "| latency_inference_p50_ms |" in summary
    assert "sent 3 frames" in run.stdout
