"""Check the TensorRT engines on the target (Jetson or any NVIDIA GPU with TensorRT >= 8.5 and pycuda).

For each precision: builds the .engine from the folder of variants the way the installed TensorRT needs if it is
missing (or always with --build), as trt_seg_build_on_target does: explicit from <model>_<H>x<W>_<precision>.onnx
where its parser takes that variant, implicit from the fp32 ONNX where it does not (mixed on TensorRT 8.5/8.6, INT8
on a DLA core before TensorRT 10), its INT8 scales read from the variant's Q/DQ nodes (no images needed; or
--calibration for TensorRT's entropy calibrator); on a Jetson with DLA cores also a DLA engine of fp16/int8/mixed
(<name>.dla0.engine); batch-N variants (multi-camera) get rows of their own. An engine that is there but does not
fit this machine (built elsewhere, another TensorRT, a changed ONNX) FAILs with the reason, or is rebuilt with
--rebuild. Then it loads it through the node's TensorRT backend (metadata sidecar checked: TensorRT version, GPU,
Jetson module, precision, ONNX hash, tensors), runs it with two frames in flight on CUDA streams, and compares its
labels with ONNX Runtime on the ONNX it was built from (an implicit int8/mixed row also with the variant whose
scales it took). Prints one pass/fail table (its "path" column says how each row was built; "INT8 layers" counts
the engine's INT8 layers from TensorRT's engine inspector: an int8/mixed row without any FAILs; "engine MiB" is the
engine file, "MiB/context" the device memory of one execution context: activations and scratch, on a Jetson RAM,
twice over with two frames in flight). Builds use a 1 GiB workspace on a Jetson unless --workspace-mib says.

Without TensorRT (a laptop, CI) it still runs the ONNX Runtime reference and the TensorRT-RTX parse check, then
reports NEEDS-TENSORRT for what only the target can prove.

Examples:
  trt_seg_check_on_target --engine-dir artifacts --size 512x1024 --precision fp32 fp16 int8 mixed
  trt_seg_check_on_target --engine-dir artifacts --size 512x1024 --rebuild   # engines copied from elsewhere
  trt_seg_check_on_target --engine-dir artifacts --size 512x1024 --precision fp16 --launch  # + ros2 launch once
  trt_seg_check_on_target --engine-dir artifacts --size 1024x2048 --images-dir street_scenes/val --build \\
      --calibration street_scenes/train   # implicit rows calibrated by TensorRT on images instead
With --launch it then starts the package's launch file once (`ros2 launch trt_segmentation segmentation.launch.py
engine_dir:=... precision:=<the first --precision> model:=...`), waits for the node's status on /diagnostics and
stops it with SIGINT: "launch: PASS" when it came up and stopped cleanly.
Exit code: 0 all PASS, 1 a FAIL, 2 incomplete (a file is missing, TensorRT or ros2 is needed).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import cli
from ..artifacts import ENGINE_SET, Precision, names
from ..build_request import add_workspace

TOOL = "check_on_target"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    cli.add_engine_dir(p, default="artifacts", help="folder with the .onnx/.engine files")
    cli.add_model(p)
    cli.add_size(p, default=(1024, 2048), help="engine input size")
    cli.add_precision(p, default=list(names(ENGINE_SET)), what="precisions to check")
    p.add_argument("--image-count", type=cli.positive_int, default=8, metavar="N",
                   help="number of test images (default 8)")
    p.add_argument("--images-dir", type=Path, help="folder of .png/.jpg test images (default: synthetic)")
    p.add_argument("--build", action="store_true", help="rebuild the engines even when they exist")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild an engine that is there but does not fit this machine (without it, that row FAILs)")
    cli.add_calibration(p, needed_for="TensorRT's entropy calibrator on rows built the implicit way (default: the "
                                      "variant's own Q/DQ scales, no images)", counts=False)
    p.add_argument("--device", type=int, default=0, metavar="N", help="CUDA device to build and run on (default 0)")
    add_workspace(p)
    p.add_argument("--no-dla", action="store_true", help="skip the DLA rows even where the device has DLA cores")
    p.add_argument("--launch", action="store_true",
                   help="also start the package's launch file once (ros2 launch, the first --precision) and report "
                        "whether the node came up on /diagnostics and stopped cleanly")
    p.add_argument("--launch-timeout", type=float, default=90.0, metavar="S",
                   help="seconds the node may take to come up with --launch (default 90: a first engine load)")
    p.add_argument("--min-agreement", action="append", default=[], metavar="PRECISION=FRACTION",
                   help="override a pass threshold, e.g. int8=0.97 (defaults: fp32 0.999, fp16 0.995, "
                        "int8/mixed 0.98 of pixels equal to ONNX Runtime)")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.engine_dir, "engine folder", folder=True)
    cli.require_file(args.images_dir, "image folder", folder=True)
    from ..apps.target_check import environment, exit_code, format_table, run_checks

    thresholds = {}
    for item in args.min_agreement:
        name, _, value = item.partition("=")
        try:
            thresholds[Precision.parse(name).family] = float(value)
        except ValueError:
            print(f"error: --min-agreement takes PRECISION=FRACTION, e.g. int8=0.97; got {item!r}", file=sys.stderr)
            return 2
    print("environment: " + ", ".join(f"{k} {v}" for k, v in environment().items()), flush=True)
    height, width = args.size
    precisions = cli.expand_precisions(args.precision)
    rows = run_checks(args.engine_dir, args.model, height, width, precisions, images=args.image_count,
                      image_dir=args.images_dir, build=args.build, min_agreement=thresholds,
                      calibration=args.calibration, dla=not args.no_dla, rebuild=args.rebuild,
                      device=args.device, workspace_mib=args.workspace_mib,
                      log=lambda text: print(text, flush=True))
    print()
    print(format_table(rows))
    code = exit_code(rows)
    if any(r.status == "NEEDS-TENSORRT" for r in rows):
        print("\nStopped where TensorRT is needed: this machine has no TensorRT runtime. Run this command on the "
              "target (TensorRT >= 8.5, pycuda, a CUDA GPU) to build, run and compare the engines.")
    if args.launch:
        launched = _launch_once(args.engine_dir, precisions[0].value, args.model, args.launch_timeout)
        code = 1 if 1 in (code, launched) else max(code, launched)
    print({0: "\nresult: PASS", 1: "\nresult: FAIL", 2: "\nresult: INCOMPLETE"}[code])
    return code


def _launch_once(engine_dir: Path, precision: str, model: str, timeout_s: float) -> int:
    """The launch check's line; 0 PASS, 1 FAIL, 2 when ``ros2`` is not on PATH."""
    import shutil

    if shutil.which("ros2") is None:
        print("\nlaunch: NEEDS-ROS2: `ros2` is not on PATH (source /opt/ros/<distro>/setup.bash and this "
              "workspace's install/setup.bash)")
        return 2
    from ..apps.launch_check import check_launch, ros2_launch_argv

    print("\nlaunch: starting " + " ".join(ros2_launch_argv(engine_dir, precision, model)), flush=True)
    result = check_launch(ros2_launch_argv(engine_dir, precision, model), env=dict(os.environ), timeout_s=timeout_s)
    print(result.summary())
    return 0 if result.came_up and result.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
