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


def test_benchmark_node_compares_single_camera_nodes_with_one_batched_node(tmp_path: Path) -> None:
    """--camera-count 2 on the torch-free stand-in model (batch 1 and batch 2 files): the relays' floor and both node
    configurations deliver on every camera, the ratios are computed from the run's own figures."""
    sys.path.insert(0, str(REPO / "test"))
    from tiny_model import write_tiny_model

    from trt_segmentation.artifacts import artifact_path

    models = tmp_path / "models"
    for batch in (1, 2):
        write_tiny_model(artifact_path(models, "swiftnet_ss_rn18", 64, 128, "fp32", ".onnx", batch=batch), 64, 128,
                         batch=batch)
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "benchmark_node.py"), "--camera-count", "2", "--size", "64x128", "--rate",
         "5", "--seconds", "3", "--engine-dir", str(models), "--out", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((out / "multi_camera_benchmark.json").read_text())
    relay, single, batched = data["relay"], data["single"], data["batched"]
    assert relay["nodes"] == 2 and single["nodes"] == 2 and batched["nodes"] == 1
    assert data["ratios"]["batched_to_floor"] == batched["throughput_fps"] / relay["throughput_fps"]
    assert min(relay["delivered"].values()) >= 5, proc.stdout  # the transport floor of the same cameras
    for phase in (single, batched):
        assert set(phase["delivered"]) == {"cam0", "cam1"} and min(phase["delivered"].values()) >= 5, proc.stdout
        assert phase["rss_mb"] > 0 and all(v > 0 for v in phase["age_p95_ms"].values())
    assert data["ratios"]["throughput"] == batched["throughput_fps"] / single["throughput_fps"]
    assert batched["status"]["batch"] == "2" and batched["status"]["cameras"] == "cam0,cam1"
    table = (out / "multi_camera_benchmark.md").read_text()
    assert f"| {single['throughput_fps']:.2f} | {batched['throughput_fps']:.2f} |" in table


def test_benchmark_node_flags_camera_count_and_checkpoint() -> None:
    """--camera-count N (a count; make_rosbag's --cameras takes names), --checkpoint for the torch backend's .pt
    (given to the node as engine_path), --engine-path for an .engine; misuse is exit 2 with the reason."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("benchmark_node_tool", REPO / "tools" / "benchmark_node.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from harness.node_benchmark import model_path

    parser = tool.build_parser()
    args = parser.parse_args(["--backend", "torch", "--checkpoint", "m.pt", "--camera-count", "4"])
    assert (args.camera_count, model_path(args)) == (4, Path("m.pt"))
    assert model_path(parser.parse_args(["--backend", "torch", "--engine-path", "old.pt"])) == Path("old.pt")
    assert model_path(parser.parse_args([])) is None
    assert model_path(types.SimpleNamespace(engine_path=Path("e.engine"))) == Path("e.engine")
    for argv, message in ((["--checkpoint", "m.pt"], "--checkpoint is the torch backend's model"),
                          (["--backend", "torch", "--checkpoint", "m.pt", "--engine-path", "e.engine"],
                           "without --engine-path"),
                          (["--camera-count", "1"], "--camera-count needs N >= 2")):
        proc = subprocess.run([sys.executable, str(REPO / "tools" / "benchmark_node.py"), *argv],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and message in proc.stderr, (argv, proc.stderr)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "benchmark_node.py"), "--cameras", "4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unrecognized arguments: --cameras" in proc.stderr, proc.stderr
