"""precision:=X picks X's file without editing anything: runs with fp32, fp16, int8 and mixed load the four real
precision variants (made by the precision tools: FP16 casts, Q/DQ nodes; not fp32 files renamed), say so in
diagnostics and the log, and publish the labels of the model in that file."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from node_fixtures import MODEL, H, W
from node_harness import (
    STATUS,
    encode_frame,
    finish,
    launch_command,
    listener,
    node_process,
    save_frames,
    start_publisher,
)
from onnx import TensorProto

from trt_segmentation.artifacts import artifact_path
from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend

PRECISIONS = ("fp32", "fp16", "int8", "mixed")


@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory, random_model_factory):
    """The precision tests' variants (random-weight net at 256x512, calibrated on generated street scenes; made
    once per session and shared with test_precision_variants.py)."""
    pytest.importorskip("modelopt", reason="the precision variants are made with NVIDIA ModelOpt")
    from test_precision_variants import H as VH
    from test_precision_variants import W as VW
    from test_precision_variants import ensure_variants

    assert (VH, VW) == (H, W)
    paths = ensure_variants(tmp_path_factory.getbasetemp() / "precision_shared", random_model_factory)
    return paths["fp32"].parent


def what_it_holds(path) -> dict[str, int]:  # noqa: ANN001
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    fp16 = sum(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "fp16_initializers": fp16}


def run_with_precision(engine_dir, tmp_path, precision: str, frames_path) -> tuple[dict[str, str], np.ndarray, str]:
    argv, env = launch_command(
        {"backend": "onnxruntime", "engine_dir": str(engine_dir), "precision": precision, "image_topic": "/p/image"},
        extra={"diagnostics_period": "0.3", "qos_reliability": "reliable"},
    )
    with node_process(argv, env, tmp_path / f"node_{precision}.log") as node, \
            listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 30, "the node's first diagnostics", node)
        finish(start_publisher(frames_path, "/p/image", 5.0, env=env, reliable=True,
                               lockstep="/segmentation/labels"), 30)
        lis.wait_for(lambda: lis.labels, 10, "labels", node)
        _, values = lis.wait_for(
            lambda: (s := lis.last_status(STATUS)) and s[1]["frames_processed"] != "0" and s, 5,
            "diagnostics", node)
        msg = lis.labels[0]
        labels = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width)
        log = node.log()
    return values, labels, log


def test_each_precision_loads_its_own_real_variant(engine_dir, tmp_path) -> None:
    holds = {p: what_it_holds(artifact_path(engine_dir, MODEL, H, W, p, ".onnx")) for p in PRECISIONS}
    assert holds["fp32"] == {"QuantizeLinear": 0, "fp16_initializers": 0}
    assert holds["fp16"]["QuantizeLinear"] == 0 and holds["fp16"]["fp16_initializers"] > 0
    assert holds["int8"]["QuantizeLinear"] > 0
    assert holds["mixed"]["QuantizeLinear"] > 0 and holds["mixed"]["fp16_initializers"] > 0
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    step, data = encode_frame(rgb, "rgb8")
    frames = save_frames(tmp_path / "frames.npz",
                         [{"encoding": "rgb8", "height": H, "width": W, "step": step, "data": data}])
    results = {}
    for precision in PRECISIONS:
        values, labels, log = run_with_precision(engine_dir, tmp_path, precision, frames)
        path = artifact_path(engine_dir, MODEL, H, W, precision, ".onnx")
        assert values["precision"] == precision
        assert values["engine_file"] == str(path)
        assert f"onnxruntime {precision} {path}" in log
        with OnnxRuntimeBackend(path) as reference:
            assert np.array_equal(labels, reference.infer(rgb).labels), precision
        results[precision] = labels
    # the quantized files compute something else than the fp32 one (a renamed fp32 file would be identical)
    assert not np.array_equal(results["fp32"], results["int8"])
    assert not np.array_equal(results["fp32"], results["mixed"])
