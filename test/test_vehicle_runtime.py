"""What runs on the vehicle, tested without rclpy, torch or TensorRT: also the body of the Python 3.8 leg
(scripts/test_py38.sh, JetPack 5). The TensorRT dtype table, the engine sidecar checks that refuse an engine
before TensorRT is needed, the calibration feeder's input checks, ONNX Runtime on a small real graph, and a scan
for generics subscripted at run time (``collections.abc.Callable[...]`` raises TypeError on 3.8; vermin does not
see it outside annotations).
"""

from __future__ import annotations

import ast
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: the modules that run on the vehicle (runtime, node side, codec, diagnostics) and what they import
VEHICLE_MODULES = [
    "trt_segmentation.runtime", "trt_segmentation.runtime.backend", "trt_segmentation.runtime.cuda_slots",
    "trt_segmentation.runtime.tensorrt_backend", "trt_segmentation.runtime.onnxruntime_backend",
    "trt_segmentation.apps.target_check", "trt_segmentation.engine.metadata", "trt_segmentation.engine.builder",
    "trt_segmentation.engine.tensorrt_adapter", "trt_segmentation.engine.parser_support",
    "trt_segmentation.engine.calibration_feeder", "trt_segmentation.onnx_metadata", "trt_segmentation.artifacts",
    "trt_segmentation.node.diagnostics", "trt_segmentation.node.latency", "trt_segmentation.palette",
    "trt_segmentation.image_codec", "trt_segmentation.node.params", "trt_segmentation.hashing",
    "trt_segmentation.cli",
]
VEHICLE_FILES = sorted({str(p.relative_to(REPO)) for folder in ("runtime", "node")
                        for p in (REPO / "trt_segmentation" / folder).rglob("*.py")} | {
    f"trt_segmentation/{name}.py" for name in ("image_codec", "palette", "onnx_metadata", "artifacts", "hashing",
                                               "cli", "image_cdr")
    if (REPO / f"trt_segmentation/{name}.py").is_file()} | {
    f"trt_segmentation/engine/{name}.py" for name in ("metadata", "builder", "tensorrt_adapter", "parser_support",
                                                      "calibration_feeder", "implicit_calibrator")})
_GENERICS = {"list", "dict", "tuple", "set", "frozenset", "type", "deque", "defaultdict", "OrderedDict", "Counter",
             "Callable", "Iterator", "Iterable", "Sequence", "Mapping", "MutableMapping", "Generator", "Awaitable"}


def runtime_generic_subscripts(source: str) -> list[tuple[int, str]]:
    """(line, text) of every ``list[...]``/``Callable[...]``-style subscript outside an annotation: evaluated when
    the line runs, which Python 3.8 refuses for builtins and collections.abc (PEP 585 is 3.9)."""
    tree = ast.parse(source)
    from_typing = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and node.module in ("typing", "typing_extensions") for alias in node.names}
    in_annotation: set[int] = set()
    for node in ast.walk(tree):
        for attr in ("annotation", "returns"):
            sub = getattr(node, attr, None)
            if sub is not None:
                in_annotation.update(id(n) for n in ast.walk(sub))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and id(node) not in in_annotation:
            value = node.value
            if isinstance(value, ast.Name):
                name = "" if value.id in from_typing else value.id  # typing's generics subscript on 3.8
            elif isinstance(value, ast.Attribute):
                name = "" if isinstance(value.value, ast.Name) and value.value.id == "typing" else value.attr
            else:
                name = ""
            if name in _GENERICS:
                found.append((node.lineno, ast.get_source_segment(source, node) or name))
    return found


def test_no_generic_is_subscripted_at_run_time_in_vehicle_code() -> None:
    assert runtime_generic_subscripts("from collections.abc import Callable\nX = Callable[[int], None]\n"
                                      "def f(a: list[int]) -> dict[str, int]: ...\n") == [(2, "Callable[[int], None]")]
    assert runtime_generic_subscripts("from typing import Callable\nX = Callable[[int], None]\nY = typing.Dict[str, int]"
                                      "\nZ = dict[str, int]\n") == [(4, "dict[str, int]")]
    problems = [f"{f}:{line}: {text}" for f in VEHICLE_FILES
                for line, text in runtime_generic_subscripts((REPO / f).read_text())]
    assert problems == [], "subscripted at run time (TypeError on Python 3.8): " + "; ".join(problems)


@pytest.mark.parametrize("module", VEHICLE_MODULES)
def test_vehicle_module_imports_on_this_python(module: str) -> None:
    importlib.import_module(module)


def test_tensorrt_dtype_table_needs_no_trt_nptype() -> None:
    from trt_segmentation.runtime.backend import BackendError
    from trt_segmentation.runtime.tensorrt_backend import NUMPY_DTYPES, dtype_name, numpy_dtype

    assert numpy_dtype("UINT8") == np.uint8 and numpy_dtype("FLOAT") == np.float32
    assert numpy_dtype("HALF") == np.float16 and numpy_dtype("INT32") == np.int32 and numpy_dtype("BOOL") == np.bool_

    class FakeEnum:  # what str() gives for a pybind11 enum: 'DataType.INT8'; .name is 'INT8'
        name = "INT8"

    assert dtype_name(FakeEnum()) == "INT8" and numpy_dtype(FakeEnum()) == np.int8
    with pytest.raises(BackendError, match="BF16 has no numpy dtype"):
        numpy_dtype("BF16")
    assert set(NUMPY_DTYPES) == {"FLOAT", "HALF", "INT8", "INT32", "INT64", "BOOL", "UINT8"}


def test_dtype_table_covers_every_tensorrt_io_type_the_engines_use() -> None:
    """Against a real TensorRT DataType enum (TensorRT-RTX's, where installed; the main leg has it)."""
    pytest.importorskip("tensorrt_rtx_libs")
    import tensorrt_rtx_bindings as trt

    from trt_segmentation.runtime.tensorrt_backend import numpy_dtype

    for member, expected in ((trt.float32, np.float32), (trt.float16, np.float16), (trt.int8, np.int8),
                             (trt.int32, np.int32), (trt.int64, np.int64), (trt.bool, np.bool_),
                             (trt.uint8, np.uint8)):
        assert numpy_dtype(member) == np.dtype(expected), member


def _engine_with_sidecar(tmp_path: Path, **changes: object) -> Path:
    from trt_segmentation.engine.metadata import EngineMetadata, write_metadata

    engine = tmp_path / "m_256x512_int8.engine"
    engine.write_bytes(b"plan")
    fields = dict(model="m", height=256, width=512, precision="int8", tensorrt_version="8.5.2",
                  builder="tensorrt", typing="weak", gpu_name="Xavier", compute_capability="7.2",
                  onnx_sha256="0" * 64, contract=json.loads(_contract().to_json()))
    fields.update(changes)
    write_metadata(engine, EngineMetadata(**fields))  # type: ignore[arg-type]
    return engine


def test_tensorrt_backend_refuses_a_mismatching_engine_before_tensorrt_is_needed(tmp_path: Path) -> None:
    """The precision asked for, the builder and the source ONNX are checked from the sidecar first: on a machine
    without TensorRT the refusal names the real reason, not the missing TensorRT."""
    from trt_segmentation.runtime.backend import BackendError
    from trt_segmentation.runtime.tensorrt_backend import EngineMismatch, TensorRtBackend

    engine = _engine_with_sidecar(tmp_path)
    with pytest.raises(EngineMismatch, match="engine precision is int8, fp16 was asked for"):
        TensorRtBackend(engine, precision="fp16")
    rtx = _engine_with_sidecar(tmp_path, builder="tensorrt-rtx")
    with pytest.raises(EngineMismatch, match="built by tensorrt-rtx, this runtime loads tensorrt engines only"):
        TensorRtBackend(rtx, precision="int8")
    engine = _engine_with_sidecar(tmp_path)
    engine.with_suffix(".onnx").write_bytes(b"re-exported")
    with pytest.raises(EngineMismatch, match="the ONNX changed since the build"):
        TensorRtBackend(engine, precision="int8")
    engine.with_suffix(".onnx").unlink()
    with pytest.raises(BackendError, match="TensorRT is not installed|only type stubs"):  # everything else fits
        TensorRtBackend(engine, precision="int8")


def test_engine_binding_shapes_must_match_the_sidecar_batch() -> None:
    """The TensorRT backend takes its slot shapes from the engine and refuses an engine whose batch (or size) is
    not the one its sidecar's contract records, naming both and the rebuild command."""
    from dataclasses import replace

    from trt_segmentation.runtime.tensorrt_backend import EngineMismatch, check_engine_shapes, expected_shapes

    three = replace(_contract(), batch=3)
    assert expected_shapes(_contract()) == ((1, 4, 6, 3), (1, 4, 6))
    assert expected_shapes(three) == ((3, 4, 6, 3), (3, 4, 6))
    assert expected_shapes(replace(three, input_format="float_normalised", output="logits")) == ((3, 3, 4, 6),
                                                                                                (3, 19, 4, 6))
    engine = Path("m_4x6_b3_fp16.engine")
    check_engine_shapes(engine, three, (3, 4, 6, 3), (3, 4, 6), "rebuild-cmd")
    with pytest.raises(EngineMismatch, match=r"runs batches of 1 \(input \(1, 4, 6, 3\), output \(1, 4, 6\)\), its "
                                             r"sidecar's contract says batch 3; rebuild it: rebuild-cmd"):
        check_engine_shapes(engine, three, (1, 4, 6, 3), (1, 4, 6), "rebuild-cmd")
    with pytest.raises(EngineMismatch, match="says batch 1"):
        check_engine_shapes(engine, _contract(), (3, 4, 6, 3), (3, 4, 6), "rebuild-cmd")
    with pytest.raises(EngineMismatch, match=r"input \(3, 4, 8, 3\) and output \(3, 4, 8\), its sidecar's contract "
                                             r"describes \(3, 4, 6, 3\) -> \(3, 4, 6\)"):
        check_engine_shapes(engine, three, (3, 4, 8, 3), (3, 4, 8), "rebuild-cmd")


def test_sidecar_checks_builder_and_jetson_module() -> None:
    from trt_segmentation.artifacts import Precision
    from trt_segmentation.engine.metadata import EngineMetadata, check_compatible

    meta = EngineMetadata(model="m", height=1, width=2, precision="fp16", tensorrt_version="10.3.0",
                          builder="tensorrt", typing="strong", gpu_name="Orin", compute_capability="8.7",
                          onnx_sha256="0" * 64, platform="NVIDIA Jetson AGX Orin Developer Kit")
    assert check_compatible(meta, precision=Precision.FP16, tensorrt_version="10.3.0", compute_capability="8.7",
                            builder="tensorrt", platform="NVIDIA Jetson AGX Orin Developer Kit") == []
    reasons = check_compatible(meta, precision=Precision.FP16, compute_capability="8.7",
                               platform="NVIDIA Jetson Orin Nano Developer Kit")
    assert reasons == ["engine was built on NVIDIA Jetson AGX Orin Developer Kit, this is NVIDIA Jetson Orin Nano "
                       "Developer Kit"]
    assert check_compatible(meta, precision=Precision.FP16, platform="") == []  # not a Jetson: nothing to compare


def _contract(input_format: str = "uint8_rgb"):  # noqa: ANN202
    from trt_segmentation.onnx_metadata import ModelContract

    return ModelContract(model="m", num_classes=19, height=4, width=6, input_format=input_format,
                         output="labels_uint8", input_name="image", output_name="labels",
                         mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_calibration_feeder_checks_frames_and_network_input_without_a_gpu() -> None:
    from trt_segmentation.engine.calibration_feeder import CalibrationFeeder, network_input_spec

    assert network_input_spec(_contract()) == ((1, 4, 6, 3), np.dtype(np.uint8))
    assert network_input_spec(_contract("float_normalised")) == ((1, 3, 4, 6), np.dtype(np.float32))
    with pytest.raises(ValueError, match="N x 4 x 6 x 3 uint8"):
        CalibrationFeeder(np.zeros((2, 8, 6, 3), np.uint8), _contract())  # wrong size: refused before any GPU work
    with pytest.raises(ValueError, match="N x 4 x 6 x 3 uint8"):
        CalibrationFeeder(np.zeros((2, 4, 6, 3), np.float32), _contract())


def test_labels_of_any_integer_output_become_uint8() -> None:
    """An int32-labels engine (``labels_int32``) reaches the node as the same uint8 image."""
    from dataclasses import replace

    from trt_segmentation.runtime.backend import to_labels

    labels = np.arange(24, dtype=np.int32).reshape(1, 4, 6) % 19
    for dtype in (np.int32, np.int64, np.uint8):
        out = to_labels(labels.astype(dtype), replace(_contract(), output="labels_int32"))
        assert out.dtype == np.uint8 and np.array_equal(out, labels[0])


def test_labels_of_a_batch_keep_the_batch_axis() -> None:
    """(N, H, W) labels, or (N, C, H, W) logits, of a batch-N graph -> (N, H, W) uint8; without ``keep_batch`` the
    first frame's (H, W), as for a batch-1 graph."""
    from dataclasses import replace

    from trt_segmentation.runtime.backend import to_labels

    logits = np.random.default_rng(4).standard_normal((3, 5, 4, 6)).astype(np.float32)
    contract = replace(_contract(), output="logits", batch=3)
    labels = to_labels(logits, contract, keep_batch=True)
    assert labels.dtype == np.uint8 and np.array_equal(labels, np.argmax(logits, axis=1))
    assert np.array_equal(to_labels(logits, contract), labels[0])
    ids = labels.astype(np.int32)
    assert np.array_equal(to_labels(ids, replace(contract, output="labels_int32"), keep_batch=True), labels)


def test_onnxruntime_batch_rows_equal_frames_one_at_a_time_on_the_tiny_model(tmp_path: Path) -> None:
    """The batch API on this Python (the 3.8 leg too): a batch-3 file's rows are the batch-1 file's frames; a None
    row is padding; a wrong count is refused naming the batch (test_runtime_batch.py has the full set)."""
    pytest.importorskip("onnx")
    from tiny_model import write_tiny_model

    from trt_segmentation.runtime import InputMismatch, create_backend

    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (8, 16, 3), dtype=np.uint8) for _ in range(3)]
    with create_backend("onnxruntime", write_tiny_model(tmp_path / "b1.onnx", 8, 16, seed=1), threads=1) as one, \
            create_backend("onnxruntime", write_tiny_model(tmp_path / "b3.onnx", 8, 16, seed=1, batch=3),
                           threads=1) as three:
        expected = np.stack([one.infer(f).labels for f in frames])
        assert three.batch == 3 and three.infer_batch(frames).labels.shape == (3, 8, 16)
        np.testing.assert_array_equal(three.infer_batch(frames).labels, expected)
        three.submit_batch([frames[0], None, frames[2]], tag="t")
        tag, result = three.collect()
        assert tag == "t"
        np.testing.assert_array_equal(result.labels[[0, 2]], expected[[0, 2]])
        with pytest.raises(InputMismatch, match="got 2"):
            three.submit_batch(frames[:2])
        with pytest.raises(InputMismatch, match="submit_batch"):
            three.submit(frames[0])


def _tiny_labels_graph(path: Path) -> np.ndarray:
    """uint8 NHWC -> Cast -> Transpose -> 1x1 Conv (3 -> 5 classes) -> ArgMax -> Cast(float) -> Cast(uint8)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from trt_segmentation.onnx_metadata import METADATA_KEY

    weight = np.random.default_rng(0).standard_normal((5, 3, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w"], ["logits"]),
        helper.make_node("ArgMax", ["logits"], ["idx"], axis=1, keepdims=0),
        helper.make_node("Cast", ["idx"], ["idx_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["idx_f"], ["labels"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 6, 3])],
                              [helper.make_tensor_value_info("labels", TensorProto.UINT8, [1, 4, 6])],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, _contract().to_json().replace('"num_classes": 19', '"num_classes": 5')
    onnx.save(model, str(path))
    return weight


def test_onnxruntime_backend_runs_a_real_graph_with_the_float_hop_labels_cast(tmp_path: Path) -> None:
    path = tmp_path / "m_4x6_fp32.onnx"
    weight = _tiny_labels_graph(path)
    from trt_segmentation.onnx_metadata import read_onnx_metadata, read_onnx_opset
    from trt_segmentation.runtime import create_backend

    assert read_onnx_opset(path) == 17 and "trt_segmentation" in read_onnx_metadata(path)
    frame = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    with create_backend("onnxruntime", path) as backend:
        labels = backend.infer(frame).labels
    expected = np.argmax(np.einsum("hwc,kc->khw", frame.astype(np.float32), weight[:, :, 0, 0]), axis=0)
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)


def test_the_tiny_graph_meets_every_claimed_parser() -> None:
    """The same facts the exported variants are checked against (test_parser_support.py), on the vehicle leg."""
    onnx = pytest.importorskip("onnx")
    import tempfile

    from trt_segmentation.engine.parser_support import GENERATIONS, check_graph

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.onnx"
        _tiny_labels_graph(path)
        model = onnx.load(str(path))
    for generation in GENERATIONS:
        assert check_graph(model, generation) == [], generation


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
