"""The per-part split (models/parts.py) computes what the whole model computes, and every ONNX node / TensorRT
layer of an export falls into one of the four parts (network_parts.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trt_segmentation.export import ExportOptions, export_model
from trt_segmentation.models import MODEL_NAMES
from trt_segmentation.models.parts import run_parts, split
from trt_segmentation.network_parts import (
    MIXED,
    OTHER,
    PARTS,
    group_layer_times,
    part_of_layer,
    part_of_node,
)

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_parts_in_order_are_the_whole_model(name: str, random_model_factory) -> None:  # noqa: ANN001
    arch = MODEL_NAMES[name]
    model = random_model_factory(arch.variant, arch.encoder)
    frame = torch.randint(0, 256, (1, 128, 256, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    parts = split(model, 128, 256)
    assert [p.name for p in parts] == list(PARTS)
    with torch.no_grad():
        tensors = run_parts(parts, frame)
        logits = model(frame.permute(0, 3, 1, 2).float())
    quarter = torch.nn.functional.interpolate(tensors["logits_quarter"], size=(128, 256), mode="bilinear",
                                              align_corners=False)
    assert torch.equal(quarter, logits)
    assert torch.equal(tensors["labels"], logits.argmax(1).to(torch.uint8))


@pytest.mark.parametrize("variant", ["single_scale", "pyramid"])
def test_every_exported_node_has_a_part(variant: str, random_model_factory) -> None:  # noqa: ANN001
    proto = export_model(random_model_factory(variant), ExportOptions(128, 256, input_format="uint8_bgr"))
    unknown = [n.name for n in proto.graph.node if part_of_node(n.name) is None and n.op_type != "Identity"]
    assert not unknown
    by_op: dict[str, set[str]] = {}
    for node in proto.graph.node:
        by_op.setdefault(node.op_type, set()).add(part_of_node(node.name) or "")
    assert by_op["ArgMax"] == {"resize_argmax"} and by_op["MaxPool"] == {"encoder"}
    assert "context" in by_op["Conv"] and "upsampling" in by_op["Conv"] and "encoder" in by_op["Conv"]
    # the final resize is the only one of the last part; the decoder's resizes are upsampling (or SPP)
    final = [n.name for n in proto.graph.node if n.op_type == "Resize" and part_of_node(n.name) == "resize_argmax"]
    assert final == ["/Resize"]


@pytest.mark.parametrize("model", ["swiftnet_ss_rn18", "swiftnet_pyr_rn18"])
def test_recorded_tensorrt_rtx_layer_names(model: str) -> None:
    """Layer names of the TensorRT-RTX 1.7 parser's network for a 128x256 export (recorded: an engine's inspector
    needs a GPU): every layer named after a node has a part; unnamed and parser helper layers are ``other``."""
    names = (DATA / f"trt_rtx_layers_{model}.txt").read_text().splitlines()
    parts = {name: part_of_layer(name) for name in names}
    assert not [n for n, p in parts.items() if n.startswith("/backbone/") and p not in PARTS]
    assert {p for n, p in parts.items() if n.startswith(("(Unnamed", "ONNXTRT_", "Identity"))} == {OTHER}
    assert {p for p in parts.values()} == {*PARTS, OTHER}


def test_group_layer_times_of_fused_layers() -> None:
    layers = [
        ("/backbone/conv1/Conv + /backbone/relu/Relu", 1.0),
        ("/Cast", 0.25),
        ("/backbone/spp/spp/spp_bn/norm/BatchNormalization", 0.5),
        ("PWN(/backbone/upsample.0/Add, /backbone/upsample.0/blend_conv/relu/Relu)", 2.0),
        ("/logits/conv/Conv", 0.5),
        ("{ForeignNode[/Resize.../ArgMax]}", 3.0),
        ("{ForeignNode[/backbone/layer4/layer4.1/relu_1/Relu.../backbone/spp/spp/spp_bn/conv/Conv]}", 4.0),
        ("Reformatting CopyNode for Output Tensor 0 to /Cast_2", 0.125),
        ("(Unnamed Layer* 3) [Shuffle]", 0.0625),
    ]
    totals = group_layer_times(layers)
    assert totals == {"encoder": 1.25, "context": 0.5, "upsampling": 2.5, "resize_argmax": 3.125, MIXED: 4.0,
                      OTHER: 0.0625}


def test_layer_profiler_sums_reported_times_into_parts() -> None:
    """The IProfiler subclass made from TensorRT-RTX's bindings (TensorRT calls report_layer_time per layer and
    run; here it is called as TensorRT would: executing an engine needs a GPU)."""
    from trt_segmentation.engine.tensorrt_adapter import tensorrt_rtx
    from trt_segmentation.network_parts import format_parts, layer_profiler

    found = tensorrt_rtx()
    if found is None:
        pytest.skip("TensorRT-RTX is not installed")
    profiler = layer_profiler(found.module)
    assert isinstance(profiler, found.module.IProfiler)
    for _ in range(2):  # two runs
        profiler.report_layer_time("/backbone/conv1/Conv + /backbone/relu/Relu", 0.5)
        profiler.report_layer_time("/Resize", 0.25)
    totals = group_layer_times(profiler.layers())
    assert totals["encoder"] == 1.0 and totals["resize_argmax"] == 0.5
    table = format_parts(totals, "TensorRT per-layer time by part")
    assert "| encoder (incl. input cast/normalise) | 1.000 | 67% |" in table
    assert "mixed" not in table
