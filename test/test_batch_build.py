"""The build pipeline at a static batch (issue #12, multi-camera engines), with real parts throughout.

One module fixture runs :func:`run_pipeline` from a random-weight SwiftNet checkpoint at 128x256 with ``batch=3``
and every precision: the export, ModelOpt / ONNX Runtime quantizers on 3-frame calibration inputs, and
TensorRT-RTX's parser and builder on each TensorRT variant. Then: every file is named ``_b3_`` and carries batch 3;
TensorRT-RTX built each TensorRT variant with a (3, 128, 256, 3) input; a TensorRT-RTX engine's sidecar records
batch 3 and a sidecar of another batch is refused; the int8-cpu rows equal the batch-1 int8-cpu labels of the
same frames (ONNX Runtime); the calibration inputs of a batch-3 model are (3, H, W, 3).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from trt_segmentation.apps.build import PipelineStep, run_pipeline
from trt_segmentation.artifacts import Precision, artifact_path, batch_from_name
from trt_segmentation.build_request import BuildRequest
from trt_segmentation.engine.calibration_feeder import network_input_spec
from trt_segmentation.engine.metadata import (
    MetadataError,
    build_hint,
    check_compatible,
    read_metadata,
    rebuild_command,
)
from trt_segmentation.export import ExportOptions, contract_of, export_onnx
from trt_segmentation.precision import make_variant
from trt_segmentation.precision.calibration_data import (
    CalibrationDataError,
    load_calibration_set,
    model_runs,
)

H, W, BATCH = 128, 256, 3
MODEL = "swiftnet_ss_rn18"
SEED = 5


@pytest.fixture(scope="module")
def built(tmp_path_factory, random_model_factory) -> dict:  # noqa: ANN001
    import torch

    from trt_segmentation.data.street_scenes import write_street_split

    base = tmp_path_factory.mktemp("batch_build")
    model = random_model_factory("single_scale", "resnet18", SEED)
    checkpoint = base / "random.pt"
    torch.save(model.state_dict(), checkpoint)
    write_street_split(base / "street", "train", 12, seed=0, height=H, width=W, progress=False)
    calibration = base / "street" / "leftImg8bit" / "train"
    log: list[str] = []
    steps = run_pipeline(BuildRequest(precisions=list(Precision), checkpoint=checkpoint, size=(H, W), batch=BATCH,
                                         calibration=str(calibration), calibration_count=12,
                                         out_dir=base / "out", builder="none"), log=log.append)
    return {"base": base, "model": model, "steps": {s.precision: s for s in steps}, "calibration": calibration,
            "log": log}


def test_every_artifact_is_named_and_typed_batch_3(built) -> None:  # noqa: ANN001
    steps: dict[Precision, PipelineStep] = built["steps"]
    assert set(steps) == set(Precision)
    for precision, step in steps.items():
        assert step.onnx == artifact_path(built["base"] / "out", MODEL, H, W, precision, ".onnx", batch=BATCH)
        assert f"_{H}x{W}_b3_{precision.value}.onnx" in step.onnx.name and batch_from_name(step.onnx.name) == BATCH
        model = onnx.load(str(step.onnx), load_external_data=False)
        contract = contract_of(model)
        assert contract.batch == BATCH and contract.precision == precision.value, precision
        assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [BATCH, H, W, 3]
        assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [BATCH, H, W]
        if precision.calibration is not None:
            assert contract.extra["calibration_frames"] == "12", precision  # 4 whole 3-frame inputs


def test_tensorrt_rtx_parses_and_builds_each_tensorrt_precision_at_batch_3(built) -> None:  # noqa: ANN001
    for precision, step in built["steps"].items():
        if not precision.tensorrt:
            assert "never given to TensorRT" in step.check
            continue
        assert "parsed" in step.check and "built" in step.check, (precision, step.check)
        assert f"({BATCH}, {H}, {W}, 3)" in step.check and f"({BATCH}, {H}, {W})" in step.check, step.check


def test_the_sidecar_records_the_batch_and_another_batch_is_a_mismatch(built, tmp_path: Path) -> None:  # noqa: ANN001
    from trt_segmentation.engine.builder import build_engine

    fp16 = built["steps"][Precision.FP16].onnx
    engine = artifact_path(tmp_path, MODEL, H, W, "fp16", ".engine", batch=BATCH)
    meta = build_engine(fp16, engine, Precision.FP16, builder="tensorrt-rtx")
    on_disk = read_metadata(engine)
    assert meta.batch == on_disk.batch == on_disk.contract["batch"] == BATCH
    assert on_disk.inputs[0]["shape"] == [BATCH, H, W, 3]
    assert check_compatible(on_disk, precision=Precision.FP16, batch=BATCH) == []
    reasons = check_compatible(on_disk, precision=Precision.FP16, batch=1)
    assert reasons == ["engine was built for batch 3 (frames per run), batch 1 was asked for"]
    assert "--batch 3" in rebuild_command(on_disk)
    # the batch-3 engine under the batch-1 name: refused where the sidecar is read
    renamed = artifact_path(tmp_path, MODEL, H, W, "fp16", ".engine")
    shutil.copyfile(engine, renamed)
    shutil.copyfile(engine.with_suffix(".json"), renamed.with_suffix(".json"))
    with pytest.raises(MetadataError, match="built for batch 3, its file name says batch 1"):
        read_metadata(renamed)
    # an engine name that does not match its ONNX's batch is refused before building
    with pytest.raises(ValueError, match="batch 3"):
        build_engine(fp16, tmp_path / f"{MODEL}_{H}x{W}_fp16.engine", Precision.FP16, builder="tensorrt-rtx")


def test_an_onnx_of_another_batch_than_asked_is_refused(built) -> None:  # noqa: ANN001
    fp32 = built["steps"][Precision.FP32].onnx
    with pytest.raises(ValueError, match=r"exported with batch 3, not 1.*--batch 3"):
        run_pipeline(BuildRequest(precisions=[Precision.FP32], onnx=fp32, out_dir=built["base"] / "other",
                                     builder="none"), log=lambda _: None)


def test_int8_cpu_batch_rows_equal_batch_1_labels_of_the_same_frames(built, tmp_path: Path) -> None:  # noqa: ANN001
    """Same frames, same ranges: the batch-3 int8-cpu rows are the batch-1 int8-cpu labels, pixel for pixel.

    The FP32 calibration pass itself runs at the graph's batch, and ONNX Runtime's float kernels at batch 3 differ
    from batch 1 in the last bits (measured: 3 of 61 ranges, relative 2e-7), which can move a pixel on a class
    border; so the ranges are compared to float tolerance, and equality is checked with the batch-1 ranges given
    to the batch-3 quantizer through its calibration cache (the path a cache hit takes)."""
    from trt_segmentation.precision.cache import save_scales

    out = built["base"] / "out"
    fp32_b1 = artifact_path(tmp_path, MODEL, H, W, "fp32", ".onnx")
    contract_b1 = export_onnx(built["model"], fp32_b1, ExportOptions(H, W))
    contract_b3 = contract_of(onnx.load(str(built["steps"][Precision.FP32].onnx)))
    # the frames the pipeline calibrated the batch-3 variant on (12: four 3-frame inputs), for batch 1 too
    calibration = load_calibration_set(built["calibration"], contract_b3, count=12)
    assert len(calibration) == 12 and calibration.batch_size == BATCH
    cpu_b1 = make_variant(fp32_b1, Precision.INT8_CPU, artifact_path(tmp_path, MODEL, H, W, "int8-cpu", ".onnx"), calibration)
    assert cpu_b1.contract.batch == 1 and contract_b1.batch == 1

    cache_b3 = json.loads(artifact_path(out, MODEL, H, W, "int8-cpu", ".calib.json", batch=BATCH).read_text())
    cache_b1 = json.loads(artifact_path(tmp_path, MODEL, H, W, "int8-cpu", ".calib.json").read_text())
    assert set(cache_b3["scales"]) == set(cache_b1["scales"])
    for name, (low, high) in cache_b3["scales"].items():
        np.testing.assert_allclose([low, high], cache_b1["scales"][name], rtol=1e-5, err_msg=name)
    same_ranges = tmp_path / "same_ranges"
    save_scales(same_ranges / f"{artifact_path(out, MODEL, H, W, 'int8-cpu', '', batch=BATCH).name}.calib.json",
                cache_b3["key"], cache_b1["scales"])
    cpu_b3 = make_variant(built["steps"][Precision.FP32].onnx, Precision.INT8_CPU,
                          artifact_path(same_ranges, MODEL, H, W, "int8-cpu", ".onnx", batch=BATCH), calibration)
    assert cpu_b3.cache_status == "hit" and cpu_b3.contract.batch == BATCH

    options = ort.SessionOptions()
    options.log_severity_level = 3

    def session(path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    one, three, own = session(cpu_b1.path), session(cpu_b3.path), session(built["steps"][Precision.INT8_CPU].onnx)
    frames = np.random.default_rng(11).integers(0, 256, (BATCH, H, W, 3), dtype=np.uint8)
    frames[1] = calibration.frames[0]  # a street frame among the noise
    (rows,) = three.run(None, {"image": frames})
    (own_rows,) = own.run(None, {"image": frames})
    assert rows.shape == (BATCH, H, W) and rows.dtype == np.uint8
    for i in range(BATCH):
        (labels,) = one.run(None, {"image": frames[i : i + 1]})
        np.testing.assert_array_equal(rows[i], labels[0])
        assert (own_rows[i] == labels[0]).mean() >= 0.999  # its own ranges: a few border pixels at most
    assert len(np.unique(rows)) > 1  # the labels say something


def test_calibration_inputs_of_a_batch_3_model_are_3_frames(built) -> None:  # noqa: ANN001
    contract = contract_of(onnx.load(str(built["steps"][Precision.FP32].onnx)))
    assert network_input_spec(contract) == ((BATCH, H, W, 3), np.dtype(np.uint8))
    calibration = load_calibration_set(built["calibration"], contract, count=8, batch_size=8)
    assert len(calibration) == 6 and calibration.batch_size == BATCH  # whole 3-frame inputs of the graph
    runs = list(model_runs(calibration.frames, BATCH))
    assert [r.shape for r in runs] == [(BATCH, H, W, 3)] * 2
    np.testing.assert_array_equal(np.concatenate(runs), calibration.frames)
    assert [r.shape for r in model_runs(calibration.frames[:5], BATCH)] == [(BATCH, H, W, 3)]  # leftover dropped
    with pytest.raises(CalibrationDataError, match="fewer than one input of the batch-3 model"):
        list(model_runs(calibration.frames[:2], BATCH))


def test_the_build_hint_names_the_batch(built) -> None:  # noqa: ANN001
    out = built["base"] / "out"
    # the int8 variant is there, the engine is what is missing: the on-target build from this folder (issue 18)
    hint = build_hint(MODEL, (H, W), Precision.INT8, out, batch=BATCH)
    assert f"tools/build_on_target.py --engine-dir {out} " in hint and "--batch 3" in hint
    # no batch-1 variants here: the build machine's command from the batch-1 FP32 name, without --batch
    single = build_hint(MODEL, (H, W), Precision.INT8, out)
    assert "tools/build_engine.py" in single and "--batch" not in single
