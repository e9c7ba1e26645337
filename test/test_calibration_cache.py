"""Calibration cache: reused when model, frames and method match; stale or corrupt files are recomputed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from test_precision_variants import ensure_variants
from trt_segmentation.export import read_contract
from trt_segmentation.precision.cache import cache_key, load_scales, save_scales, write_tensorrt_cache
from trt_segmentation.precision.calibration_data import load_calibration_set
from trt_segmentation.precision.int8 import Int8Options, activation_scales, quantize_int8


@pytest.fixture(scope="module")
def setup(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    paths = ensure_variants(tmp_path_factory.getbasetemp() / "precision_shared", random_model_factory)
    contract = read_contract(onnx.load(str(paths["fp32"])))
    calibration = load_calibration_set(paths["calibration"], contract, count=8, batch_size=8)
    return paths, calibration


KEY = {"format": 1, "model_sha256": "a" * 64, "calibration_sha256": "b" * 64, "method": "max", "params": {},
       "versions": {"onnxruntime": "1"}}


def test_cache_round_trip_and_every_kind_of_damage(tmp_path: Path) -> None:
    path = tmp_path / "c.calib.json"
    assert load_scales(path, KEY).status == "missing"
    save_scales(path, KEY, {"t1": 0.5, "t2": 0.25})
    hit = load_scales(path, KEY)
    assert hit.status == "hit" and hit.scales == {"t1": 0.5, "t2": 0.25}
    assert load_scales(path, dict(KEY, calibration_sha256="c" * 64)).status == "stale"
    stale = load_scales(path, dict(KEY, method="entropy"))
    assert stale.status == "stale" and "method" in stale.reason
    data = json.loads(path.read_text())
    data["scales"]["t1"] = 0.75  # edited by hand: the checksum no longer matches
    path.write_text(json.dumps(data))
    assert load_scales(path, KEY).status == "corrupt"
    path.write_text('{"key": ')  # truncated
    assert load_scales(path, KEY).status == "corrupt"
    save_scales(path, KEY, {"t1": float("nan")})
    bad = load_scales(path, KEY)
    assert bad.status == "corrupt" and "positive finite" in bad.reason


def test_tensorrt_table_export_uses_big_endian_float_hex(tmp_path: Path) -> None:
    table = write_tensorrt_cache(tmp_path / "t.calibration", {"/backbone/relu/Relu_output_0": 1.0})
    assert table.read_text().splitlines() == ["TRT-8600-EntropyCalibration2", "/backbone/relu/Relu_output_0: 3f800000"]


def test_rebuild_reuses_scales_and_recalibrates_a_corrupt_or_stale_cache(setup, tmp_path: Path) -> None:  # noqa: ANN001
    paths, calibration = setup
    untouched = (paths["fp32"].read_bytes(), paths["fp32"].stat().st_mtime_ns)
    cache = tmp_path / "int8.calib.json"
    options = Int8Options(method="max")
    first = quantize_int8(paths["fp32"], tmp_path / "a.onnx", calibration, options, cache)
    assert first.cache_status == "missing" and cache.is_file()
    second = quantize_int8(paths["fp32"], tmp_path / "b.onnx", calibration, options, cache)
    assert second.cache_status == "hit"
    a, b = onnx.load(str(tmp_path / "a.onnx")), onnx.load(str(tmp_path / "b.onnx"))
    assert activation_scales(a) == activation_scales(b) == first.scales
    # a cache made from other frames must not be used for these
    other = type(calibration)(np.ascontiguousarray(calibration.frames[::-1]), "reversed", calibration.batch_size)
    assert quantize_int8(paths["fp32"], tmp_path / "c.onnx", other, options, cache).cache_status == "stale"
    # corrupt cache: detected, recalibrated, rewritten
    cache.write_text("garbage")
    third = quantize_int8(paths["fp32"], tmp_path / "d.onnx", calibration, options, cache)
    assert third.cache_status == "corrupt" and third.scales == first.scales
    assert load_scales(cache, cache_key(model_sha256=json.loads(cache.read_text())["key"]["model_sha256"],
                                        calibration_sha256=calibration.sha256, method="max",
                                        params=options.key_params())).status == "hit"
    # the quantizers only ever see private copies: the user's FP32 file (whose hash keys the cache) is untouched
    assert (paths["fp32"].read_bytes(), paths["fp32"].stat().st_mtime_ns) == untouched
