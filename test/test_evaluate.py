"""Evaluation of checkpoints and ONNX variants on a generated split: scores, resizing, channel order, agreement,
the precision table and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from trt_segmentation.apps.evaluation import (
    agreement,
    evaluate_backend,
    evaluate_variants,
    predict,
    variants_markdown,
)
from trt_segmentation.artifacts import artifact_path
from trt_segmentation.data.cityscapes import CityscapesSplit
from trt_segmentation.data.street_scenes import write_street_split
from trt_segmentation.export import ExportOptions, contract_of, export_onnx, set_contract
from trt_segmentation.metrics import ConfusionMatrix
from trt_segmentation.runtime import create_backend
from trt_segmentation.runtime.checkpoint_backend import CheckpointBackend

ROOT = Path(__file__).resolve().parents[1]
H, W = 64, 128
MODEL = "swiftnet_ss_rn18"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, random_model_factory):
    base = tmp_path_factory.mktemp("eval")
    write_street_split(base / "data", "val", 2, seed=3, height=H, width=W, progress=False)
    write_street_split(base / "data_big", "val", 2, seed=3, height=2 * H, width=2 * W, progress=False)
    model = random_model_factory(seed=0)
    onnx_dir = base / "onnx"
    onnx_dir.mkdir()
    fp32 = artifact_path(onnx_dir, MODEL, H, W, "fp32", ".onnx")
    export_onnx(model, fp32, ExportOptions(H, W))
    # the same weights behind a BGR input, filed as the fp16 variant: must agree 100 % with fp32
    bgr = artifact_path(onnx_dir, MODEL, H, W, "fp16", ".onnx")
    export_onnx(model, bgr, ExportOptions(H, W, input_format="uint8_bgr"))
    proto = onnx.load(str(bgr))
    contract = contract_of(proto)
    set_contract(proto, type(contract)(**{**contract.__dict__, "precision": "fp16"}))
    onnx.save(proto, str(bgr))
    # other weights filed as 'mixed': agreement below 100 %
    export_onnx(random_model_factory(seed=1), artifact_path(onnx_dir, MODEL, H, W, "mixed", ".onnx"), ExportOptions(H, W))
    import torch

    ckpt = base / "model.pt"
    torch.save(model.state_dict(), ckpt)
    return base, onnx_dir, fp32, bgr, ckpt


def test_scores_match_a_direct_confusion_matrix(setup):
    base, _, fp32, _, _ = setup
    split = CityscapesSplit(base / "data", "val")
    backend = create_backend("onnxruntime", fp32, threads=1)
    result = evaluate_backend(backend, split, progress=False)
    cm = ConfusionMatrix(19)
    for sample in split:
        cm.update(sample.labels, backend.infer(sample.image).labels)
    np.testing.assert_array_equal(result.confusion, cm.matrix)
    assert result.miou == pytest.approx(cm.miou) and result.pixel_accuracy == pytest.approx(cm.pixel_accuracy)
    assert result.frames == 2 and result.resized_frames == 0
    assert json.loads(json.dumps(result.to_dict()))["frames"] == 2


def test_resizing_and_bgr_channel_order(setup):
    base, _, fp32, bgr, _ = setup
    rgb_backend = create_backend("onnxruntime", fp32, threads=1)
    bgr_backend = create_backend("onnxruntime", bgr, threads=1)
    big = CityscapesSplit(base / "data_big", "val")
    result = evaluate_backend(bgr_backend, big, progress=False)
    # scored at label resolution: every labelled (non-void) pixel of the big frames counts once
    assert result.resized_frames == 2 and result.confusion.sum() == sum(int((s.labels < 19).sum()) for s in big)
    labels, resized = predict(rgb_backend, big[0].image, big[0].labels.shape)
    assert resized and labels.shape == (2 * H, 2 * W)
    same = agreement(rgb_backend, bgr_backend, [s.image for s in big])
    assert same["pixel_agreement"] == 1.0 and same["miou_vs_reference"] == pytest.approx(1.0) and same["frames"] == 2


def test_checkpoint_matches_onnx(setup):
    base, _, fp32, _, ckpt = setup
    split = CityscapesSplit(base / "data", "val")
    onnx_result = evaluate_backend(create_backend("onnxruntime", fp32, threads=1), split, progress=False, keep_predictions=True)
    torch_result = evaluate_backend(CheckpointBackend(ckpt), split, progress=False, reference=onnx_result.predictions)
    assert torch_result.agreement is not None and torch_result.agreement["pixel_agreement"] > 0.99
    assert abs(torch_result.miou - onnx_result.miou) < 0.01


def test_precision_table(setup):
    base, onnx_dir, _, _, _ = setup
    split = CityscapesSplit(base / "data", "val")
    rows = evaluate_variants(onnx_dir, MODEL, H, W, ["fp32", "fp16", "int8", "mixed"], split, progress=False, threads=1)
    by = {r.variant: r for r in rows}
    assert by["int8"].result is None and "missing" in (by["int8"].error or "")
    assert by["fp16"].result is not None and by["fp16"].result.agreement["pixel_agreement"] == 1.0
    assert by["mixed"].result is not None and by["mixed"].result.agreement["pixel_agreement"] < 1.0
    table = variants_markdown(rows, "generated split")
    fp32, mixed = by["fp32"].result, by["mixed"].result
    lines = table.splitlines()
    row = {line.split(" | ")[0][2:]: line.split(" | ")[1:-1] for line in lines if line.startswith("| ") and "---" not in line}
    assert row["fp32"][:4] == [f"{100 * fp32.miou:.2f}", f"{100 * fp32.pixel_accuracy:.2f}", "100.00 (reference)", "100.00"]
    assert row["fp16"][:4] == [f"{100 * fp32.miou:.2f}", f"{100 * fp32.pixel_accuracy:.2f}", "100.00", "100.00"]
    assert row["mixed"][:4] == [f"{100 * mixed.miou:.2f}", f"{100 * mixed.pixel_accuracy:.2f}",
                                f"{100 * mixed.agreement['pixel_agreement']:.2f}", f"{100 * mixed.agreement['miou_vs_reference']:.2f}"]
    assert row["int8"][:4] == ["—"] * 4 and "int8: not evaluated (missing" in table


def test_cli_modes(setup, tmp_path):
    base, onnx_dir, fp32, bgr, ckpt = setup
    tool = [sys.executable, str(ROOT / "tools" / "evaluate.py"), "--quiet"]
    single = subprocess.run(tool + ["--data", str(base / "data_big"), "--onnx", str(fp32), "--json", str(tmp_path / "s.json")],
                            capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr
    assert "mIoU" in single.stdout and "resized" in single.stdout and "say nothing about accuracy on Cityscapes" in single.stdout
    assert json.loads((tmp_path / "s.json").read_text())["resized_frames"] == 2

    report = tmp_path / "report.md"
    table = subprocess.run(tool + ["--data", str(base / "data"), "--precision", "fp32", "fp16", "int8", "mixed",
                                   "--onnx-dir", str(onnx_dir), "--model", MODEL, "--size", f"{H}x{W}", "--report", str(report)],
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    text = report.read_text()
    assert "| fp16 |" in text and "| int8 | — |" in text and "ms/frame" in text

    agree = subprocess.run(tool + ["--data", str(base / "data"), "--reference", str(fp32), "--candidate", str(ckpt)],
                           capture_output=True, text=True, timeout=120)
    assert agree.returncode == 0, agree.stderr
    # the checkpoint holds the FP32 export's weights: PyTorch and ONNX Runtime agree on (nearly) every pixel
    printed = dict(line.split()[:2] for line in agree.stdout.splitlines() if line.startswith("  "))
    assert float(printed["pixel_agreement"]) > 99.0 and printed["frames"] == "2", agree.stdout

    engine = subprocess.run(tool + ["--data", str(base / "data"), "--engine", str(tmp_path / "missing.engine")],
                            capture_output=True, text=True, timeout=120)
    # a missing input file reads the same in every tool: one line, exit 2, no traceback
    missing = tmp_path / "missing.engine"
    assert engine.returncode == 2, engine.stderr
    assert engine.stderr.strip() == f"error: TensorRT engine not found: {missing}"
    nodata = subprocess.run(tool + ["--data", str(tmp_path / "nowhere"), "--onnx", str(fp32)],
                            capture_output=True, text=True, timeout=120)
    assert nodata.returncode == 2 and nodata.stderr.strip() == f"error: data folder not found: {tmp_path / 'nowhere'}"
