"""Every exported variant against each claimed TensorRT parser's documented support (engine/parser_support.py):
opset range, operator input types, the UINT8 cast rule of 8.5/8.6, Q/DQ zero points. No TensorRT needed; the
same variants are also built by TensorRT-RTX (test_precision_variants.py) and, on the target, by its TensorRT
(tools/check_on_target.py). Variants are shared with the other precision tests (one set per session).
"""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper
from test_precision_variants import ensure_variants

from trt_segmentation.artifacts import Precision
from trt_segmentation.engine.builder import build_path, explicit_path_problem
from trt_segmentation.engine.parser_support import GENERATIONS, check_graph, generation_of, max_opset, support_table
from trt_segmentation.engine.tensorrt_adapter import TensorRT
from trt_segmentation.onnx_metadata import read_onnx_opset

# what each generation takes explicitly; mixed precision's FP16 Q/DQ inputs need opset 19 (ONNX: QuantizeLinear
# takes float16 only from opset 19), so TensorRT 8.5/8.6 build mixed the implicit way
EXPLICIT = {"8.5": {"fp32", "fp16", "int8"}, "8.6": {"fp32", "fp16", "int8"}, "10": {"fp32", "fp16", "int8", "mixed"}}


@pytest.fixture(scope="module")
def variants(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    return ensure_variants(tmp_path_factory.getbasetemp() / "precision_shared", random_model_factory)


@pytest.mark.parametrize("generation", list(GENERATIONS))
@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8", "mixed"])
def test_every_variant_meets_each_documented_parser(variants, variant: str, generation: str) -> None:  # noqa: ANN001
    problems = check_graph(variants[variant], generation)
    if variant in EXPLICIT[generation]:
        assert problems == [], problems
    else:
        assert problems == [f"opset 19 is outside 7-17 (TensorRT {generation})"], problems


def test_int8_variant_is_opset_17_and_the_labels_cast_goes_through_float(variants) -> None:  # noqa: ANN001
    assert read_onnx_opset(variants["int8"]) == 17 and read_onnx_opset(variants["fp32"]) == 17
    for variant in ("fp32", "fp16", "int8", "mixed"):
        nodes = onnx.load(str(variants[variant])).graph.node
        tail = [(n.op_type, next((a.i for a in n.attribute if a.name == "to"), None)) for n in nodes[-3:]]
        assert tail[0] == ("ArgMax", None) and tail[2] == ("Cast", TensorProto.UINT8), (variant, tail)
        assert tail[1] in (("Cast", TensorProto.FLOAT), ("Cast", TensorProto.FLOAT16)), (variant, tail)


def _argmax_graph(labels_cast: list[int], opset: int = 17) -> onnx.ModelProto:
    nodes = [helper.make_node("ArgMax", ["x"], ["idx"], axis=1, keepdims=0)]
    name = "idx"
    for i, to in enumerate(labels_cast):
        nodes.append(helper.make_node("Cast", [name], [f"c{i}"], to=to, name=f"cast{i}"))
        name = f"c{i}"
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info(name, labels_cast[-1], [1, 2, 2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_the_old_direct_labels_cast_is_refused_by_every_jetpack_tensorrt() -> None:
    # issue 18, defect 9: the TensorRT-10 row let a direct INT32 -> UINT8 cast through; the 10.3 headers rule it out
    direct = _argmax_graph([TensorProto.UINT8])
    for generation in ("8.5", "8.6", "10"):
        source = "INT64" if generation == "10" else "INT32"  # TensorRT 10 keeps ArgMax's INT64 (no INT32 rewrite)
        assert check_graph(direct, generation) == [
            f"cast0: Cast {source} -> UINT8; TensorRT {generation} casts UINT8 only from/to FLOAT/FLOAT16"]
    assert all(check_graph(_argmax_graph([TensorProto.FLOAT, TensorProto.UINT8]), g) == [] for g in GENERATIONS)
    assert check_graph(_argmax_graph([TensorProto.FLOAT], opset=19), "8.5") == ["opset 19 is outside 7-17 (TensorRT 8.5)"]


def test_versions_map_to_their_tables_and_the_docs_carry_them() -> None:
    assert [generation_of(v) for v in ("8.5.2.2", "8.6.2.3", "10.3.0.30", "10.7.0", "9.2.0", "11.0.0")] == [
        "8.5", "8.6", "10", "10", None, None]
    assert max_opset("8.5.2") == 17 and max_opset("10.3.0") == 20 and max_opset("11.0") is None
    table = support_table()
    assert all(f.source in table for f in GENERATIONS.values())


@pytest.mark.parametrize("version,expected", [("8.5.2", {"fp32": "explicit", "fp16": "explicit", "int8": "explicit",
                                                         "mixed": "implicit"}),
                                              ("8.6.2", {"mixed": "implicit", "int8": "explicit"}),
                                              ("10.3.0", {"mixed": "explicit", "int8": "explicit"})])
def test_each_entry_point_picks_the_path_the_installed_tensorrt_parses(variants, version: str,  # noqa: ANN001
                                                                       expected: dict) -> None:
    trt = TensorRT(module=None, builder="tensorrt", version=version)  # only the version is read
    for precision, path in expected.items():
        assert build_path(trt, Precision(precision), variants[precision]) == path, (version, precision)
    if version.startswith("8."):
        assert "opset 19" in explicit_path_problem(trt, variants["mixed"]) and "tools/build_on_target.py" in \
            explicit_path_problem(trt, variants["mixed"])
    rtx = TensorRT(module=None, builder="tensorrt-rtx", version="1.7.1")
    assert build_path(rtx, Precision.MIXED, variants["mixed"]) == "explicit"


def test_implicit_mixed_pins_float_compute_only(variants) -> None:  # noqa: ANN001
    """The implicit mixed rules on the real parsed FP32 network (TensorRT-RTX's parser, same layer names): the
    uint8 input cast, ArgMax, the labels casts, shape and constant layers are never pinned; preprocessing float
    arithmetic is FP32, the encoder is left to INT8, the rest FP16."""
    from trt_segmentation.engine.builder import PREPROCESSING_LAYERS
    from trt_segmentation.engine.tensorrt_adapter import (
        BuildOptions,
        _dtype_name,
        layer_precision_plan,
        make_logger,
        tensorrt_rtx,
    )
    from trt_segmentation.precision.mixed import ENCODER_LAYERS

    rtx = tensorrt_rtx()
    if rtx is None:
        pytest.skip("TensorRT-RTX is not installed")
    mod = rtx.module
    logger = make_logger(rtx)
    builder = mod.Builder(logger)
    network = builder.create_network(0)
    parser = mod.OnnxParser(network, logger)
    assert parser.parse_from_file(str(variants["fp32"]))
    options = BuildOptions(fp16_layers=[f"^(?!{ENCODER_LAYERS})"], fp32_layers=[PREPROCESSING_LAYERS])
    plan = dict(layer_precision_plan(rtx, network, options))
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    for index, layer in enumerate(layers):
        io = [layer.get_input(j) for j in range(layer.num_inputs)] + [layer.get_output(j) for j in
                                                                        range(layer.num_outputs)]
        non_float = any(t is not None and _dtype_name(t.dtype) not in ("FLOAT", "HALF") for t in io)
        if non_float or layer.type in (mod.LayerType.SHAPE, mod.LayerType.CONSTANT):
            assert index not in plan, (layer.name, layer.type)
    names = {layers[i].name: target for i, target in plan.items()}
    assert not any(n.startswith(("/Cast", "/ArgMax")) for n in names), sorted(n for n in names if "Cast" in n)
    assert {t for n, t in names.items() if n in ("/Sub", "/Div")} == {"float32"}, names
    assert [t for n, t in names.items() if "/spp/" in n] and all(t == "float16" for n, t in names.items()
                                                                  if "/spp/" in n)
    assert not any(n.startswith(("/backbone/layer", "/backbone/conv1")) for n in names)  # encoder: INT8
    assert sum(1 for t in names.values() if t == "float16") > 10


def test_dla_refuses_fp32_before_building(variants, tmp_path) -> None:  # noqa: ANN001
    from trt_segmentation.engine.builder import build_engine
    from trt_segmentation.engine.tensorrt_adapter import BuildError

    if not __import__("importlib").util.find_spec("tensorrt_rtx_libs"):
        pytest.skip("TensorRT-RTX is not installed")
    with pytest.raises(BuildError, match="DLA runs FP16 and INT8 only"):
        build_engine(variants["fp32"], tmp_path / "m.engine", Precision.FP32, builder="tensorrt-rtx", dla_core=0)
