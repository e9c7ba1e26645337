"""ONNX precision variant -> serialized TensorRT engine + JSON metadata sidecar.

Two paths: *explicit* (default) builds the variant ONNX whose precision is already in the graph (FP16 casts,
Q/DQ) as a strongly typed network on TensorRT >= 10 and TensorRT-RTX, or with the matching builder flags on
TensorRT 8.5-9.x; *implicit* builds the FP32 ONNX with FP16/INT8 builder flags and an IInt8EntropyCalibrator2
(TensorRT 8.5-10.x only). Imports nothing heavy at module level: the node calls :func:`build_engine` on a Jetson
that has TensorRT and numpy but no torch, onnx or modelopt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..artifacts import Artifact, BuilderKind, Precision, artifact_path, batch_from_name
from ..build_request import workspace_limit_mib
from ..cli import tool_command
from ..errors import InputError, MissingFile
from ..hashing import sha256_file
from ..onnx_metadata import read_contract, read_contract_dict, read_onnx_opset
from .metadata import EngineMetadata, tool_version, write_metadata
from .tensorrt_adapter import (
    BuildError,
    BuildOptions,
    TensorRT,
    TensorRTUnavailable,
    build_serialized,
    gpu_identity,
    load_tensorrt,
    measure_device_memory,
    platform_name,
    typing_of,
)

LOG = logging.getLogger(__name__)

# implicit mixed precision: TensorRT names layers after the ONNX nodes (legacy exporter scopes); the encoder's
# layer names come from precision/mixed.py (ENCODER_LAYERS), where the encoder is defined once
PREPROCESSING_LAYERS = r"^/(Cast|Transpose|Sub|Div|Gather|Mul|Add)(_\d+)?$"


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: Precision,
    calibration: Any = None,
    *,
    builder: str = "tensorrt",
    implicit: bool = False,
    workspace_mib: int | None = None,
    timing_cache: str | Path | None = None,
    opt_level: int | None = None,
    dla_core: int = -1,
    device: int = 0,
    source_sha256: str | None = None,
    build_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
    scales_from: str | Path | None = None,
) -> EngineMetadata:
    """Build ``engine_path`` from ``onnx_path`` and write ``engine_path.with_suffix('.json')``.

    ``onnx_path`` is the precision variant made by ``trt_segmentation.precision.make_variant`` (explicit path), or,
    with ``implicit=True``, the FP32 ONNX plus ``calibration`` (a CalibrationSet or a source string) for INT8.
    ``scales_from`` (implicit INT8/mixed): the explicit int8/mixed variant whose Q/DQ activation scales TensorRT
    takes as its calibration table (calibration_table.py) instead of calibrating on ``calibration`` images.
    ``builder``: ``tensorrt`` (the default: an engine the node can load), ``tensorrt-rtx`` or ``auto``.
    ``workspace_mib``: the builder's workspace limit (build_request.workspace_limit_mib: None = 1 GiB on a Jetson,
    TensorRT's default elsewhere; 0 = no limit); the sidecar records the limit used, the engine's size and the device
    memory of one execution context.
    Raises :class:`TensorRTUnavailable` naming what to install when no suitable TensorRT is present, and
    InputError for a precision TensorRT never builds (int8-cpu, an ONNX Runtime CPU variant).
    """
    precision = tensorrt_precision(precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise MissingFile(f"ONNX file not found: {onnx_path}")
    trt = load_tensorrt(builder)
    contract = read_contract_dict(onnx_path)
    batch = int(contract.get("batch", 1))
    if batch_from_name(engine_path.name) != batch:  # the sidecar check would refuse the engine under that name
        expected = artifact_path(engine_path.parent, str(contract["model"]), int(contract["height"]),
                                 int(contract["width"]), precision, ".engine", batch=batch)
        raise InputError(f"{onnx_path.name} is a batch {batch} model, the engine name {engine_path.name} says batch "
                         f"{batch_from_name(engine_path.name)}; build it as {expected}")
    if implicit:
        if trt.builder != "tensorrt" or trt.major >= 11:
            raise TensorRTUnavailable(
                f"the implicit path (builder flags + calibrator) needs TensorRT 8.5-10.x; this is {trt.builder} "
                f"{trt.version}. Build the explicit variant ONNX instead (drop --implicit)."
            )
        if contract.get("precision", "fp32") != "fp32":
            raise InputError(f"the implicit path starts from the FP32 ONNX; {onnx_path} is {contract['precision']}")
        if not precision.implicit_ok and scales_from is None:  # its own scales come as a table (item 4 of #32)
            raise InputError(f"the implicit path calibrates with entropy only; {precision!r} needs the explicit path, "
                             "or its variant's own Q/DQ scales as the calibration table (scales_from)")
    else:
        problem = explicit_path_problem(trt, onnx_path)
        if problem:
            raise BuildError(problem)
    if dla_core >= 0 and precision is Precision.FP32:
        raise BuildError("DLA runs FP16 and INT8 only; build fp16, int8 or mixed for DLA (fp32 runs on the GPU)")
    named = Artifact.from_path(engine_path)
    named_core = named.dla_core if named is not None else -1
    if named_core != dla_core:  # the node and build_on_target look for <stem>.dla<N>.engine, GPU engines without it
        expected = Artifact(engine_path.parent, str(contract["model"]), int(contract["height"]),
                            int(contract["width"]), precision, ".engine", batch, dla_core).path
        raise InputError(f"the engine name {engine_path.name} says DLA core {named_core} (-1: the GPU), the build is "
                         f"for {dla_core}; build it as {expected}")
    if not implicit and contract.get("precision", "fp32") != precision:
        raise InputError(
            f"{onnx_path} holds the {contract.get('precision')} variant, not {precision}; make it with "
            f"{tool_command('calibrate')} or {tool_command('build_engine', '--precision', precision.value)}"
        )
    platform = platform_name()
    workspace = workspace_limit_mib(workspace_mib, platform)
    options = BuildOptions(
        workspace_mib=workspace,
        timing_cache=Path(timing_cache) if timing_cache else None,
        opt_level=opt_level,
        # DLA takes its precision from builder flags (FP16/INT8), so a DLA build is weakly typed where TensorRT
        # still has weak typing (< 11): the variant's Q/DQ still fixes the INT8 layers and its casts the FP16 ones
        strongly_typed=not implicit and (dla_core < 0 or (trt.builder == "tensorrt" and trt.major >= 11)),
        implicit=implicit,
        # on DLA also FP16 for an INT8 precision: layers without an INT8 scale (some Resize outputs, the MatMul, the
        # preprocessing) then stay on the DLA in FP16 instead of falling back to the GPU in FP32 (#32 item 4)
        fp16=precision.uses_fp16 or (dla_core >= 0 and precision.uses_int8),
        int8=precision.uses_int8,
        dla_core=dla_core,
        progress=progress,
        verbose=verbose,
    )
    calibrator = None
    calibration_info: dict[str, Any] = {
        "method": contract.get("extra", {}).get("calibration_method"),
        "set": contract.get("extra", {}).get("calibration_set"),
        "sha256": contract.get("extra", {}).get("calibration_set_sha256"),
    }
    # implicit INT8/mixed calibrated with the variant's own Q/DQ scales: the sidecar records that variant and its
    # hash as the table was written from it (a variant re-calibrated during the build is then caught as stale)
    table_from = Path(scales_from) if scales_from is not None and implicit and options.int8 else None
    scales_sha256: str | None = None
    if table_from is not None:
        scales_sha256 = sha256_file(table_from)
        calibrator, calibration_info = _table_calibrator(onnx_path, engine_path, table_from, trt, device)
        options = replace(options, int8_calibrator=calibrator)
    elif implicit and options.int8:
        calibrator, calibration_info = _implicit_calibrator(onnx_path, engine_path, calibration, device)
        options = replace(options, int8_calibrator=calibrator)
    if implicit and options.int8:
        if precision is Precision.MIXED:  # encoder INT8, everything after it FP16, preprocessing FP32
            from ..precision.mixed import ENCODER_LAYERS

            options = replace(options, fp16_layers=[f"^(?!{ENCODER_LAYERS})"], fp32_layers=[PREPROCESSING_LAYERS])
    LOG.info("building %s with %s %s (%s typing), workspace limit %s", engine_path.name, trt.builder, trt.version,
             typing_of(trt, options), f"{workspace} MiB" if workspace is not None else "TensorRT's default")
    try:
        with _device_context(device):
            result = build_serialized(trt, onnx_path, options)
    except BuildError as exc:  # the calibrator's own reason (a table TensorRT did not take) before TensorRT's line
        failure = calibrator_failure(calibrator)
        if failure:
            raise BuildError(f"implicit INT8 calibration of {engine_path.name} failed: {failure}. {exc}") from exc
        raise
    finally:
        if calibrator is not None:
            calibrator.close()
    failure = calibrator_failure(calibrator)
    if failure:  # TensorRT read the failure as "no more data" and built on part of the inputs: not an engine to keep
        raise BuildError(f"implicit INT8 calibration of {engine_path.name} failed: {failure}")
    with _device_context(device):  # after the build: the builder's memory is given back by then
        device_memory = measure_device_memory(trt, result.engine, dla_core)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(result.engine)
    tmp.replace(engine_path)
    gpu_name, capability = gpu_identity(device)
    if trt.builder == "tensorrt-rtx" and gpu_name == "none":
        gpu_name = "none (TensorRT-RTX build without a GPU; JIT-specialised on first load)"
    opts = dict(build_options or {})
    # the file the engine was built from (fp32 on the implicit path), relative to the engine's folder, so that it
    # is found wherever that folder tree is copied, also when --out put the engine elsewhere
    opts["source_onnx"] = relative_source(onnx_path, engine_path)
    if table_from is not None:
        opts["scales_from"] = relative_source(table_from, engine_path)
    opts.update({"workspace_mib": workspace, "timing_cache": str(timing_cache) if timing_cache else None,
                 "opt_level": opt_level, "implicit": implicit, "builder": trt.builder, "tf32": options.tf32,
                 "build_seconds": round(result.seconds, 2), "layers": result.layers})
    meta = EngineMetadata(
        model=str(contract["model"]),
        height=int(contract["height"]),
        width=int(contract["width"]),
        precision=precision.value,
        tensorrt_version=trt.version,
        builder=trt.builder,
        typing=result.typing,
        gpu_name=gpu_name,
        compute_capability=capability,
        dla_core=dla_core,
        platform=platform,
        calibration_method=calibration_info.get("method"),
        calibration_set=calibration_info.get("set"),
        calibration_set_sha256=calibration_info.get("sha256"),
        onnx_sha256=sha256_file(onnx_path),
        source_sha256=source_sha256,
        scales_sha256=scales_sha256,
        inputs=result.inputs,
        outputs=result.outputs,
        build_options=opts,
        contract=contract,
        tool_version=tool_version(),
        batch=batch,
        engine_bytes=len(result.engine),
        device_memory_bytes=device_memory,
    )
    write_metadata(engine_path, meta)
    LOG.info("wrote %s (%s) and its metadata, built in %.1f s", engine_path, meta.memory_summary(), result.seconds)
    return meta


def relative_source(onnx_path: Path, engine_path: Path) -> str:
    """``onnx_path`` as the sidecar records it: relative to the engine's folder (``x.onnx`` beside it,
    ``../onnx/x.onnx`` elsewhere), absolute only where no relative path exists (another drive)."""
    import os

    try:
        return Path(os.path.relpath(onnx_path.resolve(), engine_path.resolve().parent)).as_posix()
    except ValueError:
        return str(onnx_path.resolve())


def calibrator_failure(calibrator: Any) -> str | None:
    """The failure the implicit calibrator kept while TensorRT called it (None without one)."""
    core = getattr(calibrator, "core", None)
    return getattr(core, "error", None) if core is not None else None


def _table_calibrator(onnx_path: Path, engine_path: Path, variant: Path, trt: TensorRT,
                      device: int = 0) -> tuple[Any, dict[str, Any]]:
    """The implicit calibrator that hands TensorRT the Q/DQ scales of ``variant`` (no images)."""
    from .calibration_table import table_path, write_table_from_variant
    from .implicit_calibrator import EntropyCalibrator

    table = write_table_from_variant(variant, onnx_path, table_path(engine_path), trt.version)
    LOG.info("implicit INT8: TensorRT takes the activation scales of %s (%s)", variant.name, table)
    extra = read_contract_dict(variant).get("extra", {})
    calibrator = EntropyCalibrator(None, table, read_contract(onnx_path), device=device, table=table.read_bytes())
    return calibrator, {"method": f"qdq-table (the Q/DQ scales of {variant.name}: "
                                  f"{extra.get('calibration_method', 'calibrated on the build side')})",
                        "set": extra.get("calibration_set"), "sha256": extra.get("calibration_set_sha256")}


def _implicit_calibrator(
    onnx_path: Path, engine_path: Path, calibration: Any, device: int = 0
) -> tuple[Any, dict[str, Any]]:
    if calibration is None:
        raise InputError("INT8 on the implicit path needs calibration images (--calibration)")
    from ..precision.calibration_data import CalibrationSet, load_calibration_set
    from .implicit_calibrator import EntropyCalibrator, calibration_table_path

    model_contract = read_contract(onnx_path)
    if not isinstance(calibration, CalibrationSet):
        calibration = load_calibration_set(calibration, model_contract)
    table = calibration_table_path(engine_path.parent, engine_path.stem, sha256_file(onnx_path), calibration.sha256)
    calibrator = EntropyCalibrator(calibration.frames, table, model_contract, device=device)
    return calibrator, {"method": "entropy (TensorRT EntropyCalibration2)", "set": calibration.description,
                        "sha256": calibration.sha256}


class _device_context:  # noqa: N801 - used as a context manager
    """Makes ``device``'s primary CUDA context current around a build (TensorRT builds on the current device);
    device 0 needs nothing (TensorRT's default), so the builder imports no pycuda there."""

    def __init__(self, device: int) -> None:
        self.device = device
        self._context: Any = None

    def __enter__(self) -> None:
        if self.device != 0:
            from ..cuda_driver import CudaUnavailable, load_pycuda

            try:
                cuda = load_pycuda()
            except CudaUnavailable as exc:
                raise BuildError(f"building for CUDA device {self.device} needs pycuda: {exc}") from exc
            self._context = cuda.Device(self.device).retain_primary_context()
            self._context.push()

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.pop()
            self._context.detach()


def tensorrt_precision(precision: Precision) -> Precision:
    """``precision`` if TensorRT builds it; InputError for the ONNX Runtime CPU variant (int8-cpu), whose uint8
    asymmetric Q/DQ is made for ONNX Runtime's CPU kernels and never given to TensorRT."""
    if not precision.tensorrt:
        raise InputError(f"{precision.value} is an ONNX Runtime CPU variant and is never built into a TensorRT engine; "
                         "run it with backend onnxruntime, or build int8 or mixed for TensorRT")
    return precision


def explicit_path_problem(trt: TensorRT, variant_onnx: str | Path) -> str:
    """Why the installed TensorRT's parser cannot take ``variant_onnx`` on the explicit path ('' if it can):
    its opset is newer than that parser documents (engine/parser_support.py)."""
    from .parser_support import max_opset

    if trt.builder != "tensorrt":
        return ""
    newest = max_opset(trt.version)
    opset = read_onnx_opset(variant_onnx)
    if newest is not None and opset > newest:
        return (f"{Path(variant_onnx).name} is opset {opset}; the TensorRT {trt.version} ONNX parser documents opsets "
                f"up to {newest}. Build it the implicit way ({tool_command('build_on_target')}: the FP32 ONNX with "
                "builder flags, calibrated with the variant's own Q/DQ scales), or re-make the variant with this "
                f"version of {tool_command('build_engine')} (INT8 variants are written at opset 17)")
    return ""


def build_path(trt: TensorRT, precision: Precision, variant_onnx: str | Path | None,
               dla_core: int = -1) -> BuilderKind:
    """Explicit or implicit: the way the installed TensorRT can build ``precision``. Explicit (the variant
    ONNX) wherever its parser takes the variant; implicit (FP32 ONNX + flags + calibrator) on TensorRT 8.5-10.x
    when it does not (mixed precision is opset 19 there: its FP16 Q/DQ inputs need opset 19), and for INT8 on a
    DLA core before TensorRT 10 (``dla_core`` >= 0): the DLA of TensorRT 8.x does not take Q/DQ networks
    (NVIDIA/TensorRT issue 2222), so the Q/DQ layers would fall back to the GPU or fail; the implicit build with
    the variant's own scales as its table (calibration_table.py) quantizes the same tensors the same way."""
    member = tensorrt_precision(precision)
    if dla_core >= 0 and member.uses_int8 and trt.builder == "tensorrt" and trt.major < 10:
        return BuilderKind.IMPLICIT
    if variant_onnx is not None and Path(variant_onnx).is_file() and not explicit_path_problem(trt, variant_onnx):
        return BuilderKind.EXPLICIT
    if trt.builder == "tensorrt" and trt.major < 11 and member.implicit_ok:
        return BuilderKind.IMPLICIT
    return BuilderKind.EXPLICIT
