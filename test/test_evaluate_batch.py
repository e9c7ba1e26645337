"""Evaluation of a batch-N model (issue #12) on real ONNX Runtime sessions: scores, agreement and the calibrate
command's ``--check`` run whole batches (the last one padded) and give the batch-1 file's results frame for frame.
The torch-free stand-in (test/tiny_model.py) at batch 1 and 3 with the same weights; 4 frames, so one batch is
padded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_model import write_tiny_model

from trt_segmentation.apps.evaluation import agreement, evaluate_backend, label_agreement
from trt_segmentation.artifacts import artifact_path
from trt_segmentation.data.cityscapes import CityscapesSplit
from trt_segmentation.data.street_scenes import write_street_split
from trt_segmentation.runtime import create_backend

H, W, N, FRAMES = 32, 64, 3, 4
MODEL = "swiftnet_ss_rn18"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # noqa: ANN001, ANN201
    base = tmp_path_factory.mktemp("eval_batch")
    write_street_split(base / "data", "val", FRAMES, seed=5, height=H, width=W, progress=False)
    write_street_split(base / "data_big", "val", FRAMES, seed=5, height=2 * H, width=2 * W, progress=False)
    files = {b: write_tiny_model(artifact_path(base / "onnx", MODEL, H, W, "fp32", ".onnx", batch=b), H, W, seed=2,
                                 batch=b) for b in (1, N)}
    return base, files


@pytest.mark.parametrize("data", ["data", "data_big"])
def test_a_batch_file_scores_like_the_batch_1_file(setup, data: str) -> None:  # noqa: ANN001
    base, files = setup
    split = CityscapesSplit(base / data, "val")
    assert len(split) == FRAMES and FRAMES % N != 0  # a last, padded batch
    with create_backend("onnxruntime", files[1], threads=1) as one, \
            create_backend("onnxruntime", files[N], threads=1) as many:
        assert many.batch == N
        single = evaluate_backend(one, split, progress=False, keep_predictions=True)
        batched = evaluate_backend(many, split, progress=False, keep_predictions=True,
                                   reference=single.predictions)
    assert single.predictions is not None and batched.predictions is not None
    assert len(batched.predictions) == FRAMES
    for a, b in zip(single.predictions, batched.predictions):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(single.confusion, batched.confusion)
    assert batched.frames == FRAMES and batched.resized_frames == single.resized_frames
    assert batched.agreement is not None and batched.agreement["pixel_agreement"] == 1.0
    assert len(np.unique(np.concatenate([p.ravel() for p in single.predictions]))) > 1


def test_agreement_between_a_batch_1_and_a_batch_n_file(setup) -> None:  # noqa: ANN001
    base, files = setup
    images = [s.image for s in CityscapesSplit(base / "data", "val")]
    with create_backend("onnxruntime", files[1], threads=1) as one, \
            create_backend("onnxruntime", files[N], threads=1) as many:
        out = agreement(one, many, images)
        back = agreement(many, one, iter(images))
    assert out["frames"] == back["frames"] == FRAMES
    assert out["pixel_agreement"] == back["pixel_agreement"] == 1.0


def test_label_agreement_on_batch_files(setup, tmp_path: Path) -> None:  # noqa: ANN001
    _, files = setup
    other = write_tiny_model(tmp_path / f"{MODEL}_{H}x{W}_b{N}_other.onnx", H, W, seed=7, batch=N)
    rng = np.random.default_rng(11)
    frames = rng.integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    assert label_agreement(files[N], files[N], frames) == 1.0
    with create_backend("onnxruntime", files[1], threads=1) as one, \
            create_backend("onnxruntime", other, threads=1) as cand:
        padded = list(frames) + [None] * (2 * N - FRAMES)
        want = np.stack([one.infer(f).labels for f in frames])
        got = np.concatenate([cand.infer_batch(padded[i : i + N]).labels for i in (0, N)])[:FRAMES]
    expected = float(np.count_nonzero(want == got)) / want.size
    assert 0.0 < expected < 1.0
    assert label_agreement(files[N], other, frames) == pytest.approx(expected)


def test_calibrate_check_on_a_batch_file(setup, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """``trt_seg_calibrate --check`` on a batch-N FP32 file: a TensorRT-RTX build and an agreement line, no traceback
    (fp16: no calibration; --check 4 gives one whole and one padded batch)."""
    from trt_segmentation.commands import calibrate

    _, files = setup
    code = calibrate.main(["--onnx", str(files[N]), "--precision", "fp16", "--out", str(tmp_path),
                           "--check", str(FRAMES)])
    out = capsys.readouterr().out
    assert f"label agreement with fp32 on {FRAMES} frames" in out, out
    assert (tmp_path / f"{MODEL}_{H}x{W}_b{N}_fp16.onnx").is_file()
    assert code == 0 and "TensorRT-RTX build OK" in out, out  # the real parser and builder took the batch-3 file


def test_evaluate_command_on_a_batch_file(setup, capsys) -> None:  # noqa: ANN001
    from trt_segmentation.commands import evaluate

    base, files = setup
    assert evaluate.main(["--data", str(base / "data"), "--onnx", str(files[N]), "--quiet"]) == 0
    assert f"{FRAMES} frames" in capsys.readouterr().out
