"""ONNX Runtime backend: contract handling and clear errors for bad files and bad frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from trt_segmentation.export import ExportOptions, export_onnx
from trt_segmentation.runtime import BackendError, InputMismatch, create_backend


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory, random_model_factory) -> Path:  # noqa: ANN001
    path = tmp_path_factory.mktemp("ort") / "m.onnx"
    export_onnx(random_model_factory(), path, ExportOptions(128, 256))
    return path


def test_describe_and_infer(onnx_file: Path) -> None:
    backend = create_backend("onnxruntime", onnx_file, threads=1)
    info = backend.describe()
    assert info["backend"] == "onnxruntime" and info["model"] == "swiftnet_ss_rn18" and info["precision"] == "fp32"
    assert backend.input_size == (128, 256)
    from trt_segmentation.data.street_scenes import render_scene

    frame = render_scene(2, 128, 256)[0]
    result = backend.infer(frame)
    # the backend's labels are what a plain ONNX Runtime session computes from the same camera bytes
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (direct,) = session.run(None, {session.get_inputs()[0].name: frame[None]})
    assert result.labels.dtype == np.uint8 and result.labels.shape == (128, 256)
    np.testing.assert_array_equal(result.labels, direct.reshape(128, 256))
    assert len(np.unique(direct)) > 1  # a frame that tells labels apart, not one class everywhere


@pytest.mark.parametrize(
    "frame,message",
    [
        (np.zeros((128, 255, 3), np.uint8), "does not match the model input"),
        (np.zeros((128, 256), np.uint8), "does not match the model input"),
        (np.zeros((128, 256, 3), np.float32), "must be uint8"),
    ],
)
def test_bad_frames_are_refused(onnx_file: Path, frame: np.ndarray, message: str) -> None:
    backend = create_backend("onnxruntime", onnx_file, threads=1)
    with pytest.raises(InputMismatch, match=message):
        backend.infer(frame)


def test_missing_and_foreign_files(tmp_path: Path, onnx_file: Path) -> None:
    with pytest.raises(BackendError, match="not found"):
        create_backend("onnxruntime", tmp_path / "nope.onnx")
    proto = onnx.load(str(onnx_file))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    with pytest.raises(BackendError, match="not exported by trt_segmentation"):
        create_backend("onnxruntime", foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01garbage")
    with pytest.raises(BackendError, match="cannot load"):
        create_backend("onnxruntime", garbage)
    with pytest.raises(BackendError, match="unknown or unavailable backend"):
        create_backend("openvino", onnx_file)
