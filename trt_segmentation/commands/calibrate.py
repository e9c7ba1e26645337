"""Make precision variants of an exported FP32 ONNX: fp16, INT8 (entropy / max / percentile), mixed, int8-cpu.

Examples:
  trt_seg_calibrate --onnx artifacts/swiftnet_ss_rn18_512x1024_fp32.onnx --precision int8 int8-max int8-percentile \\
      --calibration data/street/leftImg8bit/train
  trt_seg_calibrate --onnx m_fp32.onnx --precision mixed --calibration bag:recordings/drive1@/camera/image_raw \\
      --mixed-config my_mixed.yaml --check 4

INT8 is explicit quantization (Q/DQ): symmetric, per-channel weights, no bias quantization, activation scales
calibrated on the given frames with NVIDIA ModelOpt (entropy, max) or ONNX Runtime's histogram (percentile).
int8-cpu is for ONNX Runtime on CPUs only (never TensorRT): ONNX Runtime's quantize_static with uint8 asymmetric
activations, per-channel int8 weights, Conv only, MinMax ranges; 7-bit weights on x86 CPUs without VNNI.
Scales are cached next to the output as <name>.calib.json and reused while model, frames and method match.
Outputs are named <model>_<H>x<W>_<precision>.onnx in --out (int8 = entropy, the default method; a batch-N FP32
ONNX gives <model>_<H>x<W>_b<N>_<precision>.onnx).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import cli
from ..precision.calibration_data import DEFAULT_SELECTION, SELECTIONS

TOOL = "calibrate"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    p.add_argument("--onnx", type=Path, required=True, metavar="FILE",
                   help=f"FP32 ONNX exported by {cli.script_name('export_onnx')}")
    cli.add_precision(p, required=True, what="variants to make (fp32 is the input itself)")
    cli.add_calibration(p)
    p.add_argument("--calibration-select", choices=SELECTIONS, default=DEFAULT_SELECTION,
                   help="which frames of the source: spread = evenly over it (every k-th image, each city its share, "
                        "a bag's whole time span), random = a seeded sample, first = the first N (default spread)")
    p.add_argument("--calibration-seed", type=int, default=0, help="seed of --calibration-select random (default 0)")
    p.add_argument("--percentile", type=float, default=None, metavar="P",
                   help="percentile for int8-percentile (default 99.99)")
    p.add_argument("--mixed-config", type=Path, metavar="YAML", help="layer overrides for mixed (docs/precision.md)")
    cli.add_out(p, help="output folder (default: the folder of --onnx)")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not write the calibration cache")
    p.add_argument("--check", type=int, default=0, metavar="N",
                   help="afterwards, parse+build each variant with TensorRT-RTX and report its label agreement "
                        "with FP32 on N calibration frames (ONNX Runtime)")
    p.add_argument("--verbose", action="store_true", help="log every step")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.onnx, "ONNX file")
    cli.require_file(args.mixed_config, "mixed-precision config")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.verbose:
        logging.getLogger("trt_segmentation.engine").setLevel(logging.WARNING)
    from ..apps.evaluation import label_agreement
    from ..artifacts import artifact_path
    from ..precision import CalibrationDataError, make_variant
    from ..precision.calibration_data import parse_source
    from ..precision.variants import needs_calibration, read_fp32_contract

    # the source's text parsed once, here at the edge; read once below and handed to every variant
    source = (parse_source(args.calibration, count=args.calibration_count, batch_size=args.calibration_batch,
                           selection=args.calibration_select, seed=args.calibration_seed)
              if args.calibration else None)
    variants = cli.expand_precisions(args.precision)
    contract = read_fp32_contract(args.onnx)
    calibration = None
    if source is not None:
        calibration = source.load(contract)
        print(f"calibration: {len(calibration)} frames from {calibration.description}")
    elif any(needs_calibration(v) for v in variants):
        raise CalibrationDataError("int8, int8-*, mixed and int8-cpu need --calibration DIR | "
                                   "cityscapes:ROOT[@split] | bag:PATH[@/topic]")
    out_dir = args.out or args.onnx.parent
    reports = []
    for variant in variants:
        out = artifact_path(out_dir, contract.model, contract.height, contract.width, variant, ".onnx",
                            batch=getattr(contract, "batch", 1))
        report = make_variant(args.onnx, variant, out, calibration, use_cache=not args.no_cache,
                              mixed_config=args.mixed_config, percentile=args.percentile)
        notes = "; " + "; ".join(report.notes) if report.notes else ""
        print(f"{report.variant}: {report.path} ({report.seconds:.1f} s{notes})")
        reports.append(report)
    if args.check:
        from ..engine.tensorrt_parse_check import TensorRTUnavailable, check_onnx
        from ..precision.variants import synthetic_frames

        frames = calibration.frames[: args.check] if calibration is not None else synthetic_frames(contract, args.check)
        failed = False
        # frames that do not fit the model or a backend failure: cli.command's one error line
        for report in reports:
            if not report.variant.tensorrt:  # an ONNX Runtime CPU variant: TensorRT never gets it
                agree = label_agreement(args.onnx, report.path, frames)
                print(f"  {report.variant.value:16s} TensorRT check not applicable (ONNX Runtime CPU variant); "
                      f"label agreement with fp32 on {len(frames)} frames: {agree:.4%}")
                continue
            try:
                check = check_onnx(report.path)
                trt_line = ("TensorRT-RTX build OK" if check.ok
                            else "TensorRT-RTX FAILED: " + "; ".join(check.errors))
                failed |= not check.ok
            except TensorRTUnavailable as exc:
                trt_line = f"TensorRT check skipped ({exc})"
            agree = label_agreement(args.onnx, report.path, frames)
            print(f"  {report.variant.value:16s} {trt_line}; label agreement with fp32 on {len(frames)} frames: "
                  f"{agree:.4%}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
