"""Build TensorRT engines on the machine that runs them (a Jetson) from a folder of ONNX precision variants.

Needs only what a Jetson has: TensorRT (JetPack's python3-libnvinfer), numpy and onnx; no torch, no ModelOpt, no
quantization tools, no calibration images. For each precision it writes <model>_<H>x<W>[_b<N>]_<precision>.engine
+ .json beside the variants, the way the installed TensorRT needs:
  explicit  from <model>_<H>x<W>_<precision>.onnx, the variant made on the build machine (TensorRT >= 10: strongly
            typed; 8.5/8.6: the same Q/DQ and casts with builder flags)
  implicit  from <model>_<H>x<W>_fp32.onnx with builder flags where that parser does not take the variant (mixed on
            TensorRT 8.5/8.6; INT8 on a DLA core before TensorRT 10), INT8 scales from the variant's own Q/DQ nodes
            as a TensorRT calibration table (--implicit-calibration qdq-table, the default), or from TensorRT's
            entropy calibrator over images (--implicit-calibration tensorrt-entropy --calibration SOURCE)
An engine that is already there and fits (sidecar: same TensorRT, GPU, Jetson module, precision, batch and ONNX) is
kept; one that does not fit is rebuilt, the reason printed; --force rebuilds every one. The builder's workspace is
limited to 1 GiB on a Jetson, whose GPU memory is the system's RAM (--workspace-mib N; 0: TensorRT's default, no
limit); each sidecar records that limit, the engine's size and one execution context's device memory.

Examples:
  # JetPack 5 or 6, the folder copied from the build machine: every precision whose variant is in it
  trt_seg_build_on_target --engine-dir artifacts --size 512x1024
  # three cameras in one engine, mixed precision (files ..._b3_mixed.*)
  trt_seg_build_on_target --engine-dir artifacts --size 512x1024 --batch 3 --precision mixed
  # INT8 on DLA core 0 (Xavier / AGX Orin): <name>.dla0.engine (without --precision: every fp16/int8/mixed variant)
  trt_seg_build_on_target --engine-dir artifacts --size 512x1024 --precision int8 --dla-core 0
Exit code: 0 every engine fits or was built, 1 a build failed, 2 bad arguments or a missing file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .. import cli
from ..build_request import add_workspace

TOOL = "build_on_target"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    cli.add_engine_dir(p, default="artifacts", help="folder of the ONNX variants; the engines are written there")
    cli.add_model(p)
    cli.add_size(p, help="network input size HEIGHTxWIDTH (default: the one size of the FP32 ONNX in the folder)")
    cli.add_batch(p)
    cli.add_precision(p, allow_all=True, what="precisions to build (default: every TensorRT precision whose ONNX "
                                               "variant is in the folder)")
    p.add_argument("--implicit-calibration", choices=["qdq-table", "tensorrt-entropy"], default=None,
                   help="implicit-path INT8 scales: qdq-table = the variant's own Q/DQ scales (default, no images); "
                        "tensorrt-entropy = TensorRT's entropy calibrator over --calibration images")
    cli.add_calibration(p, needed_for="--implicit-calibration tensorrt-entropy", counts=False)
    p.add_argument("--dla-core", type=int, default=-1, metavar="N",
                   help="build for DLA core N with GPU fallback (<name>.dla<N>.engine; fp16/int8/mixed)")
    p.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device to build for (default 0)")
    p.add_argument("--force", action="store_true", help="rebuild engines that are there and fit")
    p.add_argument("--builder", default="tensorrt", choices=["tensorrt", "tensorrt-rtx"],
                   help="tensorrt (default: engines the node loads); tensorrt-rtx: TensorRT-RTX engines (RTX GPUs, "
                        "and the rehearsal of this command on a machine without TensorRT)")
    add_workspace(p)
    p.add_argument("--timing-cache", type=Path, metavar="FILE", help="TensorRT timing cache (read and updated)")
    p.add_argument("--opt-level", type=int, choices=range(6), metavar="0-5",
                   help="builder optimisation level (TensorRT >= 8.6; default 3)")
    p.add_argument("--verbose", action="store_true", help="show TensorRT's info messages")
    return p


def _size(engine_dir: Path, model: str, batch: int) -> tuple[int, int] | None:
    from ..artifacts import ArtifactFolder

    sizes = ArtifactFolder(engine_dir).sizes(model, batch=batch)
    return sizes[0] if len(sizes) == 1 else None


def _workspace(limit: object) -> str:
    return f"{limit} MiB" if limit else "TensorRT's default (no limit)"


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.engine_dir, "engine folder", folder=True)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from ..artifacts import ArtifactFolder, Precision
    from ..engine.on_target import build_from_folder, fit_problems
    from ..errors import COMMAND_ERRORS

    size = args.size or _size(args.engine_dir, args.model, args.batch)
    if size is None:
        print(f"error: give --size HxW: {args.engine_dir} does not hold exactly one {args.model}_<H>x<W>"
              f"{'_b' + str(args.batch) if args.batch > 1 else ''}_fp32.onnx", file=sys.stderr)
        return 2
    height, width = size
    folder = ArtifactFolder(args.engine_dir)

    def variant(p: Precision) -> Path:
        return folder.path(args.model, height, width, p, ".onnx", batch=args.batch)

    if args.precision:
        precisions = [p for p in cli.expand_precisions(args.precision) if p.tensorrt
                      and not (args.dla_core >= 0 and "all" in args.precision and p is Precision.FP32)]
    else:  # a DLA core runs FP16 and INT8 only: without --precision, --dla-core builds those
        precisions = [p for p in Precision if p.tensorrt and variant(p).is_file()
                      and (args.dla_core < 0 or p is not Precision.FP32)]
    if args.dla_core >= 0 and Precision.FP32 in precisions:
        print("error: DLA runs FP16 and INT8 only: drop fp32 from --precision with --dla-core (fp32 runs on the "
              "GPU: build it in a call without --dla-core)", file=sys.stderr)
        return 2
    if not precisions:
        print(f"error: no ONNX variant of {args.model} {height}x{width} (batch {args.batch}) in {args.engine_dir}; "
              f"copy the folder {cli.tool_command('build_engine')} wrote", file=sys.stderr)
        return 2
    if args.implicit_calibration == "tensorrt-entropy" and not args.calibration:
        print("error: --implicit-calibration tensorrt-entropy calibrates on images: add --calibration SOURCE",
              file=sys.stderr)
        return 2
    failed = 0
    for index, precision in enumerate(precisions, 1):
        engine = folder.path(args.model, height, width, precision, ".engine", batch=args.batch, dla_core=args.dla_core)
        head = f"[{index}/{len(precisions)}] {precision}"
        if engine.is_file() and not args.force and args.builder == "tensorrt":
            problems = fit_problems(engine, precision, device=args.device)
            if not problems:
                print(f"{head}: {engine} fits this machine; kept (--force rebuilds it)", flush=True)
                continue
            print(f"{head}: rebuilding {engine}: " + "; ".join(problems), flush=True)
        else:
            print(f"{head}: building {engine} (minutes on a Jetson)", flush=True)
        start = time.monotonic()
        try:
            meta = build_from_folder(engine, precision, calibration=args.calibration,
                                     implicit_calibration=args.implicit_calibration, builder=args.builder,
                                     device=args.device, workspace_mib=args.workspace_mib,
                                     timing_cache=args.timing_cache, opt_level=args.opt_level, verbose=args.verbose,
                                     progress=lambda text: print(f"    {text}", flush=True))
        except FileNotFoundError as exc:
            print(f"error: {exc.strerror}: {exc.filename}; make it on the build machine with "
                  f"{cli.tool_command('build_engine')} and copy it here", file=sys.stderr)
            failed += 1
            continue
        except COMMAND_ERRORS as exc:  # one engine failed: say why, build the others
            cli.error(exc)
            failed += 1
            continue
        print(f"    {meta.typing} build from {meta.build_options.get('source_onnx')} in "
              f"{time.monotonic() - start:.0f} s -> {engine} (+ {engine.with_suffix('.json').name}): "
              f"{meta.memory_summary()}, workspace {_workspace(meta.build_options.get('workspace_mib'))}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
