"""The JSON sidecar written next to every engine: what it was built from, with what, for which GPU.

``<model>_<H>x<W>_<precision>.engine`` (``<model>_<H>x<W>_b<N>_<precision>.engine`` for a static batch N > 1)
gets ``<same>.json``. The node reads it before deserialising an engine so that a TensorRT upgrade, another GPU,
another precision, another batch or a re-exported ONNX leads to a rebuild (with the exact command printed) instead
of a crash or a silently stale engine. Pure Python + json: safe to import on a Jetson.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..artifacts import Artifact, ArtifactFolder, Precision, batch_from_name
from ..build_request import BuildRequest
from ..cli import tool_argv
from ..errors import SegmentationError
from .tensorrt_adapter import same_platform

SCHEMA_VERSION = 1
BUILDERS = ("tensorrt", "tensorrt-rtx")
# strong: strongly typed network, precision from the ONNX (TensorRT >= 10, TensorRT-RTX); weak: the same ONNX
# variant (casts, Q/DQ) with FP16/INT8 builder flags (TensorRT 8.5-9.x, DLA); implicit: the FP32 ONNX with builder
# flags and TensorRT's entropy calibrator (TensorRT 8.5-10.x)
TYPINGS = ("strong", "weak", "implicit")


class MetadataError(ValueError, SegmentationError):
    """The sidecar is missing, unreadable or does not follow the schema."""


@dataclass
class EngineMetadata:
    """Everything that decides whether an engine file may be reused (see :func:`check_compatible`)."""

    model: str
    height: int
    width: int
    precision: str  # a TensorRT Precision's value (fp32 | fp16 | int8 | ...), checked against Precision when read
    tensorrt_version: str
    builder: str  # 'tensorrt' | 'tensorrt-rtx'
    typing: str  # one of TYPINGS
    gpu_name: str
    compute_capability: str  # e.g. '8.7'; 'none' for a CPU-only TensorRT-RTX check build
    onnx_sha256: str
    dla_core: int = -1
    platform: str = ""  # the Jetson module (/proc/device-tree/model): Orin Nano, NX and AGX all report 8.7
    calibration_method: str | None = None
    calibration_set: str | None = None
    calibration_set_sha256: str | None = None
    source_sha256: str | None = None  # the checkpoint the ONNX was exported from, if known
    # implicit INT8/mixed with the variant's Q/DQ scales as calibration table (build_options['scales_from']): that
    # variant's sha256, so a re-calibrated variant makes the engine stale (None in sidecars written before #32)
    scales_sha256: str | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)  # [{name, shape, dtype}]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    build_options: dict[str, Any] = field(default_factory=dict)
    contract: dict[str, Any] = field(default_factory=dict)  # the ModelContract as a dict
    created_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    tool_version: str = ""
    schema_version: int = SCHEMA_VERSION
    batch: int = 1  # static frames per run; sidecars written before batching existed have none: batch 1
    engine_bytes: int | None = None  # the serialized engine's size (None: a sidecar from before it was recorded)
    # device memory each execution context allocates (activations, tactic scratch; tensorrt_adapter.device_memory_size),
    # measured on the build machine; None where the engine could not be deserialized there (TensorRT-RTX without a
    # GPU) or the sidecar predates it
    device_memory_bytes: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @property
    def variant(self) -> Precision:
        """:attr:`precision` as its type (:meth:`from_dict` checked the name when the sidecar was read)."""
        return Precision(self.precision)

    def memory_summary(self) -> str:
        """'engine 26.9 MiB, 118.0 MiB device memory per execution context' (what is known of the two)."""
        engine = f"engine {mib(self.engine_bytes)} MiB" if self.engine_bytes is not None else "engine size not recorded"
        if self.device_memory_bytes is None:
            return f"{engine}, device memory per execution context not measured"
        return f"{engine}, {mib(self.device_memory_bytes)} MiB device memory per execution context"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineMetadata:
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(n for n in required if n not in data)
        if missing:
            raise MetadataError(f"engine metadata lacks the field(s) {', '.join(missing)}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise MetadataError(
                f"engine metadata schema_version {version!r} is newer than this tool understands ({SCHEMA_VERSION})"
            )
        try:  # the sidecar read is an edge: its precision names a variant (kept as the value, as it was written)
            precision = Precision.parse(data["precision"]).value
        except ValueError as exc:
            raise MetadataError(f"engine metadata precision: {exc}") from None
        # unknown keys from a newer minor writer are ignored rather than fatal
        return cls(**{k: v for k, v in data.items() if k in names and k != "precision"}, precision=precision)


def mib(size: int) -> str:
    """``size`` bytes in MiB, one decimal ('26.9')."""
    return f"{size / (1 << 20):.1f}"


def metadata_path(engine_path: str | Path) -> Path:
    return Path(engine_path).with_suffix(".json")


def tool_version() -> str:
    from .. import __version__

    return f"trt_segmentation {__version__}"


def write_metadata(engine_path: str | Path, meta: EngineMetadata) -> Path:
    """Write ``engine_path`` with suffix ``.json`` atomically (a crash never leaves half a file)."""
    path = metadata_path(engine_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(meta.to_json() + "\n")
    tmp.replace(path)
    return path


def read_metadata(engine_path: str | Path) -> EngineMetadata:
    """Read the sidecar of ``engine_path`` (or the ``.json`` itself); :class:`MetadataError` says what is wrong."""
    path = metadata_path(engine_path)
    engine = Path(engine_path) if Path(engine_path).suffix != ".json" else path.with_suffix(".engine")
    if not path.is_file():
        raise MetadataError(
            f"engine metadata {path} is missing; the engine cannot be checked against this TensorRT/GPU. "
            f"Rebuild it from the ONNX variants beside it (it writes the .json next to the .engine): "
            f"{rebuild_from_name(engine)}"
        )
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"engine metadata {path} is corrupt ({exc}); rebuild it: {rebuild_from_name(engine)}"
                            ) from exc
    if not isinstance(data, dict):
        raise MetadataError(f"engine metadata {path} is corrupt (not a JSON object); rebuild it: "
                            f"{rebuild_from_name(engine)}")
    try:
        meta = EngineMetadata.from_dict(data)
    except (TypeError, MetadataError) as exc:
        raise MetadataError(f"engine metadata {path}: {exc}; rebuild it: {rebuild_from_name(engine)}") from exc
    problem = batch_problem(meta, path.name, path.parent)
    if problem:
        raise MetadataError(f"engine metadata {path}: {problem}")
    return meta


def scales_source(engine_path: str | Path, meta: EngineMetadata) -> Path | None:
    """The variant whose Q/DQ scales an implicit engine took as its calibration table (None for any other engine),
    recorded relative to the engine's folder as ``build_options['scales_from']``."""
    name = meta.build_options.get("scales_from") if isinstance(meta.build_options, dict) else None
    return Path(engine_path).parent / str(name) if name else None


def scales_sha256_of(engine_path: str | Path, meta: EngineMetadata) -> str | None:
    """The sha256 of the variant an implicit engine took its INT8 scales from (:func:`scales_source`), as it is now:
    what :func:`check_compatible` compares as ``scales_sha256``. None for any other engine, and where that variant
    is not beside the engine (not checked, as the source ONNX is not)."""
    from ..hashing import sha256_file

    variant = scales_source(engine_path, meta)
    return sha256_file(variant) if variant is not None and variant.is_file() else None


def scales_problem(meta: EngineMetadata, scales_sha256: str | None = None) -> str:
    """Why an implicit engine's INT8 scales are stale ('' if they are not, or the engine took none): its sidecar
    predates the hash of the variant it took them from, or (``scales_sha256``: that variant's hash now, None: not
    checked) the variant changed since the build (re-calibrated)."""
    name = meta.build_options.get("scales_from") if isinstance(meta.build_options, dict) else None
    if not name:
        return ""
    variant = Path(str(name)).name
    if not meta.scales_sha256:
        return (f"its sidecar does not record which version of {variant} its INT8 scales came from (written "
                "before that was recorded), so a re-calibrated variant would go unnoticed: it must be rebuilt once")
    if scales_sha256 is not None and scales_sha256 != meta.scales_sha256:
        return (f"{variant}, the variant whose Q/DQ scales it was calibrated with, changed since the build "
                f"(re-calibrated? sha256 {meta.scales_sha256[:12]}... then, {scales_sha256[:12]}... now)")
    return ""


def batch_problem(meta: EngineMetadata, name: str | None = None, folder: str | Path = "<engine folder>") -> str:
    """Why the sidecar's batch disagrees with its own contract or with the file name ``name`` in ``folder`` ('' if
    it does not): a renamed engine of another batch must not be loaded as the one its name promises."""
    contract_batch = int(meta.contract.get("batch", 1)) if isinstance(meta.contract, dict) else 1
    if meta.contract and contract_batch != meta.batch:
        return f"records batch {meta.batch} but its model contract batch {contract_batch}; rebuild the engine"
    named = batch_from_name(name) if name is not None else meta.batch
    if named != meta.batch:
        command = on_target_command(folder, meta.variant, (meta.height, meta.width), named,
                                    model=meta.model, dla_core=meta.dla_core)
        return (f"the engine was built for batch {meta.batch}, its file name says batch {named} (renamed?); rebuild "
                f"it under its own name from the batch-{named} variants ({command})")
    return ""


def check_compatible(
    meta: EngineMetadata,
    *,
    precision: Precision,
    tensorrt_version: str | None = None,
    compute_capability: str | None = None,
    onnx_sha256: str | None = None,
    builder: str | None = None,
    platform: str | None = None,
    batch: int | None = None,
    scales_sha256: str | None = None,
) -> list[str]:
    """Human-readable reasons why the engine described by ``meta`` must not be used here; empty if it may.
    Checks given as None are skipped: the loader checks precision, builder and ONNX before TensorRT is needed.
    ``onnx_sha256`` and ``scales_sha256`` (an implicit engine's scales variant, :func:`scales_sha256_of`) are the
    files' hashes as they are now, compared with the build's."""
    reasons = []
    if meta.schema_version != SCHEMA_VERSION:
        reasons.append(f"metadata schema {meta.schema_version} != {SCHEMA_VERSION}")
    if meta.precision != precision:
        reasons.append(f"engine precision is {meta.precision}, {precision} was asked for")
    if batch is not None and meta.batch != batch:
        reasons.append(f"engine was built for batch {meta.batch} (frames per run), batch {batch} was asked for")
    problem = batch_problem(meta)
    if problem:
        reasons.append(problem)
    if builder is not None and meta.builder != builder:
        reasons.append(f"engine was built by {meta.builder}, this runtime loads {builder} engines only")
    if tensorrt_version is not None and meta.tensorrt_version != tensorrt_version:
        reasons.append(
            f"engine was built with TensorRT {meta.tensorrt_version}, this is TensorRT {tensorrt_version} "
            "(serialized engines only load in the version that built them)"
        )
    if compute_capability is not None and meta.compute_capability != compute_capability:
        reasons.append(
            f"engine was built for compute capability {meta.compute_capability} ({meta.gpu_name}), "
            f"this GPU is {compute_capability}"
        )
    if platform and meta.platform and not same_platform(meta.platform, platform):
        # Orin Nano/NX/AGX share compute capability 8.7 but differ in SMs, DLA cores and memory: tactics and DLA
        # placement chosen on one module are not what another runs best (or at all)
        reasons.append(f"engine was built on {meta.platform}, this is {platform}")
    if onnx_sha256 is not None and meta.onnx_sha256 != onnx_sha256:
        reasons.append(
            f"the ONNX changed since the build (sha256 {meta.onnx_sha256[:12]}... then, {onnx_sha256[:12]}... now)"
        )
    problem = scales_problem(meta, scales_sha256)
    if problem:
        reasons.append(problem)
    return reasons


def source_onnx_path(engine_path: str | Path, meta: EngineMetadata) -> Path:
    """The ONNX file an engine was built from, expected next to the engine: the precision variant on the strongly
    typed path, the FP32 file on the implicit one (recorded as ``build_options['source_onnx']``)."""
    engine_path = Path(engine_path)
    name = meta.build_options.get("source_onnx") if isinstance(meta.build_options, dict) else None
    return engine_path.parent / name if name else engine_path.with_suffix(".onnx")


#: the command that builds engines from a folder of ONNX variants, on the machine that runs them (no torch)
ON_TARGET_TOOL = "build_on_target"
#: what follows a hint that names trt_seg_build_engine: the variant itself is missing, and the build machine makes
#: it (INT8 variants need torch's export or the quantization tools and calibration images)
ON_BUILD_MACHINE = "(on the build machine, where the variants are made; then copy {folder} here)"


def on_target_command(engine_dir: str | Path, precisions: Sequence[Precision] | Precision | None,
                      size: tuple[int, int] | None = None, batch: int = 1, *, model: str | None = None,
                      dla_core: int = -1, device: int = 0, extra: list[str] | None = None) -> str:
    """The command that builds engines from the variants in ``engine_dir`` on this machine, paths as they are here
    (``precisions`` None: the placeholder ``<precision>``)."""
    argv = tool_argv(ON_TARGET_TOOL) + ["--engine-dir", str(engine_dir)]
    if model:
        argv += ["--model", model]
    argv += ["--size", f"{size[0]}x{size[1]}" if size else "<H>x<W>"]
    if batch > 1:
        argv += ["--batch", str(batch)]
    listed = ["<precision>"] if precisions is None else [precisions] if isinstance(precisions, str) else precisions
    argv += ["--precision", *(str(p) for p in listed)]
    if dla_core >= 0:
        argv += ["--dla-core", str(dla_core)]
    if device:
        argv += ["--device", str(device)]
    return shlex.join(argv + list(extra or []))


def rebuild_from_name(engine_path: str | Path) -> str:
    """The on-target build of ``engine_path`` from the variants beside it, told by its name alone (model, size,
    batch, precision and DLA core: :meth:`Artifact.from_path`): the hint for an engine without a readable sidecar
    and for one that does not fit; the generic on-target command where the name is not an artifact's."""
    engine_path = Path(engine_path)
    item = Artifact.from_path(engine_path)
    if item is None:
        return on_target_command(engine_path.parent, None)
    return on_target_command(engine_path.parent, item.precision, item.size, item.batch, model=item.model,
                             dla_core=item.dla_core)


def build_hint(model: str, size: tuple[int, int] | None, precision: Precision, directory: Path | str,
               batch: int = 1) -> str:
    """The command that makes the missing file: where ``directory`` holds the precision's ONNX variant of that size
    and batch (so the engine is what is missing), the on-target build from it (no torch); else (the variant itself
    is missing) tools/build_engine.py, said to run on the build machine (:data:`ON_BUILD_MACHINE`)."""
    options: dict[str, Any] = {"model": model, "precision": precision.value, "out_dir": str(directory),
                               "batch": batch}
    sources = ArtifactFolder(directory).find(model, size=size, batch=batch, precision=Precision.FP32, suffix=".onnx")
    if len(sources) == 1:
        options["onnx"] = str(sources[0].path)
        if size is None:
            size = sources[0].size
    if size is not None and precision.tensorrt and ArtifactFolder(directory).path(
            model, *size, precision, ".onnx", batch=batch).is_file():
        return on_target_command(directory, precision, size, batch, model=model)  # the engine is what is missing
    options["size"] = f"{size[0]}x{size[1]}" if size else "<H>x<W>"
    return f"{rebuild_command(options)} {ON_BUILD_MACHINE.format(folder=directory)}"


def rebuild_command(meta_or_args: EngineMetadata | BuildRequest | dict[str, Any],
                    engine_path: str | Path | None = None) -> str:
    """The exact command that rebuilds an engine. From its metadata: the on-target build from the variants beside
    the engine (``engine_path``'s folder as it is here; without it, the folder the build recorded), which needs no
    torch. From a build request (or its options as a dict, :meth:`BuildRequest.from_options`): tools/build_engine.py
    on the build machine, its flags written by :meth:`BuildRequest.to_argv`."""
    if isinstance(meta_or_args, EngineMetadata):
        meta = meta_or_args
        folder = Path(engine_path).parent if engine_path is not None else Path(
            str(meta.build_options.get("out_dir") or "artifacts"))
        dla = meta.dla_core if meta.dla_core >= 0 else -1
        return on_target_command(folder, meta.variant, (meta.height, meta.width), meta.batch, model=meta.model,
                                 dla_core=dla)
    request = meta_or_args if isinstance(meta_or_args, BuildRequest) else BuildRequest.from_options(meta_or_args)
    # as it runs here (ros2 run, a source checkout's tools/, or the pip script), with the flags build_engine parses
    return shlex.join(tool_argv("build_engine") + request.to_argv())
