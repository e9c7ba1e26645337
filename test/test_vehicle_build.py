"""The vehicle's first run (issue 18): from a folder of ONNX variants made on the build side to engines, without
torch, ModelOpt or the quantization tools; implicit INT8 from the variants' own Q/DQ scales; and the defects of the
issue's review (3, 4, 5, 7, 8, 9 and the check_on_target part of 2), each with a test that fails if it comes back.

One module fixture makes the folder the way a user does on the build machine: run_pipeline (the build tools, main
venv) from a seeded random SwiftNet at 128x256, fp32/fp16/int8/mixed at batch 1 and fp32/mixed at batch 2, ONNX
only (--builder none). The rehearsal then runs the Jetson's command on that folder in a subprocess whose imports of
torch, ModelOpt and the quantization tools raise (and are recorded), with TensorRT-RTX in place of TensorRT.
What needs a real TensorRT 8.5/8.6/10 (the implicit build itself, DLA) is checked with recorded calls here and
stays owed to the target (docs/vehicle.md).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from trt_segmentation.artifacts import Precision, artifact_path
from trt_segmentation.engine.calibration_table import (
    CalibrationTableError,
    activation_scales,
    parse_table,
    table_problem,
    table_text,
)
from trt_segmentation.engine.calibrator_core import CalibratorCore
from trt_segmentation.engine.tensorrt_adapter import TensorRT, platform_name, same_platform, tensorrt_rtx

REPO = Path(__file__).resolve().parents[1]
H, W, MODEL, SEED = 128, 256, "swiftnet_ss_rn18", 11
BLOCKED = ("torch", "torchvision", "modelopt", "onnxruntime.quantization", "onnxconverter_common", "onnxsim")
needs_rtx = pytest.mark.skipif(tensorrt_rtx() is None, reason="TensorRT-RTX is not installed")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, random_model_factory) -> Path:  # noqa: ANN001
    import torch

    from trt_segmentation.apps.build import run_pipeline
    from trt_segmentation.build_request import BuildRequest
    from trt_segmentation.data.street_scenes import write_street_split

    base = tmp_path_factory.mktemp("vehicle")
    checkpoint = base / "random.pt"
    torch.save(random_model_factory("single_scale", "resnet18", SEED).state_dict(), checkpoint)
    write_street_split(base / "street", "train", 8, seed=0, height=H, width=W, progress=False)
    out = base / "artifacts"
    for batch, precisions in ((1, ["fp32", "fp16", "int8", "mixed"]), (2, ["fp32", "mixed"])):
        run_pipeline(BuildRequest(precisions=[Precision.parse(p) for p in precisions], checkpoint=checkpoint,
                                     size=(H, W), batch=batch, calibration=str(base / "street/leftImg8bit/train"),
                                     calibration_count=8, calibration_batch=2 * batch, out_dir=out, builder="none"),
                     log=lambda _line: None)
    return out


def _variant(folder: Path, precision: str, batch: int = 1) -> Path:
    return artifact_path(folder, MODEL, H, W, precision, ".onnx", batch=batch)


def _qdq_scales_by_hand(variant: Path) -> dict[str, np.float32]:
    """The variant's activation scales read straight from its graph (independently of calibration_table.py)."""
    graph = onnx.load(str(variant)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    made_by = {o: n for n in graph.node for o in n.output}
    out = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        name = node.input[0]
        while name in made_by and made_by[name].op_type == "Cast":
            name = made_by[name].input[0]
        if name in init or (name in made_by and made_by[name].op_type == "Constant"):
            continue
        out[name] = np.float32(init[node.input[1]].reshape(-1)[0])
    return out


# ------------------------------------------------------------------------------------ Q/DQ -> calibration table
@pytest.mark.parametrize("precision,batch", [("int8", 1), ("mixed", 1), ("mixed", 2)])
def test_the_table_carries_the_variants_scales_exactly(folder: Path, precision: str, batch: int) -> None:
    variant, fp32 = _variant(folder, precision, batch), _variant(folder, "fp32", batch)
    expected = _qdq_scales_by_hand(variant)
    assert len(expected) >= 5
    text = table_text(activation_scales(variant, fp32), "8.5.2")
    assert text.splitlines()[0] == "TRT-8502-EntropyCalibration2" and table_problem(text.encode()) is None
    parsed = parse_table(text)
    assert parsed.keys() == expected.keys()
    for name, scale in expected.items():  # bit for bit: the implicit engine quantizes as the explicit one does
        assert struct.pack("!f", parsed[name]) == struct.pack("!f", scale), name
    line = next(x for x in text.splitlines()[1:] if x.startswith(sorted(expected)[0] + ": "))
    assert line.split(": ")[1] == struct.pack(">f", expected[sorted(expected)[0]]).hex()


@needs_rtx
def test_the_table_names_are_tensors_the_parser_makes_of_the_fp32_onnx(folder: Path) -> None:
    from trt_segmentation.engine.tensorrt_adapter import _parse, make_logger

    trt = tensorrt_rtx()
    assert trt is not None
    logger = make_logger(trt)
    builder = trt.module.Builder(logger)
    network, _parser = _parse(trt, builder, logger, _variant(folder, "fp32"), True)
    names = {network.get_input(i).name for i in range(network.num_inputs)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        names |= {layer.get_output(j).name for j in range(layer.num_outputs)}
    for precision in ("int8", "mixed"):
        scales = activation_scales(_variant(folder, precision))
        assert set(scales) <= names, sorted(set(scales) - names)[:5]


def test_a_variant_of_another_fp32_or_without_qdq_is_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(CalibrationTableError, match="no activation QuantizeLinear"):
        activation_scales(_variant(folder, "fp16"))
    with pytest.raises(CalibrationTableError, match="does not have"):
        model = onnx.load(str(_variant(folder, "fp32")))
        for node in model.graph.node:
            node.output[:] = [f"renamed_{o}" for o in node.output]
        other = tmp_path / "other_fp32.onnx"
        onnx.save(model, str(other))
        activation_scales(_variant(folder, "int8"), other)


# ------------------------------------------------------------------------------------- the rehearsal (no torch)
_BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            with open({log!r}, "a") as f:
                f.write(name + "\\n")
            raise ImportError("blocked on the vehicle: " + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_blocked(args: list[str], log: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = _BLOCKER.format(blocked=BLOCKED, log=str(log))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@needs_rtx
def test_rehearsal_the_jetson_build_needs_no_torch_modelopt_or_quantizer(folder: Path, tmp_path: Path) -> None:
    vehicle = tmp_path / "on_the_jetson"
    shutil.copytree(folder, vehicle)  # the folder as copied to the robot: ONNX variants only, no engines
    assert not list(vehicle.glob("*.engine"))
    log = tmp_path / "blocked.txt"
    runs = [["tools/build_on_target.py", "--engine-dir", str(vehicle), "--size", f"{H}x{W}", "--builder",
             "tensorrt-rtx"],
            ["tools/build_on_target.py", "--engine-dir", str(vehicle), "--batch", "2", "--builder", "tensorrt-rtx"]]
    for args in runs:
        proc = _run_blocked(args, log)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not log.exists(), f"the vehicle path tried to import: {log.read_text()}"
    for batch, precisions in ((1, ("fp32", "fp16", "int8", "mixed")), (2, ("fp32", "mixed"))):
        for precision in precisions:
            engine = artifact_path(vehicle, MODEL, H, W, precision, ".engine", batch=batch)
            meta = json.loads(engine.with_suffix(".json").read_text())
            assert meta["batch"] == batch and meta["precision"] == precision and meta["typing"] == "strong"
            assert meta["build_options"]["source_onnx"] == _variant(vehicle, precision, batch).name
    # the implicit path's own step (TensorRT 8.5/8.6 mixed, batch rows too), without images or the build tools
    script = tmp_path / "table.py"
    script.write_text(
        "import sys\nfrom trt_segmentation.engine.calibration_table import write_table_from_variant\n"
        "for v, f, out in zip(*[iter(sys.argv[1:])] * 3):\n    write_table_from_variant(v, f, out, '8.5.2')\n")
    args = [str(script)]
    for batch in (1, 2):
        args += [str(_variant(vehicle, "mixed", batch)), str(_variant(vehicle, "fp32", batch)),
                 str(tmp_path / f"mixed_b{batch}.calibration")]
    proc = _run_blocked(args, log)
    assert proc.returncode == 0 and not log.exists(), proc.stderr
    assert parse_table((tmp_path / "mixed_b2.calibration").read_text()) == {
        k: float(v) for k, v in _qdq_scales_by_hand(_variant(folder, "mixed", 2)).items()}


def test_hints_on_the_vehicle_name_the_on_target_build(folder: Path, tmp_path: Path) -> None:
    from trt_segmentation.engine.metadata import build_hint

    argv = shlex.split(build_hint(MODEL, (H, W), Precision.MIXED, folder, batch=2))
    assert argv[:2] == ["python", "tools/build_on_target.py"] and "--checkpoint" not in argv
    assert argv[argv.index("--engine-dir") + 1] == str(folder) and argv[argv.index("--batch") + 1] == "2"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert shlex.split(build_hint(MODEL, (H, W), Precision.MIXED, empty))[1] == "tools/build_engine.py"  # build machine


# ---------------------------------------------------------------------------------------------- the defects
def test_defect3_int8_on_a_dla_core_before_tensorrt_10_is_built_implicitly(folder: Path) -> None:
    from trt_segmentation.engine.builder import build_path

    for version, dla_int8 in (("8.5.2", "implicit"), ("8.6.2", "implicit"), ("10.3.0", "explicit")):
        trt = TensorRT(module=None, builder="tensorrt", version=version)
        assert build_path(trt, Precision.INT8, _variant(folder, Precision.INT8), dla_core=0) == dla_int8, version
        assert build_path(trt, Precision.INT8, _variant(folder, Precision.INT8)) == "explicit", version  # the GPU takes Q/DQ
        assert build_path(trt, Precision.FP16, _variant(folder, Precision.FP16), dla_core=0) == "explicit", version


def test_defect4_a_failing_build_or_run_fails_its_row_not_the_table() -> None:
    from trt_segmentation.apps.target_check import CheckRow, _build, _compare, exit_code
    from trt_segmentation.cuda_driver import CudaUnavailable

    def no_pycuda() -> None:
        raise CudaUnavailable("pycuda is not installed")

    row = CheckRow(Precision.INT8, "MISSING")
    assert _build(row, no_pycuda) is False and row.status == "FAIL" and "CudaUnavailable" in row.notes[0]
    other = _compare(CheckRow(Precision.FP16, "MISSING"), no_pycuda, [], 0.99)  # type: ignore[arg-type, return-value]
    assert other.status == "FAIL" and "pycuda is not installed" in other.notes[0]
    assert exit_code([row, other]) == 1


class _Feeder:
    def __init__(self, fail_at: int | None, count: int = 4) -> None:
        self.fail_at, self.count, self.fed, self.closed = fail_at, count, 0, False

    def __len__(self) -> int:
        return self.count

    def next_pointer(self) -> int | None:
        if self.fed == self.fail_at:
            raise MemoryError("cuMemcpyHtoD failed")
        if self.fed == self.count:
            return None
        self.fed += 1
        return 0x1000 + self.fed

    def close(self) -> None:
        self.closed = True


def test_defect5_a_failure_while_feeding_is_kept_and_no_partial_table_is_written(tmp_path: Path) -> None:
    from trt_segmentation.engine.builder import calibrator_failure

    table = tmp_path / "t.calibration"
    core = CalibratorCore(_Feeder(fail_at=2), table)
    assert core.get_batch(["image"]) and core.get_batch(["image"])
    assert core.get_batch(["image"]) == []  # TensorRT reads this as "no more data" ...
    assert core.error is not None and "MemoryError" in core.error  # ... but the failure is kept
    core.write_calibration_cache(b"TRT-8502-EntropyCalibration2\nx: 3c010a14\n")
    assert not table.exists() and not core.complete()

    class Calibrator:  # what the builder sees: the TensorRT subclass holds its core
        pass

    calibrator = Calibrator()
    calibrator.core = core  # type: ignore[attr-defined]
    assert "MemoryError" in (calibrator_failure(calibrator) or "")
    whole = CalibratorCore(_Feeder(fail_at=None), table)
    while whole.get_batch(["image"]):
        pass
    whole.write_calibration_cache(b"TRT-8502-EntropyCalibration2\nx: 3c010a14\n")
    assert whole.complete() and table.is_file() and calibrator_failure(object()) is None
    fixed = CalibratorCore(None, table, table=b"TRT-8502-EntropyCalibration2\nx: 3c010a14\n")
    assert fixed.read_calibration_cache() == b"TRT-8502-EntropyCalibration2\nx: 3c010a14\n"
    assert fixed.get_batch(["image"]) == [] and "did not accept" in (fixed.error or "")


@needs_rtx
def test_defect7_an_engine_in_another_folder_finds_the_onnx_it_was_built_from(folder: Path, tmp_path: Path) -> None:
    from trt_segmentation.engine.builder import build_engine
    from trt_segmentation.engine.metadata import read_metadata, source_onnx_path

    tree = tmp_path / "tree"
    shutil.copytree(folder, tree / "onnx")
    engine = artifact_path(tree / "engines", MODEL, H, W, "fp16", ".engine")
    build_engine(_variant(tree / "onnx", Precision.FP16), engine, Precision.FP16, builder="tensorrt-rtx")
    meta = read_metadata(engine)
    assert meta.build_options["source_onnx"] == f"../onnx/{_variant(folder, 'fp16').name}"
    moved = tmp_path / "moved"
    shutil.copytree(tree, moved)  # the whole tree copied to the robot
    moved_engine = moved / "engines" / engine.name
    source = source_onnx_path(moved_engine, read_metadata(moved_engine))
    assert source.resolve() == _variant(moved / "onnx", "fp16").resolve() and source.is_file()


def test_defect8_the_platform_is_the_module_not_the_carrier(tmp_path: Path) -> None:
    from trt_segmentation.engine.metadata import EngineMetadata, check_compatible

    def tree(name: str, model: str, compatible: list[str]) -> str:
        root = tmp_path / name
        root.mkdir()
        (root / "model").write_text(model + "\x00")
        (root / "compatible").write_text("\x00".join(compatible) + "\x00")
        return platform_name(root)

    devkit = tree("devkit", "NVIDIA Jetson AGX Orin Developer Kit",
                  ["nvidia,p3737-0000+p3701-0005", "nvidia,p3701-0005", "nvidia,tegra234"])
    carrier = tree("carrier", "Vendor Rugged Box X1", ["vendor,box-x1+p3701-0005", "nvidia,p3701-0005",
                                                        "nvidia,tegra234"])
    nano = tree("nano", "NVIDIA Jetson Orin Nano Developer Kit",
                ["nvidia,p3768-0000+p3767-0005", "nvidia,p3767-0005", "nvidia,tegra234"])
    assert devkit == "NVIDIA Jetson AGX Orin (module p3701-0005)"
    assert same_platform(devkit, carrier) and not same_platform(devkit, nano)
    assert same_platform("NVIDIA Jetson AGX Orin Developer Kit", devkit)  # a sidecar written before the fix
    assert platform_name(tmp_path / "no_tree") == ""
    meta = EngineMetadata(model=MODEL, height=H, width=W, precision="fp16", tensorrt_version="10.3.0",
                          builder="tensorrt", typing="strong", gpu_name="Orin", compute_capability="8.7",
                          onnx_sha256="0" * 64, platform=devkit)
    assert check_compatible(meta, precision=Precision.FP16, platform=carrier) == []
    assert any("this is NVIDIA Jetson Orin Nano" in r for r in check_compatible(meta, precision=Precision.FP16, platform=nano))


def test_defect9_batch_rows_on_8_5_and_8_6_build_the_implicit_way_from_the_folder(folder: Path, monkeypatch) -> None:  # noqa: ANN001
    # TensorRT 8.6 cannot run here: the adapter hands out a TensorRT of that version and build_engine is recorded
    import trt_segmentation.engine.builder as builder
    import trt_segmentation.engine.tensorrt_adapter as adapter
    from trt_segmentation.engine.on_target import build_from_folder

    calls: list[tuple[Path, dict]] = []
    monkeypatch.setattr(builder, "build_engine", lambda onnx_path, engine, precision, *a, **k: calls.append(
        (Path(onnx_path), dict(k, precision=precision, calibration=a[0] if a else None))))
    for version in ("8.5.2", "8.6.2", "10.3.0"):
        monkeypatch.setattr(adapter, "load_tensorrt", lambda _b="tensorrt", v=version: TensorRT(None, "tensorrt", v))
        build_from_folder(artifact_path(folder, MODEL, H, W, Precision.MIXED, ".engine", batch=2), Precision.MIXED)
    implicit85, implicit86, explicit10 = calls
    for onnx_path, kwargs in (implicit85, implicit86):
        assert onnx_path == _variant(folder, "fp32", 2) and kwargs["implicit"] is True
        assert kwargs["scales_from"] == _variant(folder, "mixed", 2) and kwargs["calibration"] is None
    assert explicit10[0] == _variant(folder, "mixed", 2) and "implicit" not in explicit10[1]


@needs_rtx
def test_defect2_an_engine_that_does_not_fit_fails_or_is_rebuilt_when_allowed(folder: Path, tmp_path: Path) -> None:
    from trt_segmentation.apps.target_check import CheckRow, prepare_engine
    from trt_segmentation.engine.builder import build_engine
    from trt_segmentation.engine.on_target import EngineDoesNotFit, ensure_engine, fit_problems
    from trt_segmentation.engine.tensorrt_adapter import real_tensorrt

    work = tmp_path / "copied"
    shutil.copytree(folder, work)
    engine = artifact_path(work, MODEL, H, W, "fp16", ".engine")
    build_engine(_variant(work, Precision.FP16), engine, Precision.FP16, builder="tensorrt-rtx")  # "built elsewhere"
    before = engine.read_bytes()
    problems = fit_problems(engine, Precision.FP16)
    assert any("built by tensorrt-rtx" in p for p in problems)
    with pytest.raises(EngineDoesNotFit, match="tools/build_on_target.py --engine-dir") as caught:
        ensure_engine(engine, Precision.FP16)
    assert "rebuild_engine:=true" in str(caught.value)
    row = CheckRow(Precision.FP16, "MISSING")
    assert prepare_engine(row, engine, Precision.FP16, build=False, rebuild=False, log=lambda _t: None) is False
    assert row.status == "FAIL" and "does not fit" in row.notes[0] and "--rebuild" in row.notes[0]
    assert engine.read_bytes() == before  # never replaced when not allowed
    if real_tensorrt() is None:  # allowed: it rebuilds from the variant beside it, which needs TensorRT here
        said: list[str] = []
        row = CheckRow(Precision.FP16, "MISSING")
        assert prepare_engine(row, engine, Precision.FP16, build=False, rebuild=True, log=said.append) is False
        assert said and "rebuilding" in said[0] and "built by tensorrt-rtx" in said[0]
        assert "TensorRTUnavailable" in row.notes[0]


def test_rehearsal_the_node_runs_the_vehicle_folder_on_onnx_runtime_without_torch(folder: Path, tmp_path: Path) -> None:
    """The node, started as the launch file starts it (a black box), on the same folder (mixed, batch 1) with
    torch, ModelOpt and the quantizers blocked: it publishes labels for the frames it gets and imports none."""
    from node_harness import (
        STATUS,
        encode_frame,
        finish,
        listener,
        node_process,
        save_frames,
        smooth_frames,
        start_publisher,
    )

    from harness.launch_emulation import launch_command

    vehicle = tmp_path / "engines"
    vehicle.mkdir()
    for precision in ("fp32", "mixed"):
        shutil.copy2(_variant(folder, precision), vehicle)
    frames = [dict(zip(("step", "data"), encode_frame(rgb, "rgb8")), encoding="rgb8", height=H, width=W)
              for rgb in smooth_frames(4, H, W, seed=4)]
    path = save_frames(tmp_path / "frames.npz", frames)
    argv, env = launch_command({"backend": "onnxruntime", "engine_dir": str(vehicle), "precision": "mixed",
                                "image_topic": "/vehicle/camera/image_raw"}, extra={"qos_reliability": "reliable"})
    assert argv[1:3] == ["-m", "trt_segmentation.node"], argv
    log = tmp_path / "blocked.txt"
    blocker = _BLOCKER.format(blocked=BLOCKED, log=str(log)).replace(
        'runpy.run_path(sys.argv[0], run_name="__main__")',
        'sys.argv = ["trt_segmentation.node"] + sys.argv\nrunpy.run_module("trt_segmentation.node", run_name="__main__")')
    argv = [argv[0], "-c", blocker, *argv[3:]]
    env["PYTHONPATH"] = str(REPO)
    with node_process(argv, env, tmp_path / "node.log") as node, listener("/segmentation/labels") as lis:
        lis.wait_for(lambda: lis.last_status(STATUS), 90, "the node's first diagnostics", node)  # it is up
        finish(start_publisher(path, "/vehicle/camera/image_raw", rate=4.0, env=env, reliable=True,
                               lockstep="/segmentation/labels"), 120)
        lis.wait_for(lambda: len(lis.labels) >= 4, 30, "labels of the 4 frames", node)
    assert not log.exists(), f"the node tried to import: {log.read_text()}"
    assert "mixed" in (tmp_path / "node.log").read_text()


def test_build_engine_dla_core_writes_the_name_the_node_looks_for(tmp_path: Path) -> None:
    """Issue 32 item 4: ``trt_seg_build_engine --dla-core N`` writes ``<name>.dla<N>.engine`` (+ .json), the name the
    node, build_on_target and check_on_target look for; TensorRT 8.5.2 with two DLA cores is the recording stand-in
    (test/trt_standin), the variant is made for real."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from vehicle_standin import onnx_path, run_standin, variant_folder

    folder = variant_folder(tmp_path / "engines", ("fp32",))
    proc = run_standin(["tools/build_engine.py", "--onnx", str(onnx_path(folder, "fp32")), "--precision", "fp16",
                        "--dla-core", "0", "--out", str(folder)], dla_cores=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    engine = onnx_path(folder, "fp16", ".dla0.engine")
    assert sorted(p.name for p in folder.glob("*.engine")) == [engine.name]
    assert json.loads(engine.with_suffix(".json").read_text())["dla_core"] == 0
