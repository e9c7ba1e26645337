"""Calibration cache: reused only for the same model, calibration pixels, quantizer versions, method and parameters;
stale, corrupt or misfitting files are reported and recomputed (docs/precision.md, "Calibration cache")."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_segmentation.export import ExportOptions, contract_of, export_onnx
from trt_segmentation.hashing import sha256_file
from trt_segmentation.precision.cache import (
    CacheLookup,
    cache_key,
    fit_to_graph,
    frames_sha256,
    load_scales,
    save_scales,
)
from trt_segmentation.precision.calibration_data import CalibrationSet, load_calibration_set
from trt_segmentation.precision.int8 import METHOD_CODE, METHODS, Int8Options, activation_scales, quantize_int8

H, W = 128, 256  # small: each calibration here is a ModelOpt run in a fresh interpreter
OPTIONS = Int8Options(method="max")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    """A seeded random-weight FP32 export, a second one with one weight changed, and 8 calibration frames."""
    from trt_segmentation.data.street_scenes import write_street_split

    base = tmp_path_factory.mktemp("calibration_cache")
    write_street_split(base / "street", "train", 8, seed=0, height=H, width=W, progress=False)
    fp32 = base / "fp32.onnx"
    export_onnx(random_model_factory("single_scale", "resnet18", 0), fp32, ExportOptions(H, W))
    model = onnx.load(str(fp32))
    weight = next(i for i in model.graph.initializer if numpy_helper.to_array(i).ndim == 4)
    changed = numpy_helper.to_array(weight).copy()
    changed.flat[0] += 0.5
    weight.CopyFrom(numpy_helper.from_array(changed, weight.name))
    other = base / "fp32_other.onnx"
    onnx.save(model, str(other))
    calibration = load_calibration_set(base / "street" / "leftImg8bit" / "train", contract_of(onnx.load(str(fp32))),
                                       count=8, batch_size=8)
    return fp32, other, calibration


def _key(**changes):  # noqa: ANN003, ANN202
    args = {"model_sha256": "a" * 64, "calibration_sha256": "b" * 64, "method": "max", "params": OPTIONS.key_params()}
    args.update(changes)
    return cache_key(**args, quantizer_modules=METHOD_CODE[str(args["method"])])


def test_cache_round_trip_and_every_kind_of_damage(tmp_path: Path) -> None:
    path = tmp_path / "c.calib.json"
    key = _key()
    assert load_scales(path, key).status == "missing"
    save_scales(path, key, {"t1": 0.5, "t2": 0.25})
    hit = load_scales(path, key)
    assert hit.status == "hit" and hit.scales == {"t1": 0.5, "t2": 0.25}
    data = json.loads(path.read_text())
    data["scales"]["t1"] = 0.75  # edited by hand: the checksum no longer matches
    path.write_text(json.dumps(data))
    edited = load_scales(path, key)
    assert edited.status == "corrupt" and "checksum mismatch" in edited.reason and edited.scales is None
    path.write_text('{"key": ')  # truncated
    assert load_scales(path, key).status == "corrupt"
    save_scales(path, key, {"t1": float("nan")})
    bad = load_scales(path, key)
    assert bad.status == "corrupt" and "positive finite" in bad.reason
    save_scales(path, key, {"t1": -0.5})
    assert load_scales(path, key).status == "corrupt"


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("model_sha256", {"model_sha256": "c" * 64}),
        ("calibration_sha256", {"calibration_sha256": "d" * 64}),
        ("method", {"method": "entropy", "params": Int8Options(method="entropy").key_params()}),
        ("params", {"method": "max", "params": Int8Options(method="max", nodes_to_exclude=["/x/Conv"]).key_params()}),
        ("params", {"method": "max", "params": Int8Options(method="max", nodes_to_quantize=["/x/.*"]).key_params()}),
    ],
)
def test_each_key_field_makes_the_cache_stale_and_is_named(tmp_path: Path, field: str, changes: dict) -> None:
    path = save_scales(tmp_path / "c.calib.json", _key(), {"t": 0.5})
    lookup = load_scales(path, _key(**changes))
    assert (lookup.status, lookup.scales) == ("stale", None)
    assert f"({field} changed)" in lookup.reason


def test_the_percentile_is_part_of_the_key(tmp_path: Path) -> None:
    def key(percentile: float):  # noqa: ANN202
        return _key(method="percentile", params=Int8Options(method="percentile", percentile=percentile).key_params())

    path = save_scales(tmp_path / "c.calib.json", key(99.99), {"t": 0.5})
    assert load_scales(path, key(99.99)).status == "hit"
    assert load_scales(path, key(99.9)).status == "stale"


def test_the_key_carries_the_installed_quantizer_versions_and_the_quantizer_source() -> None:
    versions = _key()["versions"]
    for package in ("nvidia-modelopt", "onnxruntime", "onnx", "onnx-graphsurgeon", "numpy"):
        assert versions[package] == version(package)
    spec = find_spec("trt_segmentation.precision.int8")
    assert spec is not None and spec.origin is not None
    assert versions["trt_segmentation.precision.int8"] == sha256_file(spec.origin)


@pytest.mark.parametrize("package", ["nvidia-modelopt", "onnxruntime", "onnx", "onnx-graphsurgeon", "numpy",
                                     "trt_segmentation.precision.int8"])
def test_a_cache_made_by_another_quantizer_version_is_stale(tmp_path: Path, package: str) -> None:
    old = _key()
    old["versions"] = dict(old["versions"], **{package: "0.0.1"})  # what an older install would have written
    path = save_scales(tmp_path / "c.calib.json", old, {"t": 0.5})
    lookup = load_scales(path, _key())
    assert lookup.status == "stale" and "(versions changed)" in lookup.reason


def _module_file(module: str) -> Path:
    spec = find_spec(module)
    assert spec is not None and spec.origin is not None
    return Path(spec.origin)


def test_every_method_keys_the_sha256_of_each_module_that_computes_its_scales() -> None:
    for method in METHODS:
        versions = _key(method=method)["versions"]
        for module in METHOD_CODE[method]:
            assert versions[module] == sha256_file(_module_file(module)), (method, module)
    kl2048 = "trt_segmentation.precision.kl2048"
    assert kl2048 in METHOD_CODE["kl2048"] and kl2048 in _key(method="kl2048")["versions"]
    assert kl2048 not in _key(method="entropy")["versions"]  # entropy scales do not depend on the 2048-bin code
    with pytest.raises(ValueError, match="no source file"):
        cache_key(model_sha256="a", calibration_sha256="b", method="max", quantizer_modules=["no_such.module"])
    with pytest.raises(ValueError, match="needs the modules"):
        cache_key(model_sha256="a", calibration_sha256="b", method="max", quantizer_modules=[])


_KEY_OF = """import json, sys
from trt_segmentation.precision.cache import cache_key
from trt_segmentation.precision.int8 import METHOD_CODE
print(json.dumps({m: cache_key(model_sha256="a", calibration_sha256="b", method=m, quantizer_modules=METHOD_CODE[m])
                  for m in sys.argv[1:]}))
"""


def _keys_from(root: Path, *methods: str) -> dict:
    """The cache keys of ``methods`` computed by the package copy under ``root`` (a fresh interpreter)."""
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run([sys.executable, "-c", _KEY_OF, *methods], env=env, cwd=root, capture_output=True,
                          text=True, check=True)  # cwd: -c puts it first on sys.path
    return json.loads(done.stdout)


@pytest.mark.parametrize(("edited", "entropy_stale"),
                         [("kl2048.py", False), ("int8.py", True), ("calibration_data.py", True)])
def test_editing_a_method_s_code_makes_its_cached_scales_stale(tmp_path: Path, edited: str,
                                                               entropy_stale: bool) -> None:
    """A real copy of the package, one real source file edited: the kl2048 cache written before goes stale (its
    2048-bin KL code, or the code around it, changed); the entropy cache only when its own code changed."""
    package = _module_file("trt_segmentation").parent
    shutil.copytree(package, tmp_path / "trt_segmentation", ignore=shutil.ignore_patterns("__pycache__", "assets"))
    before = _keys_from(tmp_path, "kl2048", "entropy")
    assert before == _keys_from(package.parent, "kl2048", "entropy")  # the copy hashes like the original
    caches = {m: save_scales(tmp_path / f"{m}.calib.json", key, {"t": 0.5}) for m, key in before.items()}
    assert all(load_scales(caches[m], key).status == "hit" for m, key in before.items())
    source = tmp_path / "trt_segmentation" / "precision" / edited
    source.write_text(source.read_text() + "\n# an edit that could change the scales\n")
    after = _keys_from(tmp_path, "kl2048", "entropy")
    kl = load_scales(caches["kl2048"], after["kl2048"])
    assert (kl.status, kl.scales) == ("stale", None) and "(versions changed)" in kl.reason
    assert load_scales(caches["entropy"], after["entropy"]).status == ("stale" if entropy_stale else "hit")


def test_the_calibration_key_is_the_pixels_not_their_description() -> None:
    frames = np.zeros((2, 4, 6, 3), np.uint8)
    nudged = frames.copy()
    nudged[1, 3, 5, 2] = 1
    assert frames_sha256(frames) != frames_sha256(nudged)
    assert frames_sha256(frames) != frames_sha256(frames.reshape(2, 6, 4, 3))  # same bytes, other shape
    assert frames_sha256(frames[..., ::-1]) == frames_sha256(np.ascontiguousarray(frames[..., ::-1]))
    # the hash the callers pass (CalibrationSet.sha256) is this one, whatever the set is called
    assert CalibrationSet(nudged, "one").sha256 == CalibrationSet(nudged, "two").sha256 == frames_sha256(nudged)
    assert cache_key(model_sha256="a", calibration_frames=nudged, method="max",
                     quantizer_modules=METHOD_CODE["max"])["calibration_sha256"] == frames_sha256(nudged)
    with pytest.raises(ValueError, match="not the hash"):
        cache_key(model_sha256="a", calibration_frames=nudged, calibration_sha256=frames_sha256(frames), method="max",
                  quantizer_modules=METHOD_CODE["max"])


def test_fit_to_graph_turns_a_hit_with_other_tensors_into_corrupt() -> None:
    hit = CacheLookup({"a": 0.5, "b": 0.25}, "hit", "hit")
    assert fit_to_graph(hit, ["b", "a"], "c.json") is hit
    missing = fit_to_graph(hit, ["a", "b", "c"], "c.json")
    assert (missing.status, missing.scales) == ("corrupt", None) and "1 missing (e.g. 'c')" in missing.reason
    unknown = fit_to_graph(hit, ["a"], "c.json")
    assert unknown.status == "corrupt" and "1 unknown (e.g. 'b')" in unknown.reason
    stale = CacheLookup(None, "stale", "stale")
    assert fit_to_graph(stale, ["a"], "c.json") is stale


# ---------------------------------------------------------------------------------- through quantize_int8 itself


@pytest.fixture(scope="module")
def calibrated(setup, tmp_path_factory):  # noqa: ANN001, ANN201
    """The first INT8 build with a cache (calibrates) and the cache file it wrote."""
    fp32, _, calibration = setup
    work = tmp_path_factory.mktemp("calibrated")
    cache = work / "int8.calib.json"
    first = quantize_int8(fp32, work / "first.onnx", calibration, OPTIONS, cache)
    return first, cache, json.loads(cache.read_text())


def _fresh_cache(calibrated, tmp_path: Path) -> Path:  # noqa: ANN001
    _, cache, body = calibrated
    path = tmp_path / cache.name
    path.write_text(json.dumps(body))
    return path


def test_a_rebuild_reuses_the_scales_and_leaves_the_fp32_file_alone(setup, calibrated, tmp_path: Path) -> None:  # noqa: ANN001
    fp32, _, calibration = setup
    first, _, body = calibrated
    assert first.cache_status == "missing" and len(first.scales) > 30
    untouched = (fp32.read_bytes(), fp32.stat().st_mtime_ns)
    cache = _fresh_cache(calibrated, tmp_path)
    second = quantize_int8(fp32, tmp_path / "b.onnx", calibration, OPTIONS, cache)
    assert second.cache_status == "hit"
    assert activation_scales(onnx.load(str(tmp_path / "b.onnx"))) == first.scales
    # the key the real path wrote is cache.py's key of this model, these pixels, this method and its parameters
    assert body["key"] == cache_key(model_sha256=sha256_file(fp32), calibration_frames=calibration.frames,
                                    method="max", params=OPTIONS.key_params(), quantizer_modules=METHOD_CODE["max"])
    # the quantizers only ever see private copies: the user's FP32 file (whose hash keys the cache) is untouched
    assert (fp32.read_bytes(), fp32.stat().st_mtime_ns) == untouched


def test_the_same_pixels_under_another_description_hit(setup, calibrated, tmp_path: Path) -> None:  # noqa: ANN001
    fp32, _, calibration = setup
    renamed = CalibrationSet(calibration.frames.copy(), "folder:/somewhere/else", calibration.batch_size)
    result = quantize_int8(fp32, tmp_path / "r.onnx", renamed, OPTIONS, _fresh_cache(calibrated, tmp_path))
    assert result.cache_status == "hit"


def _stale_run(fp32: Path, calibration: CalibrationSet, cache: Path, tmp_path: Path, caplog) -> tuple:  # noqa: ANN001
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trt_segmentation.precision.cache"):
        result = quantize_int8(fp32, tmp_path / "s.onnx", calibration, OPTIONS, cache)
    return result, " ".join(r.getMessage() for r in caplog.records)


def test_one_changed_calibration_pixel_makes_it_stale(setup, calibrated, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    fp32, _, calibration = setup
    frames = calibration.frames.copy()
    frames[-1, -1, -1, -1] ^= 1  # same description, same frame count, one pixel one step off
    nudged = CalibrationSet(frames, calibration.description, calibration.batch_size)
    cache = _fresh_cache(calibrated, tmp_path)
    result, log = _stale_run(fp32, nudged, cache, tmp_path, caplog)
    assert result.cache_status == "stale" and "(calibration_sha256 changed)" in log
    assert json.loads(cache.read_text())["key"]["calibration_sha256"] == frames_sha256(frames)  # rewritten


def test_another_model_makes_it_stale(setup, calibrated, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    _, other, calibration = setup
    cache = _fresh_cache(calibrated, tmp_path)
    result, log = _stale_run(other, calibration, cache, tmp_path, caplog)
    assert result.cache_status == "stale" and "(model_sha256 changed)" in log
    assert json.loads(cache.read_text())["key"]["model_sha256"] == sha256_file(other)


def test_a_cache_from_an_older_modelopt_is_stale(setup, calibrated, tmp_path: Path, caplog) -> None:  # noqa: ANN001
    fp32, _, calibration = setup
    first, cache, body = calibrated
    key = dict(body["key"], versions=dict(body["key"]["versions"], **{"nvidia-modelopt": "0.11.0"}))
    old = save_scales(tmp_path / cache.name, key, first.scales)  # intact file, written by another install
    result, log = _stale_run(fp32, calibration, old, tmp_path, caplog)
    assert result.cache_status == "stale" and "(versions changed)" in log
    assert json.loads(old.read_text())["key"]["versions"]["nvidia-modelopt"] == version("nvidia-modelopt")


def test_a_garbage_cache_is_corrupt_recalibrated_and_rewritten(setup, calibrated, tmp_path: Path) -> None:  # noqa: ANN001
    fp32, _, calibration = setup
    first, cache, body = calibrated
    garbage = tmp_path / cache.name
    garbage.write_text("garbage")
    result = quantize_int8(fp32, tmp_path / "g.onnx", calibration, OPTIONS, garbage)
    assert result.cache_status == "corrupt" and result.scales == first.scales
    assert json.loads(garbage.read_text())["key"] == body["key"]


@pytest.fixture(scope="module")
def misfit(setup, calibrated, tmp_path_factory):  # noqa: ANN001, ANN201
    """An intact cache with the right key whose tensors are not the graph's (one missing, one unknown)."""
    fp32, _, calibration = setup
    first, cache, body = calibrated
    work = tmp_path_factory.mktemp("misfit")
    scales = dict(first.scales)
    scales.pop(sorted(scales)[0])
    scales["/not/in/the/graph_output_0"] = 0.5
    path = save_scales(work / cache.name, body["key"], scales)
    return quantize_int8(fp32, work / "m.onnx", calibration, OPTIONS, path), path, first


def test_a_cache_whose_tensors_do_not_fit_is_not_used(misfit) -> None:  # noqa: ANN001
    result, path, first = misfit
    assert result.scales == first.scales
    assert activation_scales(onnx.load(str(result.path))) == first.scales
    assert json.loads(path.read_text())["scales"] == {k: float(v) for k, v in sorted(first.scales.items())}


def test_a_cache_whose_tensors_do_not_fit_is_reported_corrupt(misfit) -> None:  # noqa: ANN001
    assert misfit[0].cache_status == "corrupt"
