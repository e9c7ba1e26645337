"""The artifact catalogue (artifacts.ArtifactFolder) and the build request's one command line
(build_request.BuildRequest): names parse back to what made them, searches find exactly the files asked for, and the
rebuild hint's flags are build_engine's own (args -> request -> argv -> args)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from trt_segmentation.artifacts import Artifact, ArtifactFolder, Precision, artifact_path
from trt_segmentation.build_request import BuildRequest
from trt_segmentation.cli import tool_argv
from trt_segmentation.commands import build_engine as build_engine_command
from trt_segmentation.engine.metadata import rebuild_command


@pytest.mark.parametrize("precision", list(Precision))
@pytest.mark.parametrize("batch", [1, 3])
def test_every_name_parses_back(precision: Precision, batch: int) -> None:
    path = artifact_path("out", "swiftnet_ss_rn18_pyramid", 512, 1024, precision, ".engine", batch=batch)
    item = Artifact.from_path(path)
    assert item is not None and item.path == path
    assert (item.model, item.size, item.batch, item.precision, item.dla_core) == (
        "swiftnet_ss_rn18_pyramid", (512, 1024), batch, precision, -1)


def test_names_made_otherwise_are_not_artifacts() -> None:
    for name in ("m_64x64_b1_fp32.onnx", "m_64x64_int8-entropy.onnx", "m_fp32.onnx", "notes.txt", "m_64x64_fp8.onnx"):
        assert Artifact.from_path(name) is None, name
    dla = Artifact.from_path("m_64x64_b2_int8.dla1.engine")
    assert dla is not None and (dla.batch, dla.dla_core, dla.suffix) == (2, 1, ".engine")


def test_the_folder_finds_exactly_what_is_asked(tmp_path: Path) -> None:
    folder = ArtifactFolder(tmp_path)
    made = [folder.path("m", 64, 128, "fp32", ".onnx"), folder.path("m", 64, 128, "int8", ".onnx"),
            folder.path("m", 64, 128, "fp32", ".onnx", batch=3), folder.path("m", 32, 64, "fp32", ".onnx", batch=3),
            folder.path("m_pyramid", 96, 96, "fp32", ".onnx"), folder.path("m", 64, 128, "int8", ".engine", dla_core=0),
            tmp_path / "m_64x64_b1_fp32.onnx", tmp_path / "readme.txt"]
    for path in made:
        path.write_bytes(b"")
    assert folder.sizes("m") == [(64, 128)]  # not the pyramid model's 96x96, not the batch-3 files
    assert folder.sizes("m", batch=3) == [(32, 64), (64, 128)]
    assert folder.batches("m", (64, 128), "fp32") == [1, 3]
    assert [a.path for a in folder.find("m", precision="int8")] == [made[1]]
    assert [a.path for a in folder.find("m", suffix=".engine", dla_core=0)] == [made[5]]
    assert folder.find("m", suffix=".engine") == []  # GPU engines only by default
    assert ArtifactFolder(tmp_path / "missing").find() == []


ARGVS = [
    ["--onnx", "a/m_64x64_fp32.onnx"],
    ["--checkpoint", "m.pt", "--size", "512x1024", "--batch", "3", "--precision", "all", "--calibration",
     "bag:rec@/cam", "--calibration-count", "16", "--calibration-batch", "4", "--mixed-config", "mix.yaml",
     "--no-cache", "--out", "engines", "--builder", "tensorrt", "--implicit", "--workspace-mib", "2048",
     "--timing-cache", "t.cache", "--opt-level", "5", "--dla-core", "1", "--verbose", "--input-format", "uint8_bgr"],
    ["--onnx", "x.onnx", "--precision", "int8-entropy", "int8-cpu", "mixed", "--calibration", "imgs"],
]


@pytest.mark.parametrize("argv", ARGVS)
def test_args_request_argv_args_round_trip(argv: list[str]) -> None:
    parser = build_engine_command.build_parser()
    request = BuildRequest.from_args(parser.parse_args(argv))
    again = BuildRequest.from_args(parser.parse_args(request.to_argv()))
    assert again == request
    # the hint is that argv behind the tool's name, and build_engine's parser reads it unchanged
    hint = shlex.split(rebuild_command(request))
    assert hint[: len(tool_argv("build_engine"))] == tool_argv("build_engine")
    assert BuildRequest.from_args(parser.parse_args(hint[len(tool_argv("build_engine")):])) == request


def test_sidecar_options_give_the_same_request() -> None:
    request = BuildRequest.from_args(build_engine_command.build_parser().parse_args(ARGVS[1]))
    options = dict(request.to_options(), precision=" ".join(p.value for p in request.precisions))
    back = BuildRequest.from_options(options)
    # what a sidecar does not record (how the tool ran, not what it built) comes back as the default
    assert back.to_options() == request.to_options() and back.precisions == request.precisions


def test_a_hint_without_a_source_says_what_is_missing() -> None:
    argv = BuildRequest(precisions=[Precision.INT8]).to_argv()
    assert argv[:4] == ["--onnx", "<fp32 onnx, or --checkpoint PT>", "--size", "<H>x<W>"]
    assert argv[argv.index("--calibration") + 1].startswith("<images")
    named = BuildRequest(precisions=[Precision.FP16], model="m", size=(64, 64), batch=2, out_dir=Path("e")).to_argv()
    assert named[:2] == ["--onnx", "e/m_64x64_b2_fp32.onnx"]


# ------------------------------------------------------------------------------------------------ closed types
def test_closed_types_parse_once_and_say_what_they_mean() -> None:
    from trt_segmentation.artifacts import BackendKind, InputFormat
    from trt_segmentation.runtime import BACKENDS

    assert [p.family for p in (Precision.INT8_MAX, Precision.INT8_KL2048, Precision.MIXED, Precision.FP16)] == [
        Precision.INT8, Precision.INT8, Precision.MIXED, Precision.FP16]
    assert BackendKind.for_file("m.PT") is BackendKind.CHECKPOINT and BackendKind.for_file("m.plan").value == "tensorrt"
    assert BackendKind.for_file("m.txt") is None and BACKENDS == ("onnxruntime", "tensorrt", "torch")
    assert InputFormat.parse("uint8_bgr").channel_order == "bgr" and not InputFormat.FLOAT_NORMALISED.camera
    with pytest.raises(ValueError, match="choose one of onnxruntime, tensorrt, torch, checkpoint"):
        BackendKind.parse("openvino")
    from trt_segmentation.onnx_metadata import ModelContract

    contract = ModelContract("m", 19, 8, 8, "uint8_bgr", "labels_uint8", "image", "labels", (0.0,) * 3, (1.0,) * 3)
    assert contract.input_format is InputFormat.UINT8_BGR and ModelContract.from_json(contract.to_json()) == contract
