"""Build TensorRT engines for SwiftNet: checkpoint or FP32 ONNX -> precision variant ONNX -> engine + metadata.

Examples:
  # all four precisions of the launch file's switch (fp32, fp16, int8, mixed), calibrated on an image folder
  trt_seg_build_engine --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --size 512x1024 \\
      --precision all --calibration data/street/leftImg8bit/train
  # one INT8 engine from an exported ONNX, calibrated on a rosbag topic, with a 2 GiB workspace
  trt_seg_build_engine --onnx artifacts/swiftnet_ss_rn18_512x1024_fp32.onnx --precision int8 \\
      --calibration bag:recordings/drive1@/camera/image_raw --workspace-mib 2048
  # three cameras in one engine: a static batch of 3 (files named swiftnet_ss_rn18_512x1024_b3_<precision>.*)
  trt_seg_build_engine --checkpoint my.pt --size 512x1024 --batch 3 --precision fp16
  # Jetson with TensorRT 8.5-10.x: classic implicit INT8 (builder flags + entropy calibrator), on DLA core 0
  trt_seg_build_engine --onnx ... --precision int8 --implicit --dla-core 0 --calibration cityscapes:/data/cityscapes@train
  # a machine without a GPU: the ONNX Runtime CPU variant (an ONNX file only; TensorRT never gets it)
  trt_seg_build_engine --onnx artifacts/swiftnet_ss_rn18_512x1024_fp32.onnx --precision int8-cpu \\
      --calibration data/street/leftImg8bit/train --builder none

Files land in --out as <model>_<H>x<W>_<precision>.onnx / .engine / .json (the names the node looks for;
<model>_<H>x<W>_b<N>_<precision>.* for --batch N > 1; with --dla-core N the engine is <...>_<precision>.dla<N>.engine
with its .dla<N>.json).
Without torch (e.g. a vehicle), fp32 and fp16 engines from an FP32 ONNX (--onnx) still build: fp16 with TensorRT's
FP16 flag (TensorRT 8.5-10.x). int8, mixed and int8-cpu (and --checkpoint) need the build machine: one line
names the command to run there (and trt_seg_build_on_target's, for the engines on the target).
Calibration sources: DIR | cityscapes:ROOT[@split] | bag:PATH[@/topic]; INT8, mixed and int8-cpu need one.
int8-cpu (ONNX Runtime's own INT8 recipe for CPUs, made for the CPU class of this machine: 7-bit weights on x86
without VNNI) is written as ONNX only: no TensorRT check, no engine. It is not part of 'all' (all = the TensorRT
precisions of the launch switch); ask for it by name.
Without real TensorRT (e.g. a laptop or CI) every ONNX variant is still made and checked with the TensorRT-RTX
parser and builder, and the output says which step needs TensorRT and the command to run there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from .. import cli
from ..build_request import BuildRequest

TOOL = "build_engine"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    BuildRequest.add_arguments(p)  # the one definition of the flags (the rebuild hint writes them back)
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    if args.implicit and args.mixed_config:
        print("error: --mixed-config applies to the explicit (ONNX) path; the implicit path keeps the encoder in INT8 "
              "and the rest in FP16 with fixed layer rules (docs/precision.md)", file=sys.stderr)
        return 2
    if args.checkpoint and not args.size:
        print("error: --checkpoint needs --size HxW (the static network input size)", file=sys.stderr)
        return 2
    cli.require_file(args.checkpoint, "checkpoint")
    cli.require_file(args.onnx, "ONNX file")
    cli.require_file(args.mixed_config, "mixed-precision config")
    request = BuildRequest.from_args(args)
    precisions = request.precisions
    if args.implicit and not all(p.tensorrt for p in precisions):
        print("error: --implicit builds TensorRT engines from the FP32 ONNX; int8-cpu is an ONNX Runtime CPU variant "
              "(make it in a call without --implicit)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from ..apps.build import check_variant_tools, run_pipeline
    from ..precision.variants import needs_calibration

    # without torch (a vehicle): what needs the build machine, and its command. Checked here as well as in
    # run_pipeline (which its other callers need) so that it comes before the calibration-images error below:
    # on a vehicle, int8 without --calibration is answered by the build machine's command
    check_variant_tools(request)
    if any(needs_calibration(p) for p in precisions) and not args.calibration:
        need = ", ".join(p.value for p in precisions if needs_calibration(p))
        print(f"error: {need} need calibration images: --calibration DIR | cityscapes:ROOT[@split] | "
              "bag:PATH[@/topic]", file=sys.stderr)
        return 2
    steps = run_pipeline(request)
    print("\nsummary:")
    for step in steps:
        engine = step.engine or ("none (ONNX Runtime CPU variant)" if not step.precision.tensorrt else "NOT BUILT")
        print(f"  {step.precision.value:16s} onnx {step.onnx}  engine {engine}  ({step.seconds:.0f} s)")
    missing = [s for s in steps if s.engine is None and s.precision.tensorrt]
    if missing and args.builder != "none":
        from ..artifacts import size_from_name
        from ..engine.metadata import rebuild_command
        from ..engine.on_target import on_target_command

        print(f"\nNo .engine written: {missing[0].skipped}")
        if not args.implicit and all(s.onnx is not None for s in missing):
            # the variants are made: the target builds its engines from this folder, no torch or calibration images
            from ..onnx_metadata import read_contract_dict

            size = args.size or size_from_name(Path(str(missing[0].onnx)).name)
            model = str(read_contract_dict(Path(str(missing[0].onnx)))["model"])
            print(f"Copy {args.out} to the machine with TensorRT (the Jetson) and run there:\n  "
                  + on_target_command(args.out, [s.precision for s in missing], size, args.batch,
                                      model=model if model != "swiftnet_ss_rn18" else None,
                                      dla_core=request.dla_core))
        else:
            print("Where TensorRT is installed, run:\n  "
                  + rebuild_command(replace(request, precisions=[s.precision for s in missing])))
        if args.builder == "tensorrt":
            return 1  # engines were asked for explicitly and could not be made here
    return 0


if __name__ == "__main__":
    sys.exit(main())
