"""precision:=X picks X's file without editing anything: two runs with different precision load different ONNX
files (seen in diagnostics and the log) and produce the labels of the model in that file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from node_fixtures import H, MODEL, W, module_models
from node_harness import encode_frame, finish, launch_command, listener, node_process, save_frames, start_publisher
from trt_segmentation.artifacts import artifact_path
from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def engine_dir(request, tmp_path_factory, random_model_factory):
    """fp32 and 'fp16' files of different weights; the fp16 one carries precision fp16 in its contract. (A real
    fp16 conversion is the precision tools' job; here only the file choice is under test.)"""
    import dataclasses

    from trt_segmentation.export import ExportOptions, export_onnx, read_contract, set_contract

    directory = module_models(request, tmp_path_factory, random_model_factory)
    fp16 = artifact_path(directory, MODEL, H, W, "fp16", ".onnx")
    export_onnx(random_model_factory("single_scale", "resnet18", seed=1), fp16, ExportOptions(H, W))
    proto = onnx.load(fp16)
    set_contract(proto, dataclasses.replace(read_contract(proto), precision="fp16"))
    onnx.save(proto, fp16)
    return directory


def run_with_precision(engine_dir, tmp_path, precision: str, frames_path) -> tuple[dict[str, str], np.ndarray, str]:
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "precision": precision, "image_topic": "/p/image"},
        extra={"diagnostics_period": "0.3"},
    )
    with node_process(argv, env, tmp_path / f"node_{precision}.log") as node, \
            listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status("/segmentation"), 30, "the node's first diagnostics", node)
        finish(start_publisher(frames_path, "/p/image", 5.0, env=env), 30)
        lis.wait_for(lambda: lis.labels, 10, "labels", node)
        _, values = lis.wait_for(
            lambda: (s := lis.last_status("/segmentation")) and s[1]["frames_processed"] != "0" and s, 5,
            "diagnostics", node)
        msg = lis.labels[0]
        labels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        log = node.log()
    return values, labels, log


def test_two_precisions_load_two_files(engine_dir, tmp_path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    frames = save_frames(tmp_path / "frames.npz",
                         [{"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data}])
    results = {}
    for precision in ("fp32", "fp16"):
        values, labels, log = run_with_precision(engine_dir, tmp_path, precision, frames)
        path = artifact_path(engine_dir, MODEL, H, W, precision, ".onnx")
        assert values["precision"] == precision
        assert values["engine_file"] == str(path)
        assert f"onnxruntime {precision} {path}" in log
        with OnnxRuntimeBackend(path) as reference:
            assert np.array_equal(labels, reference.infer(rgb).labels)
        results[precision] = labels
    assert not np.array_equal(results["fp32"], results["fp16"]), "the two files hold different weights"
