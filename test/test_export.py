"""ONNX export: parity with PyTorch through real ONNX Runtime sessions, TensorRT parser/builder acceptance,
in-graph preprocessing and argmax, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from trt_segmentation.engine.tensorrt_parse_check import check_onnx
from trt_segmentation.export import ExportError, ExportOptions, contract_of, export_model, export_onnx

MODELS = [("single_scale", "resnet18"), ("single_scale", "resnet34"), ("pyramid", "resnet18"), ("pyramid", "resnet34")]
# every model at KITTI's odd 375x1242 (padding to the encoder's stride, the pyramid's odd half scale), each other
# size on one model of each variant: the encoder's depth changes no size handling, and the full grid cost 7 min of
# CI's 2 cores
PARITY_CASES = [(variant, encoder, (375, 1242)) for variant, encoder in MODELS] + [
    ("single_scale", "resnet18", (720, 1280)), ("pyramid", "resnet18", (1024, 2048))]


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def assert_tensorrt_accepts(proto: onnx.ModelProto, path: Path) -> None:
    onnx.save(proto, str(path))
    report = check_onnx(path)
    path.unlink()
    assert report.ok, report.summary()


@pytest.mark.parametrize("variant,encoder,size", PARITY_CASES, ids=[f"{v}-{e}-{s[0]}x{s[1]}" for v, e, s in PARITY_CASES])
def test_onnx_matches_pytorch(variant: str, encoder: str, size: tuple[int, int], random_model_factory, tmp_path: Path) -> None:  # noqa: ANN001
    model = random_model_factory(variant, encoder, seed=0)  # fixed: str hashes differ per process
    height, width = size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)

    with torch.no_grad():
        reference = model(torch.from_numpy(image).permute(0, 3, 1, 2).float()).numpy()
    labels_ref = reference.argmax(1)
    assert len(np.unique(labels_ref)) >= 3, "random weights should produce several classes"

    logits_proto = export_model(model, ExportOptions(height, width, "float_normalised", "logits"))
    normalised = (image.transpose(0, 3, 1, 2).astype(np.float32) - np.float32(model.backbone.img_mean.numpy())) / np.float32(
        model.backbone.img_std.numpy()
    )
    (logits,) = session(logits_proto).run(None, {"image": normalised})
    assert np.abs(logits - reference).max() < 1e-3
    assert (logits.argmax(1) == labels_ref).mean() >= 0.9999

    labels_proto = export_model(model, ExportOptions(height, width, "uint8_rgb", "labels_uint8"))
    (labels,) = session(labels_proto).run(None, {"image": image})
    assert labels.dtype == np.uint8 and labels.shape == (1, height, width)
    assert (labels == labels_ref).mean() >= 0.9999

    assert_tensorrt_accepts(logits_proto, tmp_path / "logits.onnx")
    assert_tensorrt_accepts(labels_proto, tmp_path / "labels.onnx")


@pytest.mark.parametrize("input_format", ["uint8_rgb", "uint8_bgr", "float_normalised"])
@pytest.mark.parametrize("output", ["labels_uint8", "labels_int32", "logits"])
def test_every_io_option_runs_and_builds(input_format: str, output: str, random_model_factory, tmp_path: Path) -> None:  # noqa: ANN001
    model = random_model_factory("single_scale", "resnet18", seed=3)
    height, width = 256, 512
    path = tmp_path / "m.onnx"
    contract = export_onnx(model, path, ExportOptions(height, width, input_format, output))
    proto = onnx.load(str(path))
    assert contract_of(proto) == contract
    assert proto.opset_import[0].version >= 17

    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(rgb).permute(2, 0, 1)[None].float()).argmax(1).numpy()[0]

    from trt_segmentation.runtime import create_backend

    backend = create_backend("onnxruntime", path)
    frame = rgb[..., ::-1].copy() if contract.channel_order == "bgr" else rgb
    result = backend.infer(frame)
    assert result.labels.dtype == np.uint8
    assert (result.labels == expected).mean() >= 0.9999
    assert set(result.timings_ms) == {"preprocess", "inference", "postprocess"}

    inputs = {i.name: i for i in proto.graph.input}
    assert list(inputs) == ["image"]
    report = check_onnx(path)
    assert report.ok, report.summary()
    expected_in = "FLOAT" if input_format == "float_normalised" else "UINT8"
    assert report.inputs[0][1] == expected_in
    expected_out = {"labels_uint8": "UINT8", "labels_int32": "INT32", "logits": "FLOAT"}[output]
    assert report.outputs[0][1] == expected_out

    # every I/O option meets the documented parser support of each claimed TensorRT (8.5 and 8.6 cast to UINT8
    # only from float types: the uint8 labels go ArgMax -> Cast(float32) -> Cast(uint8))
    from trt_segmentation.engine.parser_support import GENERATIONS, check_graph

    for generation in GENERATIONS:
        assert check_graph(proto, generation) == [], (generation, output, input_format)
    if output == "labels_uint8":
        tail = [(n.op_type, [a.i for a in n.attribute if a.name == "to"]) for n in proto.graph.node[-3:]]
        assert tail == [("ArgMax", []), ("Cast", [onnx.TensorProto.FLOAT]), ("Cast", [onnx.TensorProto.UINT8])]


def test_export_is_static_with_argmax_in_graph(random_model_factory) -> None:  # noqa: ANN001
    """Static I/O shapes (one engine per size, as TensorRT likes) and the argmax inside the graph."""
    proto = export_model(random_model_factory("pyramid", "resnet18"), ExportOptions(256, 512))
    ops = {n.op_type for n in proto.graph.node}
    assert "ArgMax" in ops and "Resize" in ops
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*proto.graph.input, *proto.graph.output)]
    assert dims == [[1, 256, 512, 3], [1, 256, 512]]


@pytest.mark.parametrize(
    "options,message",
    [
        (ExportOptions(256, 512, input_format="yuv"), "unknown input format 'yuv'"),
        (ExportOptions(256, 512, output="probabilities"), "unknown output 'probabilities'"),
        (ExportOptions(256, 512, opset=13), "opset 13 is too old"),
        (ExportOptions(32, 512), "too small"),
    ],
)
def test_unsupported_options_give_clear_errors(options: ExportOptions, message: str, random_model_factory) -> None:  # noqa: ANN001
    with pytest.raises(ExportError, match=message):
        export_model(random_model_factory(), options)


def test_pyramid_unsupported_size_is_a_clear_error(random_model_factory) -> None:  # noqa: ANN001
    with pytest.raises(ExportError, match="cannot fuse features at input size 1033x2048"):
        export_model(random_model_factory("pyramid", "resnet18"), ExportOptions(1033, 2048))


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    tool = Path(__file__).resolve().parents[1] / "tools" / "export_onnx.py"
    run = subprocess.run(
        [sys.executable, str(tool), "--random-weights", "--model", "swiftnet_pyr_rn18", "--size", "1033x2048",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: pyramid SwiftNet cannot fuse") and "Traceback" not in run.stderr
    bad_size = subprocess.run([sys.executable, str(tool), "--random-weights", "--size", "big"], capture_output=True,
                              text=True, timeout=120)
    assert bad_size.returncode == 2 and "HEIGHTxWIDTH" in bad_size.stderr


def test_tensorrt_parse_failure_names_the_node(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("FancyOp", ["x"], ["y"], name="my_fancy_node", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    report = check_onnx(path)
    assert not report.ok
    assert "parse FAILED" in report.summary() and "my_fancy_node, FancyOp" in report.summary()


def test_batch_export_equals_frames_one_at_a_time(random_model_factory, tmp_path: Path) -> None:  # noqa: ANN001
    """A static batch of 3 (multi-camera mode): the contract records it, each row equals that frame exported at
    batch 1, and TensorRT parses and builds it."""
    model = random_model_factory("single_scale", "resnet18", seed=5)
    height, width = 128, 256
    single = export_model(model, ExportOptions(height, width))
    batched_path = tmp_path / "m_b3.onnx"
    contract = export_onnx(model, batched_path, ExportOptions(height, width, batch=3))
    assert contract.batch == 3 and contract_of(single).batch == 1
    batched = onnx.load(str(batched_path))
    dims = [d.dim_value for d in batched.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, height, width, 3]

    frames = np.random.default_rng(2).integers(0, 256, (3, height, width, 3), dtype=np.uint8)
    (rows,) = session(batched).run(None, {"image": frames})
    assert rows.shape == (3, height, width)
    one = session(single)
    for i in range(3):
        (labels,) = one.run(None, {"image": frames[i : i + 1]})
        assert (rows[i] == labels[0]).mean() >= 0.9999
    assert_tensorrt_accepts(batched, tmp_path / "built_b3.onnx")
