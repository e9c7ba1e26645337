#!/usr/bin/env python3
"""Export a SwiftNet checkpoint (or random weights) to a static-shape ONNX file for the runtimes and TensorRT.

Examples:
  tools/export_onnx.py --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --size 512x1024 --out-dir artifacts
  tools/export_onnx.py --model swiftnet_pyr_rn34 --random-weights --size 1080x1920 --input uint8_bgr --output logits
The file is named <model>_<H>x<W>_fp32.onnx (the name the node and the engine builder look for) unless --out is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import parse_size  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="PyTorch checkpoint in the original SwiftNet key layout")
    src.add_argument("--random-weights", action="store_true", help="export an untrained model (for tests/speed)")
    p.add_argument("--model", default="swiftnet_ss_rn18",
                   help="architecture when using --random-weights: swiftnet_ss_rn18, swiftnet_ss_rn34, "
                        "swiftnet_pyr_rn18, swiftnet_pyr_rn34 (a checkpoint says its own)")
    p.add_argument("--num-classes", type=int, default=19, help="classes for --random-weights (default 19)")
    p.add_argument("--size", type=parse_size, default=(1024, 2048), metavar="HxW",
                   help="static input size, e.g. 1024x2048 (default), 720x1280, 375x1242")
    p.add_argument("--input", dest="input_format", default="uint8_rgb",
                   choices=["uint8_rgb", "uint8_bgr", "float_normalised"],
                   help="uint8_rgb/uint8_bgr: camera bytes (1,H,W,3) with normalisation in the graph (default "
                        "uint8_rgb); float_normalised: (1,3,H,W) float already normalised")
    p.add_argument("--output", default="labels_uint8", choices=["labels_uint8", "labels_int32", "logits"],
                   help="labels_uint8 (ArgMax in the graph, default), labels_int32, or raw logits")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17, default 17)")
    p.add_argument("--out-dir", type=Path, default=Path("artifacts"), help="folder for the file (default artifacts/)")
    p.add_argument("--out", type=Path, help="explicit output path (overrides --out-dir naming)")
    p.add_argument("--check-tensorrt", action="store_true",
                   help="also parse and build the file with the TensorRT(-RTX) parser/builder available here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from trt_segmentation.artifacts import artifact_path
    from trt_segmentation.export import ExportError, ExportOptions, export_onnx
    from trt_segmentation.models import CheckpointError, architecture_from_name, load_checkpoint
    from trt_segmentation.models.swiftnet import SwiftNet

    try:
        if args.checkpoint:
            model = load_checkpoint(args.checkpoint)
        else:
            model = SwiftNet(architecture_from_name(args.model, args.num_classes)).eval()
        height, width = args.size
        options = ExportOptions(height, width, args.input_format, args.output, args.opset)
        out = args.out or artifact_path(args.out_dir, model.arch.name, height, width, "fp32", ".onnx")
        contract = export_onnx(model, out, options)
    except (CheckpointError, ExportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {contract.model} {contract.height}x{contract.width}, input {contract.input_name} "
          f"({contract.input_format}), output {contract.output_name} ({contract.output})")
    if args.check_tensorrt:
        from trt_segmentation.engine.tensorrt_parse_check import TensorRTUnavailable, check_onnx

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
