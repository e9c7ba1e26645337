"""The one-command build pipeline of tools/build_engine.py: checkpoint -> FP32 ONNX -> precision variants ->
TensorRT engines with sidecars, each step reported. It sits above the layers it drives (models, export, precision,
engine); none of them imports it. It takes a :class:`~trt_segmentation.build_request.BuildRequest` (the tool's
flags, typed); ``BuildRequest.batch`` is the static batch (frames per run, one per camera in
multi-camera mode): every artifact of a batch N > 1 is named ``<model>_<H>x<W>_b<N>_<precision>.*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..artifacts import Artifact, BuilderKind, Precision, artifact_path
from ..build_request import BuildRequest
from ..engine.builder import build_engine, build_path, explicit_path_problem
from ..engine.metadata import on_target_command, rebuild_command
from ..engine.tensorrt_adapter import BuildError, TensorRTUnavailable, load_tensorrt
from ..errors import InputError, SegmentationError
from ..hashing import sha256_file
from ..onnx_metadata import read_contract_dict

#: the build machine's variant tools: the export, ModelOpt (FP16 AutoCast, INT8 Q/DQ) and the calibration need it
VARIANT_TOOLS = "torch"


class BuildMachineOnly(ValueError, SegmentationError):
    """The request needs the build machine's tools (torch, ModelOpt), which are not installed here."""


@dataclass
class PipelineStep:
    precision: Precision
    onnx: Path | None = None
    engine: Path | None = None
    check: str = ""
    skipped: str = ""  # why no engine was written
    seconds: float = 0.0


def export_fp32(req: BuildRequest, log: Callable[[str], None]) -> tuple[Path, str | None]:
    """The FP32 ONNX to start from: ``req.onnx`` as given (size and batch checked), or exported from
    ``req.checkpoint`` at ``req.size`` with ``req.batch`` frames per run."""

    if req.batch < 1:
        raise InputError(f"batch must be at least 1, got {req.batch}")
    if req.onnx is not None:
        contract = read_contract_dict(req.onnx)
        if req.size and (contract["height"], contract["width"]) != tuple(req.size):
            raise InputError(
                f"{req.onnx} was exported at {contract['height']}x{contract['width']}, not "
                f"{req.size[0]}x{req.size[1]}; re-export it (tools/export_onnx.py --size) or drop --size"
            )
        onnx_batch = int(contract.get("batch", 1))
        if onnx_batch != req.batch:
            raise InputError(
                f"{req.onnx} was exported with batch {onnx_batch}, not {req.batch}; re-export it "
                f"(tools/export_onnx.py --batch {req.batch}) or pass --batch {onnx_batch}"
            )
        return req.onnx, None
    if req.checkpoint is None or req.size is None:
        raise InputError("give --onnx FP32_ONNX, or --checkpoint PT together with --size HxW")
    from ..export import ExportOptions, export_onnx
    from ..models import load_checkpoint

    source_sha = sha256_file(req.checkpoint)
    model = load_checkpoint(req.checkpoint)
    out = artifact_path(req.out_dir, model.arch.name, req.size[0], req.size[1], Precision.FP32, ".onnx", batch=req.batch)
    log(f"exporting {req.checkpoint} -> {out}")
    export_onnx(model, out, ExportOptions(req.size[0], req.size[1], req.input_format, batch=req.batch))
    return out, source_sha


def variant_tools_installed() -> bool:
    """True where the variants other than fp32 can be made (:data:`VARIANT_TOOLS` is installed: the build
    machine); False on a vehicle, which builds engines from a folder of variants (trt_seg_build_on_target)."""
    from importlib.util import find_spec

    try:
        return find_spec(VARIANT_TOOLS) is not None
    except ImportError:  # an import hook that refuses it (the tests' blocked imports)
        return False


def torch_free_fp16(req: BuildRequest, precision: Precision) -> bool:
    """FP16 from an FP32 ONNX where the variant tools are missing: TensorRT builds it from the FP32 ONNX with its
    FP16 builder flag (the implicit path, TensorRT 8.5-10.x), no FP16 variant needed."""
    return precision is Precision.FP16 and not req.implicit and not variant_tools_installed()


def check_variant_tools(req: BuildRequest) -> None:
    """Raise :class:`BuildMachineOnly`, one line naming the build machine's command, for what cannot be made
    without :data:`VARIANT_TOOLS` (the export of a checkpoint, the fp16/INT8/mixed/int8-cpu ONNX variants); fp32
    and fp16 engines from an FP32 ONNX, and ``--implicit`` builds, need no torch."""
    if variant_tools_installed():
        return
    if req.checkpoint is not None:
        raise BuildMachineOnly(f"--checkpoint needs {VARIANT_TOOLS} (the export), not installed here: run this command "
                               "on the build machine, or pass --onnx with the FP32 ONNX it exported")
    if req.implicit:
        return
    # fp16 is an engine from the FP32 ONNX (torch_free_fp16); as an ONNX variant of its own (--builder none) it
    # needs the tools too
    need: list[Precision] = [p for p in req.precisions if p is not Precision.FP32 and (p is not Precision.FP16 or req.builder == "none")]
    if need:
        engines = [p for p in need if p.tensorrt]
        contract = read_contract_dict(req.onnx) if req.onnx is not None and req.onnx.is_file() else {}
        size = (int(contract["height"]), int(contract["width"])) if contract else req.size
        on_target = on_target_command(req.out_dir, engines, size, req.batch, model=contract.get("model"),
                                      dla_core=req.dla_core)  # the engine names the target looks for (.dla<N>)
        raise BuildMachineOnly(
            f"{' '.join(p.value for p in need)} need{'s' if len(need) == 1 else ''} the build machine's variant tools "
            f"({VARIANT_TOOLS}, ModelOpt), not installed here: make the variants there with "
            f"`{rebuild_command(replace(req, precisions=need, builder='none'))}`"
            + (f", copy {req.out_dir} here and build their engines with "
               f"`{on_target}`" if engines else ""))


def _fp32_in_out_dir(fp32: Path, out_dir: Path, model: str, height: int, width: int, batch: int,
                     log: Callable[[str], None]) -> Path:
    """The FP32 ONNX inside ``out_dir`` under its artifact name (copied there from ``--onnx`` when it is
    elsewhere): the folder of variants is what goes to the target, whose implicit path builds from this file."""
    import shutil

    target = artifact_path(out_dir, model, height, width, Precision.FP32, ".onnx", batch=batch)
    if target.exists() and target.resolve() == Path(fp32).resolve():
        return Path(fp32)
    if not target.exists() or sha256_file(target) != sha256_file(fp32):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(fp32, target)
        log(f"copied {fp32} -> {target} (the folder of variants holds the FP32 ONNX the target builds from)")
    return target


def run_pipeline(req: BuildRequest, log: Callable[[str], None] = print) -> list[PipelineStep]:
    """Checkpoint/ONNX -> every requested ONNX variant (checked with the TensorRT(-RTX) parser and builder) ->
    engines + metadata where a TensorRT that can make them is installed; each step says what it did or why not."""
    import time

    from ..engine.tensorrt_parse_check import check_onnx
    from ..precision.calibration_data import CalibrationSet, parse_source
    from ..precision.variants import make_variant, needs_calibration, read_fp32_contract

    check_variant_tools(req)  # also in commands/build_engine.py, before its calibration check (see there)
    # the request's calibration text parsed once (a misspelt source fails before the export), read once below:
    # every variant and implicit engine of this build gets the same loaded frames
    source = (parse_source(req.calibration, count=req.calibration_count, batch_size=req.calibration_batch)
              if req.calibration and any(needs_calibration(p) for p in req.precisions) else None)
    fp32, source_sha = export_fp32(req, log)
    contract = read_fp32_contract(fp32)
    fp32 = _fp32_in_out_dir(fp32, req.out_dir, contract.model, contract.height, contract.width, contract.batch, log)
    calibration: CalibrationSet | None = None
    if source is not None:
        log(f"reading up to {source.count} calibration frames from {req.calibration}")
        calibration = source.load(contract)
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
    for index, precision in enumerate(req.precisions, 1):  # members: BuildRequest.from_args parsed them
        start = time.perf_counter()
        log(f"[{index}/{len(req.precisions)}] {precision}")
        step = PipelineStep(precision)
        variant_path = artifact_path(req.out_dir, contract.model, contract.height, contract.width, precision, ".onnx",
                                     batch=contract.batch)
        if not precision.tensorrt and req.implicit:
            raise InputError(f"{precision} is an ONNX Runtime CPU variant: it has no implicit TensorRT path (drop "
                             "--implicit, or build it in a separate call)")
        fp16_flag = torch_free_fp16(req, precision)
        implicit = req.implicit or fp16_flag
        if implicit:
            step.onnx = fp32
            if fp16_flag:
                log(f"  ONNX variant: not made ({VARIANT_TOOLS} is not installed here); TensorRT builds {precision} "
                    "from the FP32 ONNX with its FP16 flag (the implicit path, TensorRT 8.5-10.x)")
        else:
            report = make_variant(fp32, precision, variant_path, calibration, use_cache=req.use_cache,
                                  mixed_config=req.mixed_config)
            step.onnx = report.path
            log(f"  ONNX variant: {report.path} ({report.seconds:.1f} s{'; ' + '; '.join(report.notes) if report.notes else ''})")
        if not precision.tensorrt:  # int8-cpu: never given to TensorRT (no parse/build check, no engine)
            step.check = step.skipped = CPU_ONLY_NOTE
            log(f"  TensorRT-RTX check and engine: {CPU_ONLY_NOTE}")
        elif not implicit:
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
            engine = Artifact(req.out_dir, contract.model, contract.height, contract.width, precision, ".engine",
                              contract.batch, req.dla_core).path  # <stem>.dla<N>.engine for a DLA core
            implicit = implicit or build_path(trt, precision, step.onnx, dla_core=req.dla_core) is BuilderKind.IMPLICIT
            scales_from = None
            # no variant (None): whether this TensorRT has the implicit path for fp16 at all (build_path's rule)
            if fp16_flag and build_path(trt, precision, None, dla_core=req.dla_core) is not BuilderKind.IMPLICIT:
                raise BuildMachineOnly(
                    f"{trt.builder} {trt.version} builds strongly typed networks only: fp16 needs its FP16 variant, "
                    f"made where {VARIANT_TOOLS} is installed (`{rebuild_command(req)}`)")
            if implicit and not req.implicit and not fp16_flag:
                problem = explicit_path_problem(trt, step.onnx).split(";")[0] or "DLA takes no Q/DQ network here"
                log(f"  TensorRT {trt.version} builds {precision} the implicit way ({problem})"
                    + (f", INT8 scales from {Path(step.onnx).name}" if precision.uses_int8 else ""))
                # the variant just made carries the calibrated scales: the implicit engine takes them as its
                # calibration table (engine/calibration_table.py), so it quantizes as the variant does
                scales_from = step.onnx if precision.uses_int8 else None
                step.onnx = fp32
            meta = build_engine(step.onnx, engine, precision, calibration if implicit and scales_from is None else None,
                         scales_from=scales_from, builder=trt.builder,
                         implicit=implicit, workspace_mib=req.workspace_mib, timing_cache=req.timing_cache,
                         opt_level=req.opt_level, dla_core=req.dla_core, source_sha256=source_sha,
                         build_options=dict(req.to_options(), precision=precision),
                         progress=lambda line: log(f"    {line}"), verbose=req.verbose)
            step.engine = engine
            log(f"  engine: {engine} (+ {engine.with_suffix('.json').name}): {meta.memory_summary()}")
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
