"""Export a SwiftNet checkpoint (or random weights) to a static-shape ONNX file for the runtimes and TensorRT.

Examples:
  trt_seg_export_onnx --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --size 512x1024 --out artifacts
  trt_seg_export_onnx --checkpoint my.pt --size 512x1024 --batch 3 --out artifacts   # 3 cameras per run
  trt_seg_export_onnx --model swiftnet_pyr_rn34 --random-weights --size 1080x1920 --input-format uint8_bgr --output logits
In a folder given by --out the file is named <model>_<H>x<W>_fp32.onnx (<model>_<H>x<W>_b<N>_fp32.onnx for
--batch N > 1), the name the node and the engine builder look for; an --out ending in .onnx is the file itself.
"""

from __future__ import annotations

import argparse
import sys

from .. import cli

TOOL = "export_onnx"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    cli.add_checkpoint(src)
    src.add_argument("--random-weights", action="store_true", help="export an untrained model (for tests/speed)")
    cli.add_model(p, help="architecture when using --random-weights: swiftnet_ss_rn18, swiftnet_ss_rn34, "
                          "swiftnet_pyr_rn18, swiftnet_pyr_rn34 (a checkpoint says its own)")
    p.add_argument("--num-classes", type=int, default=19, help="classes for --random-weights (default 19)")
    cli.add_size(p, default=(1024, 2048), help="static input size, e.g. 1024x2048, 720x1280, 375x1242")
    cli.add_batch(p)
    p.add_argument("--input-format", default="uint8_rgb",
                   choices=["uint8_rgb", "uint8_bgr", "float_normalised"],
                   help="uint8_rgb/uint8_bgr: camera bytes (N,H,W,3) with normalisation in the graph (default "
                        "uint8_rgb); float_normalised: (N,3,H,W) float already normalised")
    p.add_argument("--output", default="labels_uint8", choices=["labels_uint8", "labels_int32", "logits"],
                   help="labels_uint8 (ArgMax in the graph, default), labels_int32, or raw logits")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="exact lighter graph: the decoder's batch norms folded into convs (default; "
                        "--no-fold-bn exports the plain graph; the contract records which: docs/speed_levers.md)")
    p.add_argument("--argmax-before-resize", action="store_true",
                   help="ArgMax at 1/4 resolution, labels resized nearest (not exact: docs/speed_levers.md)")
    cli.add_out(p, default="artifacts", help="output folder, or a path ending in .onnx for the file itself")
    p.add_argument("--check-tensorrt", action="store_true",
                   help="also parse and build the file with the TensorRT(-RTX) parser/builder available here")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.checkpoint, "checkpoint")
    from ..artifacts import InputFormat, Precision, artifact_path
    from ..export import ExportOptions, export_onnx
    from ..models import architecture_from_name, load_checkpoint
    from ..models.swiftnet import SwiftNet

    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
    else:
        model = SwiftNet(architecture_from_name(args.model, args.num_classes)).eval()
    height, width = args.size
    options = ExportOptions(height, width, InputFormat.parse(args.input_format), args.output, args.opset, batch=args.batch,
                            fold_batchnorm=args.fold_bn, argmax_before_resize=args.argmax_before_resize)
    out = (args.out if args.out.suffix.lower() == ".onnx"
           else artifact_path(args.out, model.arch.name, height, width, Precision.FP32, ".onnx", batch=args.batch))
    contract = export_onnx(model, out, options)
    batch = f", batch {args.batch}" if args.batch > 1 else ""
    print(f"wrote {out}: {contract.model} {contract.height}x{contract.width}{batch}, input {contract.input_name} "
          f"({contract.input_format}), output {contract.output_name} ({contract.output})")
    if args.check_tensorrt:
        from ..engine.tensorrt_parse_check import TensorRTUnavailable, check_onnx

        try:
            report = check_onnx(out)
        except TensorRTUnavailable as exc:
            print(f"TensorRT check skipped: {exc}", file=sys.stderr)
            return 0
        print(report.summary())
        return 0 if report.ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
