"""ONNX precision variant -> serialized TensorRT engine + JSON metadata sidecar.

Two paths: *explicit* (default) builds the variant ONNX whose precision is already in the graph (FP16 casts,
Q/DQ) as a strongly typed network on TensorRT >= 10 and TensorRT-RTX, or with the matching builder flags on
TensorRT 8.5-9.x; *implicit* builds the FP32 ONNX with FP16/INT8 builder flags and an IInt8EntropyCalibrator2
(TensorRT 8.5-10.x only). Imports nothing heavy at module level: the node calls :func:`build_engine` on a Jetson
that has TensorRT and numpy but no torch, onnx or modelopt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..artifacts import Precision
from ..hashing import sha256_file
from .metadata import EngineMetadata, tool_version, write_metadata
from .tensorrt_adapter import (
    BuildError,
    BuildOptions,
    TensorRT,
    TensorRTUnavailable,
    build_serialized,
    gpu_identity,
    load_tensorrt,
    platform_name,
)

LOG = logging.getLogger(__name__)

# implicit mixed precision: TensorRT names layers after the ONNX nodes (legacy exporter scopes)
ENCODER_LAYERS = r"(/model)?/backbone/(conv1|bn1|relu|maxpool|layer[1-4])(/|$)"
PREPROCESSING_LAYERS = r"^/(Cast|Transpose|Sub|Div|Gather|Mul|Add)(_\d+)?$"



def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file without the onnx package (absent on a Jetson runtime image)."""
    return _read_onnx_header(path)[0]


def read_onnx_opset(path: str | Path) -> int:
    """The default-domain opset of an ONNX file, without the onnx package (0 if it names none)."""
    return _read_onnx_header(path)[1].get("", _read_onnx_header(path)[1].get("ai.onnx", 0))


def _read_onnx_header(path: str | Path) -> tuple[dict[str, str], dict[str, int]]:
    """(metadata_props, {opset domain: version}) by a walk over the top-level protobuf fields of ModelProto
    (field 14 = StringStringEntryProto{1: key, 2: value}; field 8 = OperatorSetIdProto{1: domain, 2: version})."""
    data = Path(path).read_bytes()
    props: dict[str, str] = {}
    opsets: dict[str, int] = {}
    pos = 0
    try:
        while pos < len(data):
            tag, pos = _varint(data, pos)
            field, wire = tag >> 3, tag & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(data, pos)
                if field == 14:
                    entry, key, value, end = pos, "", "", pos + size
                    while entry < end:
                        etag, entry = _varint(data, entry)
                        esize, entry = _varint(data, entry)
                        text = data[entry : entry + esize].decode("utf-8")
                        key, value = (text, value) if etag >> 3 == 1 else (key, text)
                        entry += esize
                    props[key] = value
                elif field == 8:
                    entry, domain, version, end = pos, "", 0, pos + size
                    while entry < end:
                        etag, entry = _varint(data, entry)
                        if etag & 7 == 0:
                            version, entry = _varint(data, entry)
                        else:
                            esize, entry = _varint(data, entry)
                            domain = data[entry : entry + esize].decode("utf-8")
                            entry += esize
                    opsets[domain] = version
                pos += size
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable ONNX file ({exc})") from exc
    return props, opsets


def read_contract_dict(path: str | Path) -> dict[str, Any]:
    from ..onnx_metadata import METADATA_KEY

    props = read_onnx_metadata(path)
    if METADATA_KEY not in props:
        raise ValueError(f"{path} was not exported by trt_segmentation (no '{METADATA_KEY}' metadata)")
    return dict(json.loads(props[METADATA_KEY]))


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    precision: str | Precision,
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
) -> EngineMetadata:
    """Build ``engine_path`` from ``onnx_path`` and write ``engine_path.with_suffix('.json')``.

    ``onnx_path`` is the precision variant made by ``trt_segmentation.precision.make_variant`` (explicit path), or,
    with ``implicit=True``, the FP32 ONNX plus ``calibration`` (a CalibrationSet or a source string) for INT8.
    ``builder``: ``tensorrt`` (the default: an engine the node can load), ``tensorrt-rtx`` or ``auto``.
    Raises :class:`TensorRTUnavailable` naming what to install when no suitable TensorRT is present, and
    ValueError for a precision TensorRT never builds (int8-cpu, an ONNX Runtime CPU variant).
    """
    precision = tensorrt_precision(precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    trt = load_tensorrt(builder)
    contract = read_contract_dict(onnx_path)
    if implicit:
        if trt.builder != "tensorrt" or trt.major >= 11:
            raise TensorRTUnavailable(
                f"the implicit path (builder flags + calibrator) needs TensorRT 8.5-10.x; this is {trt.builder} "
                f"{trt.version}. Build the explicit variant ONNX instead (drop --implicit)."
            )
        if contract.get("precision", "fp32") != "fp32":
            raise ValueError(f"the implicit path starts from the FP32 ONNX; {onnx_path} is {contract['precision']}")
        if not precision.implicit_ok:
            raise ValueError(f"the implicit path calibrates with entropy only; {precision!r} needs the explicit path")
    else:
        problem = explicit_path_problem(trt, onnx_path)
        if problem:
            raise BuildError(problem)
    if dla_core >= 0 and precision is Precision.FP32:
        raise BuildError("DLA runs FP16 and INT8 only; build fp16, int8 or mixed for DLA (fp32 runs on the GPU)")
    if not implicit and contract.get("precision", "fp32") != precision:
        raise ValueError(
            f"{onnx_path} holds the {contract.get('precision')} variant, not {precision}; make it with "
            f"tools/calibrate.py or tools/build_engine.py --precision {precision}"
        )
    options = BuildOptions(
        workspace_mib=workspace_mib,
        timing_cache=Path(timing_cache) if timing_cache else None,
        opt_level=opt_level,
        # DLA takes its precision from builder flags (FP16/INT8), so a DLA build is weakly typed where TensorRT
        # still has weak typing (< 11): the variant's Q/DQ still fixes the INT8 layers and its casts the FP16 ones
        strongly_typed=not implicit and (dla_core < 0 or (trt.builder == "tensorrt" and trt.major >= 11)),
        implicit=implicit,
        fp16=precision.uses_fp16,
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
    if implicit and options.int8:
        calibrator, calibration_info = _implicit_calibrator(onnx_path, engine_path, contract, calibration, device)
        options = replace(options, int8_calibrator=calibrator)
        if precision is Precision.MIXED:  # encoder INT8, everything after it FP16, preprocessing FP32
            options = replace(options, fp16_layers=[f"^(?!{ENCODER_LAYERS})"], fp32_layers=[PREPROCESSING_LAYERS])
    LOG.info("building %s with %s %s (%s typing)", engine_path.name, trt.builder, trt.version,
             "strong" if not implicit else "implicit")
    try:
        with _device_context(device):
            result = build_serialized(trt, onnx_path, options)
    finally:
        if calibrator is not None:
            calibrator.close()
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(result.engine)
    tmp.replace(engine_path)
    gpu_name, capability = gpu_identity(device)
    if trt.builder == "tensorrt-rtx" and gpu_name == "none":
        gpu_name = "none (TensorRT-RTX build without a GPU; JIT-specialised on first load)"
    opts = dict(build_options or {})
    opts["source_onnx"] = Path(onnx_path).name  # the file the engine was built from (fp32 on the implicit path)
    opts.update({"workspace_mib": workspace_mib, "timing_cache": str(timing_cache) if timing_cache else None,
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
        platform=platform_name(),
        calibration_method=calibration_info.get("method"),
        calibration_set=calibration_info.get("set"),
        calibration_set_sha256=calibration_info.get("sha256"),
        onnx_sha256=sha256_file(onnx_path),
        source_sha256=source_sha256,
        inputs=result.inputs,
        outputs=result.outputs,
        build_options=opts,
        contract=contract,
        tool_version=tool_version(),
    )
    write_metadata(engine_path, meta)
    LOG.info("wrote %s (%.1f MB, built in %.1f s) and its metadata", engine_path, len(result.engine) / 1e6, result.seconds)
    return meta


def _implicit_calibrator(
    onnx_path: Path, engine_path: Path, contract: dict[str, Any], calibration: Any, device: int = 0
) -> tuple[Any, dict[str, Any]]:
    if calibration is None:
        raise ValueError("INT8 on the implicit path needs calibration images (--calibration)")
    from ..onnx_metadata import ModelContract
    from ..precision.calibration_data import CalibrationSet, load_calibration_set
    from .implicit_calibrator import EntropyCalibrator, calibration_table_path

    model_contract = ModelContract.from_json(json.dumps(contract))
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


def tensorrt_precision(precision: str | Precision) -> Precision:
    """``precision`` as a member TensorRT builds; ValueError for the ONNX Runtime CPU variant (int8-cpu), whose
    uint8 asymmetric Q/DQ is made for ONNX Runtime's CPU kernels and never given to TensorRT."""
    member = Precision.parse(precision)
    if not member.tensorrt:
        raise ValueError(f"{member.value} is an ONNX Runtime CPU variant and is never built into a TensorRT engine; "
                         "run it with backend onnxruntime, or build int8 or mixed for TensorRT")
    return member


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
                f"up to {newest}. Build it the implicit way (tools/build_engine.py --implicit: the FP32 ONNX with "
                "builder flags and TensorRT's calibrator), or re-make the variant with this version of "
                "tools/build_engine.py (INT8 variants are written at opset 17)")
    return ""


def build_path(trt: TensorRT, precision: str | Precision, variant_onnx: str | Path | None) -> str:
    """'explicit' or 'implicit': the way the installed TensorRT can build ``precision``. Explicit (the variant
    ONNX) wherever its parser takes the variant; implicit (FP32 ONNX + flags + calibrator) on TensorRT 8.5-10.x
    when it does not (mixed precision is opset 19 there: its FP16 Q/DQ inputs need opset 19)."""
    if variant_onnx is not None and Path(variant_onnx).is_file() and not explicit_path_problem(trt, variant_onnx):
        return "explicit"
    if trt.builder == "tensorrt" and trt.major < 11 and tensorrt_precision(precision).implicit_ok:
        return "implicit"
    return "explicit"


def build_missing_engine(engine_path: str | Path, precision: str | Precision, *, calibration: Any = None,
                         progress: Callable[[str], None] | None = None) -> EngineMetadata:
    """What the node's ``build_engine_if_missing`` calls: build ``engine_path`` the way the installed TensorRT
    needs, from the files next to it (``<stem>.onnx``, the variant; ``<model>_<H>x<W>_fp32.onnx`` for the implicit
    path). INT8/mixed on the implicit path need ``calibration`` (or fail naming the command that has it)."""
    engine_path = Path(engine_path)
    precision = tensorrt_precision(precision)
    trt = load_tensorrt("tensorrt")
    variant = engine_path.with_suffix(".onnx")
    path = build_path(trt, precision, variant)
    if path == "explicit":
        if not variant.is_file():
            raise FileNotFoundError(f"cannot build {engine_path}: its source {variant} is missing")
        return build_engine(variant, engine_path, precision, progress=progress)
    fp32 = engine_path.with_name(engine_path.name.replace(f"_{precision.value}.engine", "_fp32.onnx"))
    if not fp32.is_file():
        raise FileNotFoundError(f"cannot build {engine_path} the implicit way (TensorRT {trt.version}): its source "
                                f"{fp32} is missing")
    if precision.uses_int8 and calibration is None:
        raise BuildError(f"TensorRT {trt.version} builds {precision} the implicit way, which calibrates on images: "
                         f"run tools/build_engine.py --onnx {fp32} --precision {precision} --implicit --calibration "
                         "<images> on this machine")
    return build_engine(fp32, engine_path, precision, calibration, implicit=True, progress=progress)


# ------------------------------------------------------------------------------------------ the one-command pipeline


@dataclass
class PipelineRequest:
    """What tools/build_engine.py asks for: a checkpoint or FP32 ONNX, precisions, calibration, build options."""

    precisions: list[Precision]
    checkpoint: Path | None = None
    onnx: Path | None = None
    size: tuple[int, int] | None = None  # required with a checkpoint; checked against an ONNX
    input_format: str = "uint8_rgb"
    calibration: str | None = None
    calibration_count: int = 64
    calibration_batch: int = 8
    mixed_config: Path | None = None
    out_dir: Path = Path("artifacts")
    builder: str = "auto"  # auto | tensorrt | tensorrt-rtx | none (variants only)
    implicit: bool = False
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    opt_level: int | None = None
    dla_core: int = -1
    use_cache: bool = True
    verbose: bool = False


@dataclass
class PipelineStep:
    precision: Precision
    onnx: Path | None = None
    engine: Path | None = None
    check: str = ""
    skipped: str = ""  # why no engine was written
    seconds: float = 0.0


def _rebuild_options(req: PipelineRequest) -> dict[str, Any]:
    return {
        "checkpoint": str(req.checkpoint) if req.checkpoint else None,
        "onnx": str(req.onnx) if req.onnx and not req.checkpoint else None,
        "size": f"{req.size[0]}x{req.size[1]}" if req.size else None,
        "calibration": req.calibration,
        "calibration_count": req.calibration_count if req.calibration else None,
        "mixed_config": str(req.mixed_config) if req.mixed_config else None,
        "out_dir": str(req.out_dir),
        "workspace_mib": req.workspace_mib,
        "timing_cache": str(req.timing_cache) if req.timing_cache else None,
        "opt_level": req.opt_level,
        "dla_core": req.dla_core,
        "implicit": req.implicit,
    }


def export_fp32(req: PipelineRequest, log: Callable[[str], None]) -> tuple[Path, str | None]:
    """The FP32 ONNX to start from: ``req.onnx`` as given (size checked), or exported from ``req.checkpoint``."""
    from ..artifacts import artifact_path

    if req.onnx is not None:
        contract = read_contract_dict(req.onnx)
        if req.size and (contract["height"], contract["width"]) != tuple(req.size):
            raise ValueError(
                f"{req.onnx} was exported at {contract['height']}x{contract['width']}, not "
                f"{req.size[0]}x{req.size[1]}; re-export it (tools/export_onnx.py --size) or drop --size"
            )
        return req.onnx, None
    if req.checkpoint is None or req.size is None:
        raise ValueError("give --onnx FP32_ONNX, or --checkpoint PT together with --size HxW")
    from ..export import ExportOptions, export_onnx
    from ..models import load_checkpoint

    source_sha = sha256_file(req.checkpoint)
    model = load_checkpoint(req.checkpoint)
    out = artifact_path(req.out_dir, model.arch.name, req.size[0], req.size[1], "fp32", ".onnx")
    log(f"exporting {req.checkpoint} -> {out}")
    export_onnx(model, out, ExportOptions(req.size[0], req.size[1], req.input_format))
    return out, source_sha


def run_pipeline(req: PipelineRequest, log: Callable[[str], None] = print) -> list[PipelineStep]:
    """Checkpoint/ONNX -> every requested ONNX variant (checked with the TensorRT(-RTX) parser and builder) ->
    engines + metadata where a TensorRT that can make them is installed; each step says what it did or why not."""
    import time

    from ..artifacts import artifact_path
    from ..precision.calibration_data import load_calibration_set
    from ..precision.variants import make_variant, needs_calibration, read_fp32_contract
    from .tensorrt_parse_check import check_onnx

    fp32, source_sha = export_fp32(req, log)
    contract = read_fp32_contract(fp32)
    calibration = None
    if req.calibration and any(needs_calibration(p) for p in req.precisions):
        log(f"reading up to {req.calibration_count} calibration frames from {req.calibration}")
        calibration = load_calibration_set(req.calibration, contract, req.calibration_count, req.calibration_batch)
        log(f"  {len(calibration)} frames, sha256 {calibration.sha256[:12]}...")
    trt = None
    no_engine_reason = ""
    if req.builder != "none":
        try:
            trt = load_tensorrt(req.builder)
        except TensorRTUnavailable as exc:
            no_engine_reason = str(exc)
        if trt is not None and req.builder == "auto" and trt.builder == "tensorrt-rtx":
            trt, no_engine_reason = None, NO_ENGINE_HELP
    steps = []
    for index, name in enumerate(req.precisions, 1):
        precision = Precision.parse(name)
        start = time.perf_counter()
        log(f"[{index}/{len(req.precisions)}] {precision}")
        step = PipelineStep(precision)
        variant_path = artifact_path(req.out_dir, contract.model, contract.height, contract.width, precision, ".onnx")
        if not precision.tensorrt and req.implicit:
            raise ValueError(f"{precision} is an ONNX Runtime CPU variant: it has no implicit TensorRT path (drop "
                             "--implicit, or build it in a separate call)")
        if req.implicit:
            step.onnx = fp32
        else:
            report = make_variant(fp32, precision, variant_path, calibration, calibration_count=req.calibration_count,
                                  calibration_batch=req.calibration_batch, use_cache=req.use_cache,
                                  mixed_config=req.mixed_config)
            step.onnx = report.path
            log(f"  ONNX variant: {report.path} ({report.seconds:.1f} s{'; ' + '; '.join(report.notes) if report.notes else ''})")
        if not precision.tensorrt:  # int8-cpu: never given to TensorRT (no parse/build check, no engine)
            step.check = step.skipped = CPU_ONLY_NOTE
            log(f"  TensorRT-RTX check and engine: {CPU_ONLY_NOTE}")
        elif not req.implicit:
            try:
                check = check_onnx(step.onnx, build=True)
                step.check = check.summary()
                log(f"  TensorRT-RTX {'parse + build OK' if check.ok else 'FAILED'}: "
                    + (f"{check.layers} layers, {check.engine_bytes / 1e6:.1f} MB, {check.build_seconds:.1f} s" if check.ok
                       else "; ".join(check.errors)))
                if not check.ok:
                    raise BuildError(f"TensorRT-RTX cannot build {step.onnx}: {'; '.join(check.errors)}")
            except TensorRTUnavailable as exc:
                step.check = f"not checked: {exc}"
                log(f"  TensorRT-RTX check skipped: {exc}")
        if not precision.tensorrt:
            pass  # no engine: CPU_ONLY_NOTE above
        elif trt is None:
            step.skipped = no_engine_reason or "variants only (--builder none)"
            log("  engine: not built (needs TensorRT, see the end)" if trt is None and req.builder != "none"
                else "  engine: not built (--builder none)")
        else:
            engine = artifact_path(req.out_dir, contract.model, contract.height, contract.width, precision, ".engine")
            implicit = req.implicit or build_path(trt, precision, step.onnx) == "implicit"
            if implicit and not req.implicit:
                log(f"  TensorRT {trt.version} cannot parse {Path(step.onnx).name} "
                    f"({explicit_path_problem(trt, step.onnx).split(';')[0]}): building {precision} the implicit way")
                step.onnx = fp32
                if calibration is None and needs_calibration(precision):
                    raise ValueError(f"{precision} on the implicit path needs --calibration")
            build_engine(step.onnx, engine, precision, calibration if implicit else None, builder=trt.builder,
                         implicit=implicit, workspace_mib=req.workspace_mib, timing_cache=req.timing_cache,
                         opt_level=req.opt_level, dla_core=req.dla_core, source_sha256=source_sha,
                         build_options=dict(_rebuild_options(req), precision=precision),
                         progress=lambda line: log(f"    {line}"), verbose=req.verbose)
            step.engine = engine
            log(f"  engine: {engine} (+ {engine.with_suffix('.json').name})")
        step.seconds = time.perf_counter() - start
        steps.append(step)
    return steps


CPU_ONLY_NOTE = ("not applicable: an ONNX Runtime CPU variant, never given to TensorRT (run it with backend "
                 "onnxruntime)")
NO_ENGINE_HELP = (
    "only TensorRT-RTX is installed here; it proved the variant parses and builds, but its engines do not load "
    "in TensorRT on a Jetson/CUDA GPU. Run the same command where TensorRT is installed for .engine files "
    "(or pass --builder tensorrt-rtx for TensorRT-RTX engines for an RTX GPU)"
)
