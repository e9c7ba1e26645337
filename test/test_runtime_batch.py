"""The batch API (issue #12) on real ONNX Runtime sessions: a batch-3 file's rows equal the batch-1 file's frames run
one at a time, padded rows, clear refusals of wrong batches, and the in-flight limit. Both model kinds: a seeded
SwiftNet export (``ExportOptions(batch=3)``) and the torch-free stand-in (test/tiny_model.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest
from tiny_model import write_tiny_model

from trt_segmentation.runtime import BackendError, InputMismatch, create_backend

H, W, N = 64, 128, 3


def _frames(count: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture(scope="module", params=["swiftnet", "tiny"])
def files(request, tmp_path_factory) -> Dict[int, Path]:  # noqa: ANN001
    """{batch: .onnx} of one seeded network at batch 1 and batch N."""
    folder = tmp_path_factory.mktemp(f"batch_{request.param}")
    out = {}
    for batch in (1, N):
        path = folder / f"swiftnet_ss_rn18_{H}x{W}{'' if batch == 1 else f'_b{batch}'}_fp32.onnx"
        if request.param == "tiny":
            write_tiny_model(path, H, W, seed=3, batch=batch)
        else:
            pytest.importorskip("torch")
            from trt_segmentation.export import ExportOptions, export_onnx

            model = request.getfixturevalue("random_model_factory")(seed=3)
            export_onnx(model, path, ExportOptions(H, W, batch=batch))
        out[batch] = path
    return out


@pytest.fixture(scope="module")
def single(files):  # noqa: ANN001, ANN201
    with create_backend("onnxruntime", files[1], threads=1) as backend:
        yield backend


@pytest.fixture(scope="module")
def batched(files):  # noqa: ANN001, ANN201
    with create_backend("onnxruntime", files[N], threads=1) as backend:
        yield backend


def test_batch_rows_equal_frames_one_at_a_time(single, batched) -> None:  # noqa: ANN001
    assert batched.batch == N and single.batch == 1 and batched.describe()["batch"] == str(N)
    frames = _frames(N, seed=10)
    expected = np.stack([single.infer(f).labels for f in frames])
    assert len(np.unique(expected)) > 1  # frames that tell labels apart, not one class everywhere
    result = batched.infer_batch(frames)
    assert result.labels.dtype == np.uint8 and result.labels.shape == (N, H, W)
    np.testing.assert_array_equal(result.labels, expected)
    assert set(result.timings_ms) == {"preprocess", "inference", "postprocess"}
    batched.submit_batch(frames, tag="batch 1")
    assert batched.in_flight == 1
    tag, collected = batched.collect()
    assert tag == "batch 1" and batched.in_flight == 0
    np.testing.assert_array_equal(collected.labels, expected)
    # a stacked (N, H, W, 3) array is a sequence of N frames too
    np.testing.assert_array_equal(batched.infer_batch(np.stack(frames)).labels, expected)


def test_padded_rows_leave_the_other_rows_as_they_are(single, batched) -> None:  # noqa: ANN001
    frames = _frames(N, seed=11)
    for padded in range(N):
        rows = [None if i == padded else f for i, f in enumerate(frames)]
        labels = batched.infer_batch(rows).labels
        assert labels.shape == (N, H, W)
        for i, frame in enumerate(frames):
            if i != padded:
                np.testing.assert_array_equal(labels[i], single.infer(frame).labels)
    assert batched.infer_batch([None] * N).labels.shape == (N, H, W)  # no new frame at all: still one batch


@pytest.mark.parametrize("rows,message", [
    (lambda f: f[:2], "runs 3 frame\\(s\\) per batch .* got 2"),
    (lambda f: f + f[:1], "runs 3 frame\\(s\\) per batch .* got 4"),
    (lambda f: [f[0], f[1][:, :-1], f[2]], "batch row 1: frame shape \\(64, 127, 3\\) does not match"),
    (lambda f: [f[0], f[1], f[2].astype(np.float32)], "batch row 2: frames must be uint8"),
    (lambda f: [f[0][..., 0], None, f[2]], "batch row 0: frame shape \\(64, 128\\)"),
    (lambda f: ["not a frame", None, f[2]], "batch row 0: expected an \\(H, W, 3\\) uint8 array or None, got str"),
])
def test_wrong_batches_are_refused_and_nothing_is_lost(single, batched, rows, message) -> None:  # noqa: ANN001
    frames = _frames(N, seed=12)
    for call in (batched.infer_batch, batched.submit_batch):
        with pytest.raises(InputMismatch, match=message):
            call(rows(frames))
        assert batched.in_flight == 0
    expected = np.stack([single.infer(f).labels for f in frames])
    np.testing.assert_array_equal(batched.infer_batch(frames).labels, expected)  # the backend still works


def test_single_frame_calls_on_a_batch_model_name_the_batch_calls(batched) -> None:  # noqa: ANN001
    frame = _frames(1, seed=13)[0]
    with pytest.raises(InputMismatch, match="batches of 3 frames .* use submit_batch\\(\\)"):
        batched.submit(frame)
    with pytest.raises(InputMismatch, match="batches of 3 frames .* use infer_batch\\(\\)"):
        batched.infer(frame)
    assert batched.in_flight == 0


def test_a_batch_one_model_takes_batches_of_one(single) -> None:  # noqa: ANN001
    frame = _frames(1, seed=14)[0]
    labels = single.infer(frame).labels
    assert labels.shape == (H, W)
    np.testing.assert_array_equal(single.infer_batch([frame]).labels, labels[None])
    single.submit_batch([frame], tag=7)
    tag, result = single.collect()
    assert tag == 7
    np.testing.assert_array_equal(result.labels, labels[None])
    with pytest.raises(InputMismatch, match="runs 1 frame\\(s\\) per batch .* got 2"):
        single.submit_batch([frame, frame])


def test_max_in_flight_batches(batched) -> None:  # noqa: ANN001
    frames = _frames(N, seed=15)
    assert batched.max_in_flight == 1
    batched.submit_batch(frames, tag="a")
    with pytest.raises(BackendError, match="1 batches in flight already \\(max_in_flight 1\\)"):
        batched.submit_batch(frames, tag="b")
    assert batched.collect()[0] == "a"
    with pytest.raises(BackendError, match="nothing in flight"):
        batched.collect()
    batched.submit_batch(frames, tag="c")
    assert batched.collect()[0] == "c"
