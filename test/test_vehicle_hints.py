"""Every hint a vehicle user is shown names a command that runs on the vehicle, without torch (issue 32, item 3).

Collected from where they are made, by making each situation happen: the build hints and sidecar messages of
engine/metadata.py, the refusal of an engine that does not fit (engine/on_target.py), the node's start-up
(node/startup.py, node/params.py) and the TensorRT backend's sidecar check; plus every command of docs/vehicle.md.
Each named tool must be ``build_on_target`` or ``check_on_target``, or ``build_engine`` said to run on the build
machine (a missing variant is made there). Runs on the Python 3.8 leg, where torch is not installed: the on-target
hints are run as printed (with the TensorRT stand-in) and the documented tools' ``--help``, so a hint that needed
torch would fail here.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vehicle_standin import REPO, H, W, run_standin, variant_folder  # noqa: E402
from vehicle_standin import onnx_path as default_onnx_path  # noqa: E402

from trt_segmentation.artifacts import Precision  # noqa: E402

# not the default model: a hint that forgot --model would send the vehicle looking for swiftnet_ss_rn18 files
MODEL = "swiftnet_pyr_rn18"

VEHICLE_TOOLS = ("build_on_target", "check_on_target")


def onnx_path(folder: Path, precision: str, suffix: str = ".onnx") -> Path:
    return default_onnx_path(folder, precision, suffix, model=MODEL)
_TOOL = re.compile(r"(?:\btools/(\w+)\.py\b|\btrt_seg_(\w+))")


def named_tools(text: str) -> List[str]:
    return [a or b for a, b in _TOOL.findall(text)]


def _sidecar(engine: Path, **changes: object) -> None:
    from trt_segmentation.engine.metadata import EngineMetadata, write_metadata
    from trt_segmentation.onnx_metadata import read_contract_dict

    engine.write_bytes(b"plan")
    fields: Dict[str, object] = dict(model=MODEL, height=H, width=W, precision="mixed", tensorrt_version="8.5.2",
                                     builder="tensorrt", typing="implicit", gpu_name="Orin", compute_capability="8.7",
                                     onnx_sha256="0" * 64, contract=read_contract_dict(onnx_path(engine.parent, "fp32")))
    fields.update(changes)
    write_metadata(engine, EngineMetadata(**fields))  # type: ignore[arg-type]


def collect_hints(tmp_path: Path) -> List[Tuple[str, str]]:
    """(situation, message) for each hint, each situation made for real."""
    from trt_segmentation.engine.metadata import MetadataError, build_hint, read_metadata, rebuild_command
    from trt_segmentation.engine.on_target import EngineDoesNotFit, ensure_engine
    from trt_segmentation.node.params import params_from_dict
    from trt_segmentation.node.startup import StartupError, load_backend
    from trt_segmentation.onnx_metadata import read_contract_dict

    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"), model=MODEL)
    empty = tmp_path / "empty"
    empty.mkdir()
    hints = [("engine missing, variant there", build_hint(MODEL, (H, W), Precision.MIXED, folder)),
             ("variant missing", build_hint(MODEL, (H, W), Precision.MIXED, empty))]
    engine = onnx_path(folder, "mixed", ".engine")

    def refusal(situation: str) -> None:
        try:
            read_metadata(engine)
        except MetadataError as exc:
            hints.append((situation, str(exc)))
        else:
            raise AssertionError(f"{situation}: the sidecar was not refused")

    engine.write_bytes(b"plan")
    refusal("sidecar missing")
    engine.with_suffix(".json").write_text("{")
    refusal("sidecar corrupt")
    _sidecar(engine, batch=2, contract=dict(read_contract_dict(onnx_path(folder, "fp32")), batch=2))
    refusal("sidecar of another batch")

    def does_not_fit(situation: str, reason: str) -> None:  # a sidecar that reads, of an engine that is stale
        assert read_metadata(engine).build_options["scales_from"]
        with pytest.raises(EngineDoesNotFit, match=reason) as refused:
            ensure_engine(engine, Precision.MIXED)
        hints.append((situation, str(refused.value)))

    _sidecar(engine, build_options={"scales_from": onnx_path(folder, "mixed").name}, scales_sha256="1" * 64)
    does_not_fit("scales variant re-calibrated", "the variant whose Q/DQ scales it was calibrated with, changed")
    _sidecar(engine, build_options={"scales_from": onnx_path(folder, "mixed").name})
    does_not_fit("sidecar without the scales hash", "does not record which version")
    _sidecar(engine, builder="tensorrt-rtx")
    hints.append(("rebuild_command", rebuild_command(read_metadata(engine), engine)))
    with pytest.raises(EngineDoesNotFit) as does_not_fit:
        ensure_engine(engine, Precision.MIXED)
    hints.append(("engine does not fit", str(does_not_fit.value)))
    for situation, values in (
            ("node: engine built by another builder", {}),
            ("node: engine missing", {"precision": "fp16"}),
            ("node: no engine of any size", {"engine_height": 0, "engine_width": 0, "precision": "int8"})):
        params = params_from_dict(dict({"backend": "tensorrt", "precision": "mixed", "engine_dir": str(folder),
                                        "model": MODEL, "engine_height": H, "engine_width": W, "build_engine_if_missing": False},
                                       **values))
        with pytest.raises(StartupError) as refused:
            load_backend(params, logging.getLogger("test"))
        hints.append((situation, str(refused.value)))
    engine.unlink()
    engine.with_suffix(".json").unlink()
    params = params_from_dict({"backend": "tensorrt", "precision": "mixed", "engine_dir": str(folder),
                               "model": MODEL, "engine_height": H, "engine_width": W, "build_engine_if_missing": False})
    with pytest.raises(StartupError) as missing:
        load_backend(params, logging.getLogger("test"))
    hints.append(("node: engine missing, variant there", str(missing.value)))
    return hints


def test_every_hint_names_a_command_that_runs_on_the_vehicle(tmp_path: Path) -> None:
    hints = collect_hints(tmp_path)
    assert len(hints) >= 12
    runnable = []
    for situation, message in hints:
        tools = named_tools(message)
        assert tools, f"{situation}: no command in {message!r}"
        for tool in tools:
            if tool == "build_engine":
                assert "on the build machine" in message, f"{situation}: {message}"
            else:
                assert tool in VEHICLE_TOOLS, f"{situation}: {tool} in {message!r}"
        match = re.search(r"python3? tools/build_on_target\.py [^;()]*?(?=$|\. |\)|; | \(|, )", message)
        if match:
            runnable.append(shlex.split(match.group(0)))
    assert runnable
    for argv in runnable:  # the engine's own model: without it the vehicle looks for the default model's files
        assert "--model" in argv and argv[argv.index("--model") + 1] == MODEL, argv
    # the on-target hints run as printed on this Python (no torch installed), TensorRT 8.5.2 being the stand-in
    folder = tmp_path / "engines"
    for argv in {tuple(a) for a in runnable}:
        for stale in folder.glob("*.engine"):
            stale.unlink()
        proc = run_standin(list(argv[1:]))
        # 0: built; 2: one clear line (e.g. the batch-2 variants a renamed engine asks for are not in this folder)
        assert proc.returncode in (0, 2) and "torch" not in proc.stderr and "Traceback" not in proc.stderr, (
            argv, proc.stdout + proc.stderr)


def test_the_vehicle_doc_names_only_vehicle_commands_and_they_run_without_torch() -> None:
    text = (REPO / "docs" / "vehicle.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    assert blocks, "docs/vehicle.md shows its commands in a ```bash block"
    commands = [line.strip() for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()
                if line.strip() and not line.strip().startswith("#")]  # a `\`-continued command as one line
    argvs = [shlex.split(command.split("#")[0]) for command in commands]
    # the Container section: `docker build` makes the images (test/test_docker.py checks those lines); what a
    # `docker run` of one of them runs is a vehicle command, checked as the others
    images = {argv[argv.index("-t") + 1] for argv in argvs if argv[:2] == ["docker", "build"]}
    tools = set()
    for command, argv in zip(commands, argvs):
        if argv[:2] == ["docker", "build"]:
            assert not named_tools(command), command
            continue
        if argv[:2] == ["docker", "run"]:
            image = next((word for word in argv if word in images), None)
            assert image and argv[argv.index(image) + 1:], f"runs no command in an image built above: {command}"
            command = " ".join(argv[argv.index(image) + 1:])
        named = named_tools(command.split("#")[0])
        assert named or command.startswith("ros2 launch trt_segmentation "), command
        tools.update(named)
    assert tools and tools <= set(VEHICLE_TOOLS), tools
    for tool in sorted(tools):
        proc = run_standin([f"tools/{tool}.py", "--help"])
        assert proc.returncode == 0 and "usage:" in proc.stdout, proc.stderr


def test_the_build_log_names_the_typing_it_builds(tmp_path: Path) -> None:
    folder = variant_folder(tmp_path / "engines", ("fp32", "fp16"))
    proc = run_standin(["tools/build_on_target.py", "--engine-dir", str(folder), "--precision", "fp16", "--verbose"])
    assert proc.returncode == 0, proc.stderr
    assert "(weak typing)" in proc.stderr and "(strong typing)" not in proc.stderr
    meta = json.loads(default_onnx_path(folder, "fp16", ".json").read_text())
    assert meta["typing"] == "weak"


def test_the_hints_for_a_dla_engine_name_its_model_and_core(tmp_path: Path) -> None:
    """An engine that does not fit, and one without a sidecar, told by the engine's name: model, size, precision
    and DLA core (``<model>_<H>x<W>_<precision>.dla0.engine``), whichever tool refuses it."""
    from trt_segmentation.apps.target_check import CheckRow, prepare_engine
    from trt_segmentation.engine.metadata import MetadataError, read_metadata
    from trt_segmentation.engine.on_target import EngineDoesNotFit, ensure_engine

    folder = variant_folder(tmp_path / "engines", ("fp32", "mixed"), model=MODEL)
    engine = onnx_path(folder, "mixed", ".dla0.engine")
    engine.write_bytes(b"plan")
    with pytest.raises(MetadataError) as missing:
        read_metadata(engine)
    _sidecar(engine, builder="tensorrt-rtx", dla_core=0)
    with pytest.raises(EngineDoesNotFit) as does_not_fit:
        ensure_engine(engine, Precision.MIXED)
    row = CheckRow(Precision.MIXED, "PASS", path="dla0")
    assert not prepare_engine(row, engine, Precision.MIXED, build=False, rebuild=False)
    assert row.status == "FAIL"
    for message in (str(missing.value), str(does_not_fit.value), " ".join(row.notes)):
        match = re.search(r"python3? tools/build_on_target\.py [^;()]*?(?=$|\. |\)|; | \(|, )", message)
        assert match, message
        argv = shlex.split(match.group(0))
        assert argv[argv.index("--model") + 1] == MODEL, argv
        assert argv[argv.index("--size") + 1] == f"{H}x{W}" and argv[argv.index("--dla-core") + 1] == "0", argv
