"""What tools/build_engine.py is asked to build, and its command line, from one definition.

:meth:`BuildRequest.add_arguments` is build_engine's parser (its flags), :meth:`BuildRequest.from_args` reads them
into the request the pipeline runs, and :meth:`BuildRequest.to_argv` writes the request back as those flags: the
rebuild hint (engine/metadata.py ``rebuild_command``) is made by it, so it can never name a flag the parser lacks.
The sidecar's ``build_options`` are :meth:`BuildRequest.to_options` (keys kept as engines on disk record them) and
read back by :meth:`BuildRequest.from_options`. Pure Python (runs on the Jetson's Python 3.8 with the engine layer).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, get_args

from . import cli
from .artifacts import CALIBRATION_COUNT, CAMERA_FORMATS, InputFormat, Precision, artifact_stem
from .errors import InputError

SOURCE_PLACEHOLDER = "<fp32 onnx, or --checkpoint PT>"
SIZE_PLACEHOLDER = "<H>x<W>"
CALIBRATION_PLACEHOLDER = "<images: DIR | cityscapes:ROOT[@split] | bag:PATH[@/topic]>"
#: who builds the engines: the TensorRT found (auto), one of the two by name, or none (the variants only)
Builder = Literal["auto", "tensorrt", "tensorrt-rtx", "none"]
BUILDERS: Tuple[Builder, ...] = get_args(Builder)


@dataclass
class BuildRequest:
    """A checkpoint or FP32 ONNX, precisions, calibration and build options (build_engine's flags, typed)."""

    precisions: List[Precision]
    checkpoint: Optional[Path] = None
    onnx: Optional[Path] = None
    size: Optional[Tuple[int, int]] = None  # required with a checkpoint; checked against an ONNX
    batch: int = 1  # static frames per run: exported with a checkpoint; checked against an ONNX
    input_format: InputFormat = InputFormat.UINT8_RGB
    calibration: Optional[str] = None
    calibration_count: int = CALIBRATION_COUNT
    calibration_batch: int = 8
    mixed_config: Optional[Path] = None
    out_dir: Path = field(default_factory=lambda: Path("artifacts"))
    builder: Builder = "auto"
    implicit: bool = False
    workspace_mib: Optional[int] = None
    timing_cache: Optional[Path] = None
    opt_level: Optional[int] = None
    dla_core: int = -1
    use_cache: bool = True
    verbose: bool = False
    #: no flag: names the FP32 ONNX ``<out>/<model>_<H>x<W>[_b<N>]_fp32.onnx`` in a hint when no source is known
    model: Optional[str] = None

    # ------------------------------------------------------------------------------------------------ the parser
    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        """build_engine's flags."""
        src = p.add_mutually_exclusive_group(required=True)
        cli.add_checkpoint(src, help="PyTorch checkpoint (exported to ONNX first; needs --size)")
        src.add_argument("--onnx", type=Path, metavar="FILE",
                         help=f"FP32 ONNX made by {cli.script_name('export_onnx')}")
        cli.add_size(p, help="network input size HEIGHTxWIDTH, e.g. 512x1024 (needed with --checkpoint)")
        cli.add_batch(p)
        p.add_argument("--input-format", default="uint8_rgb", choices=[f.value for f in CAMERA_FORMATS],
                       help="camera byte order the graph takes when exporting a checkpoint (default uint8_rgb)")
        cli.add_precision(p, default=["fp16"], allow_all=True, what="precisions to build")
        cli.add_calibration(p)
        p.add_argument("--mixed-config", type=Path, metavar="YAML",
                       help="per-layer overrides for 'mixed' (keys int8, exclude_int8, fp32; see docs/precision.md)")
        p.add_argument("--no-cache", action="store_true", help="recalibrate even if a valid calibration cache exists")
        cli.add_out(p, default="artifacts")
        p.add_argument("--builder", default="auto", choices=list(BUILDERS),
                       help="auto: real TensorRT if installed, else variants + TensorRT-RTX check only; "
                            "tensorrt-rtx: write TensorRT-RTX engines; none: ONNX variants only")
        p.add_argument("--implicit", action="store_true",
                       help="TensorRT 8.5-10.x only: FP32 ONNX + FP16/INT8 builder flags + entropy calibrator")
        add_workspace(p)
        p.add_argument("--timing-cache", type=Path, metavar="FILE", help="TensorRT timing cache (read and updated)")
        p.add_argument("--opt-level", type=int, choices=range(6), metavar="0-5",
                       help="builder optimisation level (TensorRT >= 8.6; default 3; higher builds slower)")
        p.add_argument("--dla-core", type=int, default=-1, metavar="N",
                       help="build for DLA core N with GPU fallback (Jetson Xavier/Orin; needs fp16/int8)")
        p.add_argument("--verbose", action="store_true", help="show TensorRT's and the quantizer's info messages")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BuildRequest:
        """The request of parsed build_engine flags (``--precision all`` expanded)."""
        return cls(
            precisions=cli.expand_precisions(args.precision), checkpoint=args.checkpoint, onnx=args.onnx,
            size=args.size, batch=args.batch, input_format=InputFormat.parse(args.input_format), calibration=args.calibration,
            calibration_count=args.calibration_count, calibration_batch=args.calibration_batch,
            mixed_config=args.mixed_config, out_dir=args.out, builder=args.builder, implicit=args.implicit,
            workspace_mib=args.workspace_mib, timing_cache=args.timing_cache, opt_level=args.opt_level,
            dla_core=args.dla_core, use_cache=not args.no_cache, verbose=args.verbose)

    def to_argv(self) -> List[str]:
        """build_engine's arguments for this request (defaults left out); unknown required values (no source,
        no size, no calibration for a calibrated precision) as ``<...>`` placeholders for a hint."""
        argv: List[str] = []
        if self.checkpoint is not None:
            argv += ["--checkpoint", str(self.checkpoint)]
        elif self.onnx is not None:
            argv += ["--onnx", str(self.onnx)]
        elif self.model and self.size:  # the FP32 ONNX tools/export_onnx.py writes into the folder
            argv += ["--onnx", f"{self.out_dir}/{artifact_stem(self.model, *self.size, Precision.FP32, self.batch)}"
                               ".onnx"]
        else:
            argv += ["--onnx", SOURCE_PLACEHOLDER]
        if self.size is not None:
            argv += ["--size", f"{self.size[0]}x{self.size[1]}"]
        elif argv[-1] == SOURCE_PLACEHOLDER:
            argv += ["--size", SIZE_PLACEHOLDER]
        argv += _flag("--batch", self.batch, 1)
        argv += ["--precision", *(p.value for p in self.precisions)]
        calibration = self.calibration
        if calibration is None and any(p.calibration is not None for p in self.precisions):
            calibration = CALIBRATION_PLACEHOLDER
        argv += _flag("--calibration", calibration, None)
        argv += _flag("--calibration-count", self.calibration_count, CALIBRATION_COUNT)
        argv += _flag("--mixed-config", self.mixed_config, None)
        argv += ["--out", str(self.out_dir)]
        argv += _flag("--workspace-mib", self.workspace_mib, None)
        argv += _flag("--timing-cache", self.timing_cache, None)
        argv += _flag("--opt-level", self.opt_level, None)
        argv += _flag("--dla-core", self.dla_core, -1)
        argv += ["--implicit"] if self.implicit else []
        argv += _flag("--input-format", self.input_format.value, InputFormat.UINT8_RGB.value)
        argv += _flag("--calibration-batch", self.calibration_batch, 8)
        argv += ["--no-cache"] if not self.use_cache else []
        argv += _flag("--builder", self.builder, "auto")
        argv += ["--verbose"] if self.verbose else []
        return argv

    # ------------------------------------------------------------------------------- the sidecar's build_options
    def to_options(self) -> Dict[str, Any]:
        """The ``build_options`` an engine's sidecar records (JSON values)."""
        return {
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "onnx": str(self.onnx) if self.onnx and not self.checkpoint else None,
            "size": f"{self.size[0]}x{self.size[1]}" if self.size else None,
            "batch": self.batch,
            "calibration": self.calibration,
            "calibration_count": self.calibration_count if self.calibration else None,
            "mixed_config": str(self.mixed_config) if self.mixed_config else None,
            "out_dir": str(self.out_dir),
            "workspace_mib": self.workspace_mib,
            "timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "opt_level": self.opt_level,
            "dla_core": self.dla_core,
            "implicit": self.implicit,
        }

    @classmethod
    def from_options(cls, opts: Mapping[str, Any]) -> BuildRequest:
        """The request a sidecar's ``build_options`` (or a hint's options) describe; ``precision`` is one name or
        several separated by spaces (default fp32); a size such as ``<H>x<W>`` counts as unknown."""
        precision = opts.get("precision") or "fp32"
        names = precision.split() if isinstance(precision, str) else [str(p) for p in precision]
        given = opts.get("size")
        size: Optional[Tuple[int, int]] = None
        if isinstance(given, str):
            try:
                size = cli.parse_size(given)
            except argparse.ArgumentTypeError:  # a placeholder such as <H>x<W>
                size = None
        elif given:
            size = (int(given[0]), int(given[1]))
        return cls(
            precisions=[Precision.parse(n) for n in names],
            checkpoint=_path(opts.get("checkpoint")), onnx=_path(opts.get("onnx")),
            size=size,
            batch=int(opts.get("batch") or 1), calibration=opts.get("calibration"),
            calibration_count=int(opts.get("calibration_count") or CALIBRATION_COUNT), mixed_config=_path(opts.get("mixed_config")),
            out_dir=Path(str(opts.get("out_dir") or "artifacts")), workspace_mib=opts.get("workspace_mib"),
            timing_cache=_path(opts.get("timing_cache")), opt_level=opts.get("opt_level"),
            dla_core=int(opts["dla_core"]) if opts.get("dla_core") is not None else -1,
            implicit=bool(opts.get("implicit")), model=opts.get("model"))


#: the builder's workspace limit on a Jetson when none is asked for: GPU memory is the system's RAM there, and
#: TensorRT's own default limit is all of it (a build beside the running node, ROS and the cameras could take it all)
JETSON_WORKSPACE_MIB = 1024


def workspace_limit_mib(requested: Optional[int], platform: str) -> Optional[int]:
    """The builder workspace limit in MiB of a build asked for with ``requested`` (``--workspace-mib``) on
    ``platform`` (engine/tensorrt_adapter.py ``platform_name``: '' off a Jetson); None: no limit set (TensorRT's
    default, all GPU memory). ``requested`` None: :data:`JETSON_WORKSPACE_MIB` on a Jetson, no limit elsewhere (a
    discrete GPU's memory is its own); 0: no limit, also on a Jetson; N > 0: N MiB."""
    if requested is None:
        return JETSON_WORKSPACE_MIB if platform else None
    if requested < 0:
        raise InputError(f"the workspace limit is a number of MiB >= 0 (0: no limit), got {requested}")
    return int(requested) or None


def workspace_mib(text: str) -> int:
    """argparse type of ``--workspace-mib``: a whole number of MiB, 0 for no limit."""
    if text.strip() == "0":
        return 0
    try:
        return cli.positive_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 0: no limit)") from None


def add_workspace(p: argparse._ActionsContainer) -> None:
    """``--workspace-mib MIB`` of every command that builds engines (build_engine, build_on_target,
    check_on_target), applied by engine/builder.py ``build_engine`` through :func:`workspace_limit_mib`."""
    p.add_argument("--workspace-mib", type=workspace_mib, metavar="MIB",
                   help=f"builder workspace limit in MiB (default: {JETSON_WORKSPACE_MIB} on a Jetson, whose GPU "
                        "memory is the system's RAM; TensorRT's own default elsewhere: all GPU memory; 0: no limit); "
                        "the engine's sidecar records the limit used")


def _flag(flag: str, value: object, default: object) -> List[str]:
    return [] if value is None or value == default else [flag, str(value)]


def _path(value: object) -> Optional[Path]:
    return Path(str(value)) if value else None
