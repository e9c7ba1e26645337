"""The int8-cpu variant: ONNX Runtime's own CPU quantization (real quantize_static on a seeded random-weight net),
its graph (uint8 asymmetric activations, per-channel int8 weights, Conv only, 7-bit weights on x86 without VNNI),
its calibration cache, its contract, and that TensorRT never gets it (builder, pipeline, node start-up)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from trt_segmentation.artifacts import Precision, artifact_path
from trt_segmentation.cpu_features import ARM64, X86_NO_VNNI, X86_VNNI, cpu_class, cpu_flags
from trt_segmentation.export import ExportOptions, contract_of, export_onnx
from trt_segmentation.precision.cache import load_scales, save_scales
from trt_segmentation.precision.calibration_data import load_calibration_set
from trt_segmentation.precision.int8_cpu import CpuRecipe, cpu_qdq_problems, quantized_convs, recipe_for
from trt_segmentation.precision.variants import make_variant

H, W = 128, 256
MODEL = "swiftnet_ss_rn18"
REPO = Path(__file__).resolve().parents[1]
AVX2 = {"fpu", "sse4_2", "avx", "avx2", "fma", "avx512f"}  # AVX-512 without VNNI is still "no VNNI"
VNNI = AVX2 | {"avx512_vnni"}
AVX_VNNI = {"avx", "avx2", "fma", "avx_vnni"}  # Alder Lake-style VEX VNNI without AVX-512
NO_VNNI_RECIPE = recipe_for("x86_64", AVX2)
VNNI_RECIPE = recipe_for("x86_64", VNNI, portable=False)  # ONNX Runtime's own VNNI recommendation: 8-bit weights


# --------------------------------------------------------------------------------------------- recipe decision


def test_onnx_runtimes_recommendation_per_cpu_class() -> None:
    """portable=False: reduce_range only on x86 without VNNI; ARM64 gets symmetric int8 activations."""
    assert NO_VNNI_RECIPE == CpuRecipe(X86_NO_VNNI, "uint8", True)
    assert VNNI_RECIPE == CpuRecipe(X86_VNNI, "uint8", False)
    assert recipe_for("x86_64", AVX_VNNI, portable=False) == CpuRecipe(X86_VNNI, "uint8", False)
    assert recipe_for("x86_64", AVX2, portable=False) == CpuRecipe(X86_NO_VNNI, "uint8", True)
    assert recipe_for("AMD64", set(), portable=False) == CpuRecipe(X86_NO_VNNI, "uint8", True)
    assert recipe_for("aarch64", {"fp", "asimd", "asimddp"}, portable=False) == CpuRecipe(ARM64, "int8", False)
    assert recipe_for("riscv64", set(), portable=False).reduce_range  # unknown CPU: the always-exact settings


def test_the_default_keeps_7_bit_weights_on_every_x86_and_records_the_class() -> None:
    assert recipe_for("x86_64", AVX2) == CpuRecipe(X86_NO_VNNI, "uint8", True)
    assert recipe_for("x86_64", VNNI) == CpuRecipe(X86_VNNI, "uint8", True)
    assert recipe_for("aarch64", {"asimd"}) == CpuRecipe(ARM64, "int8", False)
    assert recipe_for("x86_64", VNNI).contract_extra()["ort_cpu_class"] == X86_VNNI


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_vnni\n\n"
                   "processor\t: 1\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\nCPU implementer\t: 0x41\n")
    assert cpu_flags(str(x86)) == {"fpu", "avx2", "avx512f", "avx512_vnni"}
    assert cpu_class("x86_64", cpu_flags(str(x86))) == X86_VNNI
    assert cpu_class("aarch64", cpu_flags(str(arm))) == ARM64
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()


# ------------------------------------------------------------------------------------------- real quantization


@pytest.fixture(scope="module")
def made(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    """A seeded random-weight FP32 export, 8 generated calibration frames, and int8-cpu made for both x86 classes
    (each with its own calibration cache)."""
    from trt_segmentation.data.street_scenes import write_street_split

    base = tmp_path_factory.mktemp("int8_cpu")
    write_street_split(base / "street", "train", 8, seed=0, height=H, width=W, progress=False)
    fp32 = artifact_path(base, MODEL, H, W, Precision.FP32, ".onnx")
    export_onnx(random_model_factory("single_scale", "resnet18", 0), fp32, ExportOptions(H, W))
    calibration = load_calibration_set(base / "street" / "leftImg8bit" / "train", contract_of(onnx.load(str(fp32))),
                                       count=8, batch_size=8)
    out = {"base": base, "fp32": fp32, "calibration": calibration}
    for name, recipe in (("vnni", VNNI_RECIPE), ("avx2", NO_VNNI_RECIPE)):
        folder = base / name
        path = artifact_path(folder, MODEL, H, W, Precision.INT8_CPU, ".onnx")
        out[name] = make_variant(fp32, Precision.INT8_CPU, path, calibration, cpu_recipe=recipe)
    return out


def _weights(model: onnx.ModelProto) -> list[np.ndarray]:
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    out = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            dq = producers[node.input[1]]
            assert dq.op_type == "DequantizeLinear"
            out.append(numpy_helper.to_array(inits[dq.input[0]]))
    return out


@pytest.mark.parametrize("name", ["vnni", "avx2"])
def test_every_conv_is_uint8_by_int8_per_channel_and_nothing_else_is_quantized(made, name: str) -> None:  # noqa: ANN001
    model = onnx.load(str(made[name].path))
    recipe = VNNI_RECIPE if name == "vnni" else NO_VNNI_RECIPE
    assert cpu_qdq_problems(model, recipe) == []
    quantized, convs = quantized_convs(model)
    assert quantized == convs > 20
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    conv_io = set()
    for node in model.graph.node:
        if node.op_type == "Conv":
            x, w = producers[node.input[0]], producers[node.input[1]]
            assert inits[x.input[2]].data_type == TensorProto.UINT8  # asymmetric uint8 activation
            assert inits[w.input[0]].data_type == TensorProto.INT8
            assert list(inits[w.input[1]].dims) == [inits[w.input[0]].dims[0]]  # one scale per output channel
            assert next(a.i for a in w.attribute if a.name == "axis") == 0
            conv_io.update([producers[x.input[0]].input[0], *node.output])
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert activation_q and {n.input[0] for n in activation_q} <= conv_io  # Q/DQ only on Conv tensors
    zero_points = [numpy_helper.to_array(inits[n.input[2]]) for n in activation_q]
    assert any(int(z) != 0 for z in zero_points)  # really asymmetric (the Cast/normalise input is not >= 0)


def test_without_vnni_the_weights_are_7_bit(made) -> None:  # noqa: ANN001
    """reduce_range: every weight within [-64, 64] (pairs of products stay below 2**15); with VNNI the full 8 bits."""
    reduced = _weights(onnx.load(str(made["avx2"].path)))
    full = _weights(onnx.load(str(made["vnni"].path)))
    assert max(int(np.abs(w).max()) for w in reduced) <= 64
    assert max(int(np.abs(w).max()) for w in full) == 127


def test_the_contract_says_what_it_is_and_for_which_cpu(made) -> None:  # noqa: ANN001
    for name, recipe in (("vnni", VNNI_RECIPE), ("avx2", NO_VNNI_RECIPE)):
        contract = contract_of(onnx.load(str(made[name].path), load_external_data=False))
        assert contract.precision == "int8-cpu" and Precision.parse(contract.precision) is Precision.INT8_CPU
        assert contract.input_format == "uint8_rgb" and (contract.height, contract.width) == (H, W)
        assert contract.extra["ort_cpu_class"] == recipe.cpu_class
        assert contract.extra["ort_reduce_range"] == ("true" if recipe.reduce_range else "false")
        assert contract.extra["ort_activation_type"] == "uint8"
        assert contract.extra["calibration_method"] == "minmax"
        assert contract.extra["calibration_set_sha256"] == made["calibration"].sha256


@pytest.mark.parametrize("name", ["vnni", "avx2"])
def test_onnx_runtime_labels_follow_fp32(made, name: str) -> None:  # noqa: ANN001
    """Measured on this seeded net and its 8 calibration frames: 8-bit weights 0.9826, 7-bit weights 0.9819 of
    the pixels (random weights: logits are close together, so this is far below a trained net's 99.8 %)."""
    from trt_segmentation.apps.evaluation import label_agreement

    assert label_agreement(made["fp32"], made[name].path, made["calibration"].frames) > 0.95


def test_a_rebuild_hits_the_cache_and_gives_the_same_graph(made, tmp_path: Path) -> None:  # noqa: ANN001
    first = made["vnni"]
    assert first.cache_status == "missing"
    cache = first.path.parent / f"{first.path.stem}.calib.json"
    again = make_variant(made["fp32"], Precision.INT8_CPU, tmp_path / first.path.name, made["calibration"],
                         cache_dir=first.path.parent, cpu_recipe=VNNI_RECIPE)
    assert again.cache_status == "hit", again.notes
    a, b = onnx.load(str(first.path)), onnx.load(str(again.path))
    assert [(i.name, i.raw_data) for i in a.graph.initializer] == [(i.name, i.raw_data) for i in b.graph.initializer]
    ranges = json.loads(cache.read_text())["scales"]
    assert all(isinstance(v, list) and v[0] <= v[1] for v in ranges.values())
    key = json.loads(cache.read_text())["key"]
    assert key["method"] == "minmax" and key["params"]["reduce_range"] is False
    assert "trt_segmentation.precision.int8_cpu" in key["versions"] and "onnxruntime" in key["versions"]


def test_the_other_cpu_class_is_stale_and_misfitting_tensors_are_corrupt(made, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    first = made["vnni"]
    cache = first.path.parent / f"{first.path.stem}.calib.json"
    out = tmp_path / first.path.name
    stale = make_variant(made["fp32"], Precision.INT8_CPU, out, made["calibration"], cache_dir=tmp_path,
                         cpu_recipe=NO_VNNI_RECIPE)
    assert stale.cache_status == "missing"
    data = json.loads(cache.read_text())
    save_scales(tmp_path / f"{out.stem}.calib.json", data["key"], data["scales"])
    with caplog.at_level(logging.WARNING):
        other = make_variant(made["fp32"], Precision.INT8_CPU, out, made["calibration"], cache_dir=tmp_path,
                             cpu_recipe=NO_VNNI_RECIPE)
    assert other.cache_status == "stale" and "(params changed)" in caplog.text
    scales = dict(data["scales"])
    scales["renamed"] = scales.pop(sorted(scales)[0])
    save_scales(tmp_path / f"{out.stem}.calib.json", data["key"], scales)
    misfit = make_variant(made["fp32"], Precision.INT8_CPU, out, made["calibration"], cache_dir=tmp_path,
                          cpu_recipe=VNNI_RECIPE)
    assert misfit.cache_status == "corrupt"
    rewritten = load_scales(tmp_path / f"{out.stem}.calib.json", data["key"], ranges=True)
    assert rewritten.status == "hit" and set(rewritten.scales or {}) == set(data["scales"])


def test_a_range_cache_with_a_reversed_range_is_corrupt(tmp_path: Path) -> None:
    key = {"k": 1}
    path = save_scales(tmp_path / "c.calib.json", key, {"t": [0.0, 2.0]})
    assert load_scales(path, key, ranges=True).status == "hit"
    assert load_scales(path, key).status == "corrupt"  # not a positive scale
    save_scales(path, key, {"t": [3.0, 2.0]})
    assert load_scales(path, key, ranges=True).status == "corrupt"


# ------------------------------------------------------------------------------------------ never to TensorRT


def test_the_engine_builder_refuses_int8_cpu(made, tmp_path: Path) -> None:  # noqa: ANN001
    from trt_segmentation.engine.builder import build_engine, tensorrt_precision
    from trt_segmentation.engine.on_target import build_from_folder

    assert tensorrt_precision(Precision.INT8) is Precision.INT8
    for call in (lambda: build_engine(made["vnni"].path, tmp_path / "x.engine", Precision.INT8_CPU, builder="tensorrt-rtx"),
                 lambda: build_from_folder(tmp_path / f"{made['vnni'].path.stem}.engine", Precision.INT8_CPU)):
        with pytest.raises(ValueError, match="ONNX Runtime CPU variant and is never built into a TensorRT engine"):
            call()
    assert not list(tmp_path.glob("*.engine"))


def test_build_engine_makes_it_on_request_and_reports_tensorrt_as_not_applicable(made, tmp_path: Path) -> None:  # noqa: ANN001
    calib = made["base"] / "street" / "leftImg8bit" / "train"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "build_engine.py"), "--onnx", str(made["fp32"]),
                           "--precision", "int8-cpu", "--calibration", str(calib), "--calibration-count", "8",
                           "--out-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TensorRT-RTX check and engine: not applicable" in proc.stdout
    assert "parse + build OK" not in proc.stdout and "No .engine written" not in proc.stdout
    assert artifact_path(tmp_path, MODEL, H, W, "int8-cpu", ".onnx").is_file()
    assert not list(tmp_path.glob("*.engine")) and not list(tmp_path.glob("*int8-cpu.json"))
    implicit = subprocess.run([sys.executable, str(REPO / "tools" / "build_engine.py"), "--onnx", str(made["fp32"]),
                               "--precision", "int8-cpu", "--implicit", "--calibration", str(calib)],
                              capture_output=True, text=True, timeout=120)
    assert implicit.returncode == 2 and "ONNX Runtime CPU variant" in implicit.stderr


def test_all_is_the_tensorrt_set_without_int8_cpu() -> None:
    from trt_segmentation.artifacts import ENGINE_SET

    assert Precision.INT8_CPU not in ENGINE_SET and all(p.tensorrt for p in ENGINE_SET)


def _params(directory: Path, backend: str, precision: str):  # noqa: ANN202
    from trt_segmentation.node.params import params_from_dict

    return params_from_dict({"backend": backend, "precision": precision, "engine_dir": str(directory),
                             "engine_height": H, "engine_width": W})


def test_the_node_refuses_int8_cpu_with_tensorrt_and_runs_it_with_onnxruntime(made) -> None:  # noqa: ANN001
    from trt_segmentation.node.startup import StartupError, load_backend

    folder = made["vnni"].path.parent
    with pytest.raises(StartupError) as info:
        load_backend(_params(folder, "tensorrt", "int8-cpu"), logging.getLogger("test"))
    text = str(info.value)
    assert "int8-cpu is an ONNX Runtime CPU variant and never runs in TensorRT" in text
    assert "backend onnxruntime" in text and "not found" not in text
    backend, path = load_backend(_params(folder, "onnxruntime", "int8-cpu"), logging.getLogger("test"))
    try:
        assert path == made["vnni"].path and backend.contract.precision == "int8-cpu"
        labels = backend.infer(made["calibration"].frames[0]).labels
        assert labels.shape == (H, W) and labels.dtype == np.uint8
    finally:
        backend.close()
