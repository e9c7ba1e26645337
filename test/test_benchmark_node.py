"""tools/benchmark_node.py end to end on small frames: both phases deliver over real DDS, the report's ratios are
computed from its own figures, and the node's stages come from its diagnostics. Speed itself is not asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_node_reports_both_phases(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark_node.py"), "--size", "64x128", "--rate", "5", "--seconds",
         "3", "--model-kind", "free", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "phase 1/2" in proc.stdout and "phase 2/2" in proc.stdout
    data = json.loads((out / "node_benchmark.json").read_text())
    relay, node = data["relay"], data["node"]
    assert relay["sent"] == node["sent"] == 15
    assert relay["delivered"] >= 10 and node["delivered"] >= 10, proc.stdout
    assert data["ratios"]["age_p50"] == node["age_p50_ms"] / relay["age_p50_ms"]
    assert relay["age_p50_ms"] > 0 and node["age_p50_ms"] > 0
    assert set(node["stages_p50_ms"]) == {"transport", "wait", "preprocess", "inference", "postprocess"}
    assert node["dropped"] is not None and node["rss_end_mb"] > 0
    table = (out / "node_benchmark.md").read_text()
    assert f"| age p50 ms | {relay['age_p50_ms']:.1f} | {node['age_p50_ms']:.1f} |" in table
    with Image.open(out / "node_benchmark.png") as picture:
        assert picture.format == "PNG" and picture.width > 400
    assert "transport: serialized images in and out" in (out / "node.log").read_text()
