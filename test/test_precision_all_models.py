"""Every SwiftNet (single-scale and pyramid, ResNet-18 and -34) in every calibrated precision, batch 1 (and batch 2
on one).

For each model: int8 quantizes every Conv with TensorRT's Q/DQ rules (per-channel weights, per-tensor activations),
``mixed`` quantizes exactly the model's encoder Convs (``SwiftNet.encoder_conv_count``: the pyramid's three levels
each count), int8-cpu quantizes every Conv for ONNX Runtime, every quantized Conv input carries a per-tensor scale
named after a tensor of the FP32 graph (what engine/calibration_table.py writes for the implicit path), and
TensorRT-RTX parses and builds the int8 and mixed variants. Small (64x128), seeded random weights, seeded noise
frames: the structure is under test here, accuracy is test_precision_accuracy.py's and docs/accuracy.md's.

The pyramid ResNet-18 keeps PyTorch's default BatchNorms (what ``trt_seg_export_onnx --random-weights`` exports):
its levels' BNs fold into byte-identical conv weights, which the exporter writes as Identity nodes -- the case that
made ModelOpt quantize those weights per tensor (issue 17).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from trt_segmentation.artifacts import Precision
from trt_segmentation.export import ExportOptions, export_onnx
from trt_segmentation.precision import make_variant
from trt_segmentation.precision.calibration_data import CalibrationSet
from trt_segmentation.precision.int8 import count_quantized_convs, inline_weight_identities, qdq_structure_problems
from trt_segmentation.precision.mixed import ENCODER_PATTERN

H, W = 64, 128
MODELS = {"swiftnet_ss_rn18": ("single_scale", "resnet18"), "swiftnet_ss_rn34": ("single_scale", "resnet34"),
          "swiftnet_pyr_rn18": ("pyramid", "resnet18"), "swiftnet_pyr_rn34": ("pyramid", "resnet34")}
# batch 2 on the pyramid with default BNs only: the Q/DQ rules see no batch dimension, and the three other models'
# batch-2 builds cost 3 min of CI's 2 cores for no other path
CASES = [(name, 1) for name in MODELS] + [("swiftnet_pyr_rn18", 2)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{n}-b{b}" for n, b in CASES])
def case(request, tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    import torch

    from trt_segmentation.models import build_model

    name, batch = request.param
    variant, encoder = MODELS[name]
    if name == "swiftnet_pyr_rn18":  # default BNs: the --random-weights export (see the module docstring)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_model(variant, encoder)
    else:
        model = random_model_factory(variant, encoder, 0)
    base = tmp_path_factory.mktemp(f"{name}_b{batch}")
    paths = {"fp32": base / "fp32.onnx"}
    export_onnx(model, paths["fp32"], ExportOptions(H, W, batch=batch))
    frames = np.random.default_rng(0).integers(0, 256, (2 * batch, H, W, 3), dtype=np.uint8)
    calibration = CalibrationSet(frames, "seeded noise", batch)
    for precision in ("int8", "mixed", "int8-cpu"):
        paths[precision] = base / f"{precision}.onnx"
        make_variant(paths["fp32"], Precision(precision), paths[precision], calibration, use_cache=False)
    return name, batch, model.encoder_conv_count(), {k: onnx.load(str(p)) for k, p in paths.items()}, paths


@pytest.mark.slow
def test_quantized_conv_counts_follow_the_model(case) -> None:  # noqa: ANN001
    name, _, encoder_convs, models, _ = case
    _, total = count_quantized_convs(models["fp32"])
    encoder_nodes = [n.name for n in models["fp32"].graph.node if n.op_type == "Conv"
                     and re.fullmatch(ENCODER_PATTERN, n.name)]
    assert len(encoder_nodes) == encoder_convs, f"{name}: the encoder scope misses Convs of the model's encoder"
    assert count_quantized_convs(models["int8"]) == (total, total)
    assert count_quantized_convs(models["mixed"]) == (encoder_convs, total)
    assert count_quantized_convs(models["int8-cpu"]) == (total, total)
    for precision in ("int8", "mixed"):
        assert qdq_structure_problems(models[precision]) == [], precision


@pytest.mark.slow
def test_every_quantized_conv_input_has_a_scale_the_calibration_table_can_name(case) -> None:  # noqa: ANN001
    _, _, _, models, _ = case
    fp32_tensors = {o for n in models["fp32"].graph.node for o in n.output}
    for precision in ("int8", "mixed"):
        model = models[precision]
        producers = {o: n for n in model.graph.node for o in n.output}
        inits = {i.name: i for i in model.graph.initializer}
        for conv in (n for n in model.graph.node if n.op_type == "Conv"):
            dq = producers.get(conv.input[0])
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producers[dq.input[0]]
            assert q.op_type == "QuantizeLinear" and not inits[q.input[1]].dims, (precision, conv.name)
            source = q.input[0]
            while source in producers and producers[source].op_type in ("Cast", "Identity"):
                source = producers[source].input[0]  # mixed: the FP16 pass puts Casts in front of Q
            assert source in fp32_tensors, (precision, conv.name, source)


@pytest.mark.slow
def test_tensorrt_rtx_builds_the_int8_and_mixed_variants(case) -> None:  # noqa: ANN001
    from trt_segmentation.engine.tensorrt_adapter import TensorRTUnavailable
    from trt_segmentation.engine.tensorrt_parse_check import check_onnx

    _, batch, _, _, paths = case
    for precision in ("int8", "mixed"):
        try:
            report = check_onnx(paths[precision])
        except TensorRTUnavailable as exc:
            pytest.skip(str(exc))
        assert report.ok, report.summary()
        assert report.inputs[0][2] == (batch, H, W, 3)


def test_identity_aliased_weights_are_inlined(tmp_path: Path) -> None:
    """The exporter's Identity(initializer) weights of a default-BN pyramid become direct initializer inputs."""
    import torch

    from trt_segmentation.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("pyramid", "resnet18")
    export_onnx(model, tmp_path / "pyr.onnx", ExportOptions(H, W))
    proto = onnx.load(str(tmp_path / "pyr.onnx"))
    identities = sum(1 for n in proto.graph.node if n.op_type == "Identity")
    assert identities >= 40  # levels 1 and 2 of the 20 encoder Convs
    assert inline_weight_identities(proto) == identities
    assert not any(n.op_type == "Identity" for n in proto.graph.node)
    onnx.checker.check_model(proto)
    inits = {i.name for i in proto.graph.initializer}
    assert all(n.input[1] in inits for n in proto.graph.node if n.op_type == "Conv")


@pytest.mark.slow
def test_every_variant_loads_and_runs_in_the_onnxruntime_backend(case) -> None:  # noqa: ANN001
    """What the node runs on a CPU: each variant opens in the project's ONNX Runtime backend and labels a batch
    (the pyramid int8-cpu graphs once failed to load: ORT's NHWC pass broke their bicubic Resize)."""
    from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend

    name, batch, _, _, paths = case
    frames = np.random.default_rng(1).integers(0, 256, (batch, H, W, 3), dtype=np.uint8)
    for precision in ("fp32", "int8", "mixed", "int8-cpu"):
        with OnnxRuntimeBackend(paths[precision]) as backend:
            labels = backend.infer_batch(list(frames)).labels
        assert labels.shape == (batch, H, W) and labels.max() < 19, (name, precision)
