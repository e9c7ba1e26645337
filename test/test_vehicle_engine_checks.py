"""The vehicle's engines stay correct (issue 32, items 1 and 4-7), on the vehicle's Python (the 3.8 leg: no torch,
no TensorRT), with the recording TensorRT stand-in (test/trt_standin) where TensorRT 8.5-10 would run.

1. A re-calibrated variant makes the implicit engine that took its scales stale: build_on_target rebuilds it,
   check_on_target and the node refuse it, each naming the variant; a sidecar from before the hash says so.
4. --dla-core: build_on_target without --precision builds fp16/int8/mixed only; every INT8 variant builds on a DLA
   core before TensorRT 10 from its table; a DLA INT8 build sets FP16 too; an engine name without the DLA suffix is
   refused by the builder.
5. A calibration table TensorRT does not take: the build error carries the calibrator's reason.
6. The table header is TensorRT's NV_TENSORRT_VERSION: 8502 for 8.5.2, 100300 for 10.3.0 (the stand-in of 10.3
   takes only that one).
7. The on-target check counts the engine's INT8 layers (engine inspector) and fails an INT8 row without any; an
   implicit row is also compared with the labels of the variant whose scales it took.
8. Builds started on the vehicle set a builder workspace limit (1 GiB on a Jetson unless asked otherwise), and every
   sidecar records the limit, the engine's size and one execution context's device memory, which the check prints.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vehicle_standin import H, W, onnx_path, recalibrate, run_standin, variant_folder  # noqa: E402

BUILD = "tools/build_on_target.py"
CHECK = "tools/check_on_target.py"


def _record(engine: Path) -> dict:
    """What the stand-in wrote as the engine: its builder flags and each layer's precision."""
    return json.loads(engine.read_bytes().decode())


# ------------------------------------------------------------------------------------------- 1: stale scales
def test_a_recalibrated_variant_is_rebuilt_by_build_on_target_and_refused_by_check_and_node(tmp_path: Path) -> None:
    from trt_segmentation.node.params import params_from_dict
    from trt_segmentation.node.startup import StartupError, load_backend

    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"))
    mixed, engine = onnx_path(folder, "mixed"), onnx_path(folder, "mixed", ".engine")
    args = [BUILD, "--engine-dir", str(folder), "--precision", "mixed"]
    first = run_standin(args)
    assert first.returncode == 0 and "implicit build" in first.stdout, first.stdout + first.stderr
    sidecar = json.loads(engine.with_suffix(".json").read_text())
    assert sidecar["build_options"]["scales_from"] == mixed.name and len(sidecar["scales_sha256"]) == 64
    assert "fits this machine; kept" in run_standin(args).stdout  # unchanged: kept
    table_before = (folder / f"{engine.stem}.qdq.calibration").read_text()

    recalibrate(mixed)  # one Q scale of _mixed.onnx doubled on the build machine, the folder copied again
    check = run_standin([CHECK, "--engine-dir", str(folder), "--size", f"{H}x{W}", "--precision", "mixed",
                         "--image-count", "2"])
    assert check.returncode == 1, check.stdout + check.stderr
    assert "does not fit this machine" in check.stdout and f"{mixed.name}, the variant whose Q/DQ scales" in check.stdout
    params = params_from_dict({"backend": "tensorrt", "precision": "mixed", "engine_dir": str(folder),
                               "engine_height": H, "engine_width": W, "build_engine_if_missing": False})
    with pytest.raises(StartupError) as refused:  # the node's own start-up path
        load_backend(params, logging.getLogger("test"))
    assert f"{mixed.name}, the variant whose Q/DQ scales it was calibrated with, changed" in str(refused.value)
    assert "tools/build_on_target.py --engine-dir" in str(refused.value)

    again = run_standin(args)
    assert again.returncode == 0 and f"rebuilding {engine}" in again.stdout and mixed.name in again.stdout, again.stdout
    assert (folder / f"{engine.stem}.qdq.calibration").read_text() != table_before  # the new scales went in
    assert "fits this machine; kept" in run_standin(args).stdout

    # a sidecar written before the variant's hash was recorded: it says so, and the engine is rebuilt
    old = json.loads(engine.with_suffix(".json").read_text())
    del old["scales_sha256"]
    engine.with_suffix(".json").write_text(json.dumps(old))
    with pytest.raises(StartupError, match="does not record which version of .*_mixed.onnx.*must be rebuilt"):
        load_backend(params, logging.getLogger("test"))
    rebuilt = run_standin(args)
    assert rebuilt.returncode == 0 and "must be rebuilt" in rebuilt.stdout, rebuilt.stdout


# ------------------------------------------------------------------------------------------------- 4: DLA
def test_dla_builds_take_fp16_and_every_int8_variant_and_dla_int8_sets_fp16(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16", "int8", "int8-max", "mixed"))
    proc = run_standin([BUILD, "--engine-dir", str(folder), "--dla-core", "0"], dla_cores=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    built = sorted(p.name for p in folder.glob("*.engine"))
    assert built == sorted(f"swiftnet_ss_rn18_{H}x{W}_{p}.dla0.engine" for p in ("fp16", "int8", "int8-max", "mixed"))
    for precision in ("int8", "int8-max"):  # TensorRT 8.5's DLA takes no Q/DQ: implicit, from the variant's table
        engine = onnx_path(folder, precision, ".dla0.engine")
        meta = json.loads(engine.with_suffix(".json").read_text())
        assert meta["typing"] == "implicit" and meta["build_options"]["scales_from"] == onnx_path(folder, precision).name
        record = _record(engine)
        assert record["dla_core"] == 0 and {"FP16", "INT8", "GPU_FALLBACK"} <= set(record["flags"])
        fallback = [layer["name"] for layer in record["layers"] if layer["device"] == "GPU"
                    and layer["precision"] == "FLOAT"]
        assert fallback == ["Cast_0"], fallback  # only the uint8 input cast leaves the DLA, not the unscaled layers
    refused = run_standin([BUILD, "--engine-dir", str(folder), "--dla-core", "0", "--precision", "fp32"], dla_cores=2)
    assert refused.returncode == 2 and "DLA runs FP16 and INT8 only" in refused.stderr


def test_the_builder_refuses_an_engine_name_without_its_dla_suffix(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16"))
    code = ("import sys\nfrom trt_segmentation.artifacts import Precision\n"
            "from trt_segmentation.engine.builder import build_engine\n"
            "build_engine(sys.argv[1], sys.argv[2], Precision.FP16, dla_core=0)\n")
    proc = run_standin(["-c", code, str(onnx_path(folder, "fp16")), str(onnx_path(folder, "fp16", ".engine"))],
                       dla_cores=1)
    assert proc.returncode == 1 and "says DLA core -1" in proc.stderr
    assert f"build it as {onnx_path(folder, 'fp16', '.dla0.engine')}" in proc.stderr


# ------------------------------------------------------------------------------- 5: the calibrator's message
def test_a_table_tensorrt_does_not_take_fails_the_build_with_the_calibrators_reason(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"))
    proc = run_standin([BUILD, "--engine-dir", str(folder), "--precision", "mixed"], reject_table=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "TensorRT did not accept the calibration table" in proc.stderr, proc.stderr
    assert "failed to build" in proc.stderr  # TensorRT's own line follows the reason
    assert not onnx_path(folder, "mixed", ".engine").exists()


# ------------------------------------------------------------------------------------- 6: the table header
def test_the_table_header_is_tensorrts_version_number() -> None:
    from trt_segmentation.engine.calibration_table import header, version_code

    assert header("8.5.2") == "TRT-8502-EntropyCalibration2" and version_code("8.6.1") == 8601
    assert header("10.3.0") == "TRT-100300-EntropyCalibration2" and version_code("10.13.2") == 101302


def test_tensorrt_10_takes_the_table_the_builder_writes(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"))
    code = ("import sys\nfrom trt_segmentation.artifacts import Precision\n"
            "from trt_segmentation.engine.builder import build_engine\n"
            "build_engine(sys.argv[1], sys.argv[2], Precision.MIXED, implicit=True, scales_from=sys.argv[3])\n")
    engine = onnx_path(folder, "mixed", ".engine")
    proc = run_standin(["-c", code, str(onnx_path(folder, "fp32")), str(engine), str(onnx_path(folder, "mixed"))],
                       version="10.3.0")
    assert proc.returncode == 0, proc.stderr
    assert (folder / f"{engine.stem}.qdq.calibration").read_text().startswith("TRT-100300-EntropyCalibration2\n")
    assert _record(engine)["calibration_table_entries"] == 5


# ------------------------------------------------------------------------------------------ 7: INT8 applied
def test_the_engine_inspector_counts_int8_layers(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16", "int8", "mixed"))
    assert run_standin([BUILD, "--engine-dir", str(folder)]).returncode == 0
    code = ("import sys, tensorrt\nfrom trt_segmentation.engine.tensorrt_adapter import int8_layer_count, "
            "real_tensorrt\nruntime = tensorrt.Runtime(tensorrt.Logger())\n"
            "for path in sys.argv[1:]:\n"
            "    engine = runtime.deserialize_cuda_engine(open(path, 'rb').read())\n"
            "    print(int8_layer_count(engine, real_tensorrt('Runtime')))\n")
    engines = [str(onnx_path(folder, p, ".engine")) for p in ("fp16", "int8", "mixed")]
    proc = run_standin(["-c", code, *engines])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "5", "3"]  # mixed: the three encoder convolutions


def _ort_labels(onnx: Path, images: list) -> list:
    from trt_segmentation.apps.target_check import _ort_labels as labels

    return labels(onnx, images)[0]


def test_an_int8_row_without_int8_layers_or_unlike_its_variant_fails(tmp_path: Path) -> None:
    from trt_segmentation.apps.target_check import CheckRow, format_table, judge, sample_images
    from trt_segmentation.artifacts import Precision

    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"))
    images = sample_images(3, H, W, seed=1)
    fp32, mixed = _ort_labels(onnx_path(folder, "fp32"), images), _ort_labels(onnx_path(folder, "mixed"), images)
    # a TensorRT that ignored the table runs the implicit mixed engine without INT8: labels as FP32's (ONNX Runtime
    # on the FP32 ONNX stands in for that run), and its inspector reports no INT8 layer
    ignored = CheckRow(Precision.MIXED, "MISSING", "implicit", int8_layers=0)
    judge(ignored, fp32, fp32, 0.98, variant=(onnx_path(folder, "mixed").name, mixed))
    assert ignored.status == "FAIL" and any("no INT8 layer" in n for n in ignored.notes)
    assert ignored.agreement == 1.0 and ignored.agreement_variant is not None
    applied = CheckRow(Precision.MIXED, "MISSING", "implicit", int8_layers=3)
    judge(applied, mixed, fp32, 0.0, variant=(onnx_path(folder, "mixed").name, mixed))
    assert applied.status == "PASS" and applied.agreement_variant == 1.0
    unlike = CheckRow(Precision.MIXED, "MISSING", "implicit", int8_layers=3)
    zeros = [np.zeros_like(x) for x in mixed]  # agrees with ONNX Runtime on the FP32 ONNX, not with its variant
    judge(unlike, zeros, zeros, 0.98, variant=("v.onnx", mixed))
    assert unlike.status == "FAIL" and any("agreement with v.onnx" in n for n in unlike.notes)
    table = format_table([ignored, applied])
    assert "INT8 layers" in table.splitlines()[0] and " | 0 " in table.splitlines()[2]
    fp16 = CheckRow(Precision.FP16, "MISSING", int8_layers=0)
    assert judge(fp16, fp32, fp32, 0.99).status == "PASS"  # no INT8 asked for: none expected


def test_no_int8_layer_fails_a_gpu_row_and_is_a_note_on_a_dla_row(tmp_path: Path) -> None:
    """The inspector's DLA output is not known yet (probably one foreign-node layer without INT8 formats): a DLA
    int8/mixed row with 0 INT8 layers is noted, not failed; the same count on the GPU FAILs."""
    from trt_segmentation.apps.target_check import CheckRow, judge, sample_images
    from trt_segmentation.artifacts import Precision

    folder = variant_folder(tmp_path / "engines", ("fp32", "int8"))
    images = sample_images(3, H, W, seed=1)
    int8 = _ort_labels(onnx_path(folder, "int8"), images)
    for precision in (Precision.INT8, Precision.MIXED):
        dla = judge(CheckRow(precision, "MISSING", "dla0", int8_layers=0), int8, int8, 0.98)
        assert dla.status == "PASS" and any("not judged on DLA" in n for n in dla.notes), dla.notes
        gpu = judge(CheckRow(precision, "MISSING", "implicit", int8_layers=0), int8, int8, 0.98)
        assert gpu.status == "FAIL" and any("no INT8 layer" in n for n in gpu.notes), gpu.notes
    assert judge(CheckRow(Precision.INT8, "MISSING", "dla1", int8_layers=2), int8, int8, 0.98).status == "PASS"
    unlike = judge(CheckRow(Precision.INT8, "MISSING", "dla0", int8_layers=0), [np.zeros_like(x) for x in int8],
                   int8, 0.98)
    assert unlike.status == "FAIL"  # the DLA row is still judged on its labels


# ----------------------------------------------------------------------------- 8: workspace and device memory
def _jetson_tree(root: Path) -> Path:
    """A device tree as an Orin Nano developer kit has it (engine/tensorrt_adapter.py platform_name reads it)."""
    root.mkdir(parents=True)
    (root / "model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    (root / "compatible").write_text("nvidia,p3768-0000+p3767-0005\x00nvidia,p3767-0005\x00nvidia,tegra234\x00")
    return root


def _columns(table: str, precision: str) -> dict:
    """The row of ``precision`` in check_on_target's table, by column name."""
    lines = [line for line in table.splitlines() if " | " in line]
    header = [c.strip() for c in lines[0].split(" | ")]
    row = next(line for line in lines[1:] if line.split(" | ")[0].strip() == precision)
    return dict(zip(header, (c.strip() for c in row.split(" | "))))


def test_the_workspace_default_is_1_gib_on_a_jetson_and_every_build_command_takes_the_flag(tmp_path: Path) -> None:
    from trt_segmentation.build_request import JETSON_WORKSPACE_MIB, workspace_limit_mib
    from trt_segmentation.commands import build_engine, build_on_target, check_on_target
    from trt_segmentation.engine.tensorrt_adapter import platform_name

    jetson = platform_name(_jetson_tree(tmp_path / "device-tree"))
    assert "Orin Nano" in jetson and platform_name(tmp_path / "no-tree") == ""
    assert workspace_limit_mib(None, jetson) == JETSON_WORKSPACE_MIB == 1024
    assert workspace_limit_mib(None, "") is None  # a discrete GPU: TensorRT's default
    assert workspace_limit_mib(0, jetson) is None and workspace_limit_mib(512, "") == 512
    required = {build_engine: ["--onnx", "x.onnx"], build_on_target: [], check_on_target: []}
    for command, args in required.items():
        parser = command.build_parser()
        assert parser.parse_args(args + ["--workspace-mib", "256"]).workspace_mib == 256
        assert parser.parse_args(args).workspace_mib is None
        with pytest.raises(SystemExit):
            parser.parse_args(args + ["--workspace-mib", "-1"])


def test_vehicle_builds_record_the_workspace_the_engine_size_and_device_memory(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16", "mixed"))
    proc = run_standin([BUILD, "--engine-dir", str(folder), "--precision", "fp16", "mixed", "--workspace-mib", "512"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for precision in ("fp16", "mixed"):
        engine = onnx_path(folder, precision, ".engine")
        meta, record = json.loads(engine.with_suffix(".json").read_text()), _record(engine)
        assert record["memory_pools"] == {"WORKSPACE": 512 << 20} and meta["build_options"]["workspace_mib"] == 512
        assert meta["engine_bytes"] == engine.stat().st_size
        assert meta["device_memory_bytes"] == record["device_memory_size"] > 0  # TensorRT 8.5: device_memory_size
    assert proc.stdout.count("MiB device memory per execution context, workspace 512 MiB") == 2, proc.stdout

    # the check prints both per row (from the sidecar here: the stand-in's engines do not run)
    check = run_standin([CHECK, "--engine-dir", str(folder), "--size", f"{H}x{W}", "--precision", "fp16", "mixed",
                         "--image-count", "1"])
    for precision in ("fp16", "mixed"):
        engine = onnx_path(folder, precision, ".engine")
        meta = json.loads(engine.with_suffix(".json").read_text())
        row = _columns(check.stdout, precision)
        assert row["engine MiB"] == f"{engine.stat().st_size / (1 << 20):.1f}", check.stdout
        assert row["MiB/context"] == f"{meta['device_memory_bytes'] / (1 << 20):.1f}", check.stdout

    # TensorRT 10.3 (device_memory_size_v2), no flag, not a Jetson: no limit set, and the sidecar says so
    other = variant_folder(tmp_path / "trt10", ("fp32", "fp16"))
    assert run_standin([BUILD, "--engine-dir", str(other), "--precision", "fp16"], version="10.3.0").returncode == 0
    engine = onnx_path(other, "fp16", ".engine")
    meta, record = json.loads(engine.with_suffix(".json").read_text()), _record(engine)
    assert record["memory_pools"] == {} and meta["build_options"]["workspace_mib"] is None
    assert meta["device_memory_bytes"] == record["device_memory_size"] > 0


def test_the_nodes_build_call_takes_1_gib_on_a_jetson_and_the_workspace_it_is_given(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16"))
    engine = onnx_path(folder, "fp16", ".engine")
    code = ("import sys\nfrom trt_segmentation.engine import tensorrt_adapter\n"
            "tensorrt_adapter.platform_name.__defaults__ = (sys.argv[1],)  # this test's Jetson device tree\n"
            "import logging\nfrom pathlib import Path\n"
            "from trt_segmentation.node.params import params_from_dict\n"
            "from trt_segmentation.node.startup import build_missing_engine\n"
            "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
            "params = params_from_dict({'backend': 'tensorrt', 'precision': 'fp16', 'build_engine_if_missing': True,\n"
            "                           'build_workspace_mib': int(sys.argv[3])})\n"
            "build_missing_engine(params, Path(sys.argv[2]), logging.getLogger('node'))\n")
    tree = _jetson_tree(tmp_path / "device-tree")
    # the node's build_workspace_mib parameter: -1 the machine's default, 0 no limit, N MiB
    for workspace, pools, recorded in (("-1", {"WORKSPACE": 1 << 30}, 1024), ("0", {}, None),
                                       ("300", {"WORKSPACE": 300 << 20}, 300)):
        engine.unlink(missing_ok=True)
        proc = run_standin(["-c", code, str(tree), str(engine), workspace])
        assert proc.returncode == 0 and f"built {engine}" in proc.stderr, proc.stdout + proc.stderr
        meta = json.loads(engine.with_suffix(".json").read_text())
        assert _record(engine)["memory_pools"] == pools and meta["build_options"]["workspace_mib"] == recorded
        assert "Orin Nano" in meta["platform"] and meta["device_memory_bytes"] > 0
