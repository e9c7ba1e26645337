"""Engines from the folder of ONNX variants, on the machine that runs them (a Jetson): build a missing engine,
decide whether an existing one fits this TensorRT/GPU/module, and rebuild one that does not -- only when the
caller allows it, with the reason logged.

Needs only what a Jetson has (TensorRT, numpy, onnx for the Q/DQ scales of the implicit path): no torch, no
ModelOpt, no quantization tools. Each precision is built the way the installed TensorRT needs
(builder.py ``build_path``): explicit from ``<stem>.onnx`` where its parser takes that variant; implicit from the
FP32 ONNX beside it where it does not (mixed on TensorRT 8.5/8.6, and every INT8 DLA build before TensorRT 10),
calibrated with the variant's own Q/DQ scales as a TensorRT calibration table (calibration_table.py), so no
calibration images are needed; TensorRT's entropy calibrator over images stays available by name. Used by
``trt_seg_build_on_target``, ``trt_seg_check_on_target`` and the node (docs/vehicle.md).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..artifacts import Artifact, BuilderKind, Precision, batch_from_name
from ..errors import InputError, MissingFile, SegmentationError
from ..hashing import sha256_file
from .calibration_table import ImplicitCalibration
from .metadata import (
    ON_TARGET_TOOL as TOOL,
)
from .metadata import (
    EngineMetadata,
    MetadataError,
    check_compatible,
    on_target_command,
    read_metadata,
    rebuild_from_name,
    scales_sha256_of,
    source_onnx_path,
)

LOG = logging.getLogger(__name__)

_DLA_SUFFIX = re.compile(r"\.dla(\d+)$")


class EngineDoesNotFit(RuntimeError, SegmentationError):
    """An engine exists but does not fit this machine, and rebuilding it was not allowed."""


def variant_beside(engine_path: str | Path) -> Path:
    """The ONNX variant an engine is built from on the explicit path: ``<stem>.onnx`` (DLA suffix dropped)."""
    engine_path = Path(engine_path)
    return engine_path.with_name(_DLA_SUFFIX.sub("", engine_path.stem) + ".onnx")


def fp32_beside(engine_path: str | Path, precision: Precision) -> Path:
    """The FP32 ONNX beside it (the implicit path's source)."""
    variant = variant_beside(engine_path)
    suffix = f"_{precision.value}.onnx"
    if not variant.name.endswith(suffix):
        raise InputError(f"{Path(engine_path).name} is not named <model>_<H>x<W>[_b<N>]_{precision}.engine")
    return variant.with_name(variant.name[: -len(suffix)] + "_fp32.onnx")


def fit_problems(engine_path: str | Path, precision: Precision, *, device: int = 0) -> list[str]:
    """Why the existing ``engine_path`` cannot run here ([] when it can): no or unreadable sidecar, another
    TensorRT (or TensorRT-RTX), GPU or Jetson module, another precision or batch, an ONNX changed since, or (an
    implicit engine) a re-calibrated variant whose scales it took (metadata.scales_problem)."""
    from .tensorrt_adapter import gpu_identity, platform_name, real_tensorrt

    engine_path = Path(engine_path)
    try:
        meta = read_metadata(engine_path)
    except MetadataError as exc:  # the first clause says why; the caller adds the command
        return [str(exc).split(";")[0]]
    trt = real_tensorrt()
    capability = gpu_identity(device)[1]
    source = source_onnx_path(engine_path, meta)
    return check_compatible(
        meta, precision=precision, builder="tensorrt",
        tensorrt_version=trt.version if trt is not None else None,
        compute_capability=capability if capability != "none" else None,
        onnx_sha256=sha256_file(source) if source.is_file() else None, platform=platform_name(),
        batch=batch_from_name(engine_path.name), scales_sha256=scales_sha256_of(engine_path, meta))


def build_from_folder(engine_path: str | Path, precision: Precision, *, calibration: Any = None,
                      implicit_calibration: str | ImplicitCalibration | None = None, builder: str = "tensorrt",
                      device: int = 0, workspace_mib: int | None = None, timing_cache: str | Path | None = None,
                      opt_level: int | None = None, progress: Callable[[str], None] | None = None,
                      verbose: bool = False) -> EngineMetadata:
    """Build ``engine_path`` (``<model>_<H>x<W>[_b<N>]_<precision>[.dla<K>].engine``) from the files beside it.

    ``implicit_calibration`` (implicit INT8/mixed only): ``qdq-table`` (the default where the variant is there: its
    Q/DQ scales, no images) or ``tensorrt-entropy`` (TensorRT's calibrator over ``calibration`` images).
    ``workspace_mib``: the builder's workspace limit (None: 1 GiB on a Jetson, TensorRT's default elsewhere; 0: no
    limit; build_request.workspace_limit_mib)."""
    from .builder import build_engine, build_path, tensorrt_precision
    from .tensorrt_adapter import BuildError, load_tensorrt

    engine_path = Path(engine_path)
    precision = tensorrt_precision(precision)
    trt = load_tensorrt(builder)
    named = Artifact.from_path(engine_path)
    dla_core = named.dla_core if named is not None else -1
    variant = variant_beside(engine_path)
    path = build_path(trt, precision, variant, dla_core=dla_core)
    options: dict[str, Any] = {"builder": trt.builder, "dla_core": dla_core, "device": device, "progress": progress,
                               "workspace_mib": workspace_mib, "timing_cache": timing_cache, "opt_level": opt_level,
                               "verbose": verbose,
                               "build_options": {"on_target": True, "out_dir": str(engine_path.parent)}}
    if path is BuilderKind.EXPLICIT:
        if not variant.is_file():
            raise MissingFile(2, f"cannot build {engine_path}: its source ONNX variant is missing", str(variant))
        return build_engine(variant, engine_path, precision, **options)
    fp32 = fp32_beside(engine_path, precision)
    if not fp32.is_file():
        raise MissingFile(2, f"cannot build {engine_path} the implicit way (TensorRT {trt.version}): its source "
                                "FP32 ONNX is missing", str(fp32))
    if not precision.uses_int8:
        return build_engine(fp32, engine_path, precision, implicit=True, **options)
    method = ImplicitCalibration(implicit_calibration) if implicit_calibration else (
        ImplicitCalibration.QDQ_TABLE if variant.is_file() or calibration is None
        else ImplicitCalibration.TENSORRT_ENTROPY)
    if method is ImplicitCalibration.QDQ_TABLE:
        if not variant.is_file():
            raise MissingFile(2, f"cannot build {engine_path} the implicit way without calibration images: the "
                                    f"{precision} variant whose Q/DQ scales it takes is missing", str(variant))
        return build_engine(fp32, engine_path, precision, implicit=True, scales_from=variant, **options)
    if calibration is None:
        raise BuildError(f"TensorRT {trt.version} builds {precision} the implicit way; {method} calibrates on images: "
                         f"run {rebuild_from_name(engine_path)} --implicit-calibration {method} --calibration "
                         "<images>, or drop --implicit-calibration to use the variant's own scales")
    return build_engine(fp32, engine_path, precision, calibration, implicit=True, **options)


def ensure_engine(engine_path: str | Path, precision: Precision, *, rebuild: bool = False, device: int = 0,
                  calibration: Any = None, implicit_calibration: str | None = None, workspace_mib: int | None = None,
                  progress: Callable[[str], None] | None = None, log: Callable[[str], None] = LOG.info) -> str:
    """Make ``engine_path`` usable here: build it when it is missing; when it exists but does not fit
    (:func:`fit_problems`), rebuild it from the variants beside it if ``rebuild``, else raise
    :class:`EngineDoesNotFit` with the reasons and the command. Returns what it did: 'fits', 'built' or 'rebuilt'.
    What the node calls under its ``rebuild_engine`` parameter, and trt_seg_check_on_target --rebuild.
    ``workspace_mib`` as :func:`build_from_folder`'s."""
    engine_path = Path(engine_path)
    if engine_path.is_file():
        problems = fit_problems(engine_path, precision, device=device)
        if not problems:
            return "fits"
        reason = "; ".join(problems)
        if not rebuild:
            raise EngineDoesNotFit(f"engine {engine_path} does not fit this machine: {reason}. Rebuild it from the "
                                   f"variants beside it: {rebuild_from_name(engine_path)} (or allow it: "
                                   "rebuild_engine:=true for the node, --rebuild for check_on_target)")
        log(f"rebuilding {engine_path}: {reason}")
        action = "rebuilt"
    else:
        log(f"building {engine_path}: it is missing")
        action = "built"
    build_from_folder(engine_path, precision, calibration=calibration, implicit_calibration=implicit_calibration,
                      device=device, workspace_mib=workspace_mib, progress=progress)
    return action


__all__ = ["EngineDoesNotFit", "TOOL", "build_from_folder", "ensure_engine",
           "fit_problems", "fp32_beside", "on_target_command", "rebuild_from_name", "variant_beside"]
