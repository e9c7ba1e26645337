"""Engine builder: TRT-RTX engines + metadata sidecar, compatibility checks, rebuild command, the CLI's messages."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from test_precision_variants import MODEL, REPO, H, W, ensure_variants

from trt_segmentation.artifacts import Precision
from trt_segmentation.engine.builder import build_engine
from trt_segmentation.engine.metadata import (
    EngineMetadata,
    MetadataError,
    check_compatible,
    read_metadata,
    rebuild_command,
    write_metadata,
)
from trt_segmentation.engine.tensorrt_adapter import TensorRTUnavailable, gpu_identity, real_tensorrt
from trt_segmentation.onnx_metadata import METADATA_KEY, read_onnx_metadata


@pytest.fixture(scope="module")
def variants(tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    return ensure_variants(tmp_path_factory.getbasetemp() / "precision_shared", random_model_factory)


def test_onnx_metadata_is_read_without_the_onnx_package(variants) -> None:  # noqa: ANN001
    props = {p.key: p.value for p in onnx.load(str(variants["mixed"])).metadata_props}
    assert read_onnx_metadata(variants["mixed"]) == props and METADATA_KEY in props


@pytest.mark.parametrize("precision", ["fp16", "mixed"])
def test_rtx_engine_and_metadata_sidecar(variants, tmp_path: Path, precision: str) -> None:  # noqa: ANN001
    engine = tmp_path / f"{MODEL}_{H}x{W}_{precision}.engine"
    meta = build_engine(variants[precision], engine, Precision(precision), builder="tensorrt-rtx", workspace_mib=256,
                        opt_level=2, build_options={"onnx": str(variants["fp32"]), "out_dir": str(tmp_path)})
    assert engine.stat().st_size > 1_000_000
    on_disk = read_metadata(engine)
    assert on_disk == meta
    assert (meta.model, meta.height, meta.width, meta.precision) == (MODEL, H, W, precision)
    assert meta.builder == "tensorrt-rtx" and meta.typing == "strong" and meta.dla_core == -1
    assert meta.inputs == [{"name": "image", "shape": [1, H, W, 3], "dtype": "UINT8"}]
    assert meta.outputs == [{"name": "labels", "shape": [1, H, W], "dtype": "UINT8"}]
    assert meta.contract["precision"] == precision and meta.contract["input_format"] == "uint8_rgb"
    assert meta.calibration_method == ("entropy" if precision == "mixed" else None)
    assert len(meta.onnx_sha256) == 64 and meta.build_options["workspace_mib"] == 256  # TensorRT-RTX takes the limit
    assert meta.engine_bytes == engine.stat().st_size
    if gpu_identity()[0] == "none":  # TensorRT-RTX deserializes on a GPU only: no device memory measured here
        assert meta.device_memory_bytes is None and "not measured" in meta.memory_summary()
    else:
        assert meta.device_memory_bytes is not None and meta.device_memory_bytes > 0
    same = dict(precision=precision, tensorrt_version=meta.tensorrt_version, compute_capability=meta.compute_capability)
    assert check_compatible(meta, **same, onnx_sha256=meta.onnx_sha256) == []
    reasons = check_compatible(meta, precision=Precision.INT8, tensorrt_version="10.3.0", compute_capability="8.7",
                               onnx_sha256="0" * 64)
    assert len(reasons) == 4 and any("TensorRT 10.3.0" in r for r in reasons)
    # the sidecar's rebuild command is the on-target build from the variants beside the engine (issue 18): no
    # checkpoint, no torch, the engine's folder as it is here
    command = shlex.split(rebuild_command(meta, engine))
    assert command[:2] == ["python", "tools/build_on_target.py"]
    assert command[command.index("--precision") + 1] == precision
    assert command[command.index("--engine-dir") + 1] == str(engine.parent)
    assert command[command.index("--size") + 1] == f"{H}x{W}" and "--checkpoint" not in command


def test_metadata_missing_corrupt_or_incomplete_is_a_clear_error(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    with pytest.raises(MetadataError, match="missing"):
        read_metadata(engine)
    engine.with_suffix(".json").write_text("{not json")
    with pytest.raises(MetadataError, match="corrupt"):
        read_metadata(engine)
    engine.with_suffix(".json").write_text(json.dumps({"model": "m"}))
    with pytest.raises(MetadataError, match="lacks the field"):
        read_metadata(engine)
    meta = EngineMetadata(model="m", height=1, width=2, precision="int8", tensorrt_version="10.3.0",
                          builder="tensorrt", typing="strong", gpu_name="Orin", compute_capability="8.7",
                          onnx_sha256="f" * 64, schema_version=99)
    write_metadata(engine, meta)
    with pytest.raises(MetadataError, match="newer"):
        read_metadata(engine)


def test_default_builder_needs_real_tensorrt_and_says_so(variants, tmp_path: Path) -> None:  # noqa: ANN001
    if real_tensorrt() is not None:
        pytest.skip("real TensorRT is installed here")
    with pytest.raises(TensorRTUnavailable, match="real TensorRT is not installed"):
        build_engine(variants["fp16"], tmp_path / "x.engine", Precision.FP16)
    with pytest.raises(TensorRTUnavailable, match="implicit path .* needs TensorRT 8.5-10.x"):
        build_engine(variants["fp32"], tmp_path / "x.engine", Precision.INT8, builder="tensorrt-rtx", implicit=True)
    assert not (tmp_path / "x.engine").exists()


def test_precision_must_match_the_onnx(variants, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="holds the fp16 variant, not int8"):
        build_engine(variants["fp16"], tmp_path / "x.engine", Precision.INT8, builder="tensorrt-rtx")


def _tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "tools" / "build_engine.py"), *args],
                          capture_output=True, text=True, timeout=300)


def test_build_tool_without_tensorrt_makes_and_checks_every_variant(variants, tmp_path: Path) -> None:  # noqa: ANN001
    if real_tensorrt() is not None:
        pytest.skip("real TensorRT is installed here")
    proc = _tool("--onnx", str(variants["fp32"]), "--precision", "fp32", "fp16", "--out-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for precision in ("fp32", "fp16"):
        assert (tmp_path / f"{MODEL}_{H}x{W}_{precision}.onnx").is_file()
        assert not (tmp_path / f"{MODEL}_{H}x{W}_{precision}.engine").exists()
    assert proc.stdout.count("TensorRT-RTX parse + build OK") == 2
    # the variants are made: the hint is the on-target build from this folder, no torch needed there (issue 18)
    assert "No .engine written" in proc.stdout and f"python tools/build_on_target.py --engine-dir {tmp_path} --size " \
        f"{H}x{W} --precision fp32 fp16" in proc.stdout
    assert (tmp_path / f"{MODEL}_{H}x{W}_fp32.onnx").is_file()  # the FP32 ONNX the implicit path needs is there


def test_build_tool_writes_rtx_engines_with_metadata(variants, tmp_path: Path) -> None:  # noqa: ANN001
    proc = _tool("--onnx", str(variants["fp32"]), "--precision", "fp16", "--out-dir", str(tmp_path),
                 "--builder", "tensorrt-rtx", "--timing-cache", str(tmp_path / "timing.cache"))
    assert proc.returncode == 0, proc.stderr
    meta = read_metadata(tmp_path / f"{MODEL}_{H}x{W}_fp16.engine")
    assert meta.precision == "fp16" and meta.build_options["timing_cache"] == str(tmp_path / "timing.cache")
    assert "Building engine" in proc.stdout  # TensorRT's progress monitor phases are shown


def test_build_tool_bad_inputs(variants, tmp_path: Path) -> None:  # noqa: ANN001
    proc = _tool("--onnx", str(variants["fp32"]), "--precision", "int8", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "int8 need calibration images" in proc.stderr
    proc = _tool("--onnx", str(variants["fp32"]), "--size", "512x1024", "--precision", "fp32", "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and f"exported at {H}x{W}, not 512x1024" in proc.stderr
    proc = _tool("--onnx", str(variants["fp32"]), "--precision", "int8", "--calibration", str(tmp_path / "nothing"),
                 "--out-dir", str(tmp_path))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = _tool("--checkpoint", str(tmp_path / "missing.pt"), "--precision", "fp32")
    assert proc.returncode == 2 and "--size" in proc.stderr


def test_rebuild_command_uses_the_shared_out_flag() -> None:
    """The rebuild hint spells the output folder ``--out`` (cli.add_out), and build_engine's parser reads it as is."""
    from trt_segmentation.cli import tool_argv
    from trt_segmentation.commands import build_engine as build_engine_command

    command = shlex.split(rebuild_command({"model": MODEL, "size": f"{H}x{W}", "precision": "fp16",
                                           "out_dir": "engines"}))
    assert "--out-dir" not in command and command[command.index("--out") + 1] == "engines"
    args = build_engine_command.build_parser().parse_args(command[len(tool_argv("build_engine")):])
    assert args.out == Path("engines") and args.precision == ["fp16"]
