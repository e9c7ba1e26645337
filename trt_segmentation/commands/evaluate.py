"""Evaluate segmentation models on a Cityscapes-layout split: mIoU, per-class IoU, pixel accuracy, speed.

One model (PyTorch checkpoint, any ONNX variant through ONNX Runtime, or a TensorRT engine):
    trt_seg_evaluate --data data/street --onnx models/swiftnet_ss_rn18_512x1024_fp32.onnx
    trt_seg_evaluate --data data/street --checkpoint checkpoints/demo.pt
    trt_seg_evaluate --data data/street --engine engines/swiftnet_ss_rn18_512x1024_int8.engine
Agreement of one variant with another (on a labelled split, or on unlabelled --images):
    trt_seg_evaluate --data data/street --reference m_fp32.onnx --candidate m_int8.onnx
All precision variants of a model, as a markdown table:
    trt_seg_evaluate --data data/street --precision fp32 fp16 int8 int8-max int8-percentile mixed int8-cpu \\
        --onnx-dir models --model swiftnet_ss_rn18 --size 512x1024 --report reports/precisions.md
Frames of another size than the model input are resized to it, and predictions back to the label size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import cli
from ..artifacts import BackendKind

TOOL = "evaluate"


def _open(path: Path, args: argparse.Namespace, kind: BackendKind | None = None) -> Any:
    from ..runtime import open_model_file

    options: dict[str, object] = {}
    kind = kind or BackendKind.for_file(path)
    if kind is BackendKind.CHECKPOINT:
        h, w = args.size or (0, 0)
        options = {"height": h, "width": w, "device": args.device, "threads": args.threads}
    elif kind is BackendKind.ONNXRUNTIME and path.suffix.lower() == ".onnx":
        options = {"threads": args.threads}
    return open_model_file(path, kind, **options)


def _split(args: argparse.Namespace) -> Any:
    from ..data.cityscapes import CityscapesSplit

    return CityscapesSplit(args.data, args.split)


def _dataset_note(split: Any) -> list[str]:
    cities = {p.parent.name for p in split.image_paths}
    if "synthcity" in cities:
        return [f"The data are procedurally generated street scenes ({cli.script_name('make_street_scenes')}): a "
                "test and demo domain. These numbers say nothing about accuracy on Cityscapes."]
    return []


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser(TOOL, __doc__)
    cli.add_data(parser)
    parser.add_argument("--split", default="val", help="split to evaluate (default val)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N frames")
    model = parser.add_mutually_exclusive_group(required=True)
    cli.add_checkpoint(model, help="PyTorch SwiftNet checkpoint (.pt/.pth)")
    model.add_argument("--onnx", type=Path, metavar="FILE",
                       help="exported ONNX file (any precision variant), run by ONNX Runtime")
    model.add_argument("--engine", type=Path, metavar="FILE", help="TensorRT engine (needs TensorRT and a GPU)")
    model.add_argument("--reference", type=Path, metavar="FILE",
                       help="agreement mode: the reference model file (e.g. FP32)")
    cli.add_precision(model, what="table mode: variants to evaluate")
    parser.add_argument("--candidate", type=Path, metavar="FILE",
                        help="agreement mode: the model compared with --reference")
    parser.add_argument("--images", type=Path, metavar="DIR", help="agreement mode without labels: a folder of images")
    parser.add_argument("--onnx-dir", type=Path, metavar="DIR",
                        help="table mode: folder of <model>_<H>x<W>_<variant>.onnx files")
    cli.add_engine_dir(parser, help="table mode: use .engine files from this folder instead (TensorRT)")
    cli.add_model(parser, default=None, help="table mode: model name, e.g. swiftnet_ss_rn18")
    cli.add_size(parser, help="model input size (table mode: part of the file names; checkpoint: run at this size)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="table mode: write the markdown table here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the scores as JSON here")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for ONNX Runtime / torch (0 = default)")
    parser.add_argument("--device", default="cpu", help="torch device for --checkpoint (default cpu, e.g. cuda)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


@cli.command
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, argv, TOOL)
    progress = not args.quiet
    cli.require_file(args.checkpoint, "checkpoint")
    cli.require_file(args.onnx, "ONNX file")
    cli.require_file(args.reference, "reference model")
    cli.require_file(args.candidate, "candidate model")
    cli.require_file(args.images, "image folder", folder=True)
    cli.require_file(args.engine, "TensorRT engine")
    cli.require_file(args.data, "data folder", folder=True)
    from ..apps.evaluation import agreement, evaluate_backend, evaluate_variants, variants_markdown
    from ..artifacts import Precision
    from ..runtime.backend import BackendError

    try:
        if args.precision:
            if not (args.onnx_dir or args.engine_dir) or not args.model or not args.size:
                parser.error("--precision needs --onnx-dir (or --engine-dir), --model and --size")
            if not args.data:
                parser.error("--precision needs --data")
            split = _split(args)
            h, w = args.size
            variants = list(dict.fromkeys(Precision.parse(v) for v in args.precision))
            if args.engine_dir and not all(v.tensorrt for v in variants):
                parser.error("int8-cpu is an ONNX Runtime CPU variant with no engine: evaluate it with --onnx-dir")
            if args.engine_dir:
                rows = evaluate_variants(args.engine_dir, args.model, h, w, variants, split, args.limit,
                                         backend=BackendKind.TENSORRT, suffix=".engine", progress=progress)
                backend = "TensorRT"
            else:
                rows = evaluate_variants(args.onnx_dir, args.model, h, w, variants, split, args.limit,
                                         backend=BackendKind.ONNXRUNTIME, suffix=".onnx", progress=progress,
                                         threads=args.threads)
                backend = "ONNX Runtime"
            table = variants_markdown(rows, f"`{args.data}` split `{args.split}`", backend=backend,
                                      notes=_dataset_note(split))
            print(table)
            if args.report:
                args.report.parent.mkdir(parents=True, exist_ok=True)
                args.report.write_text(f"# {args.model} {h}x{w}: precision variants\n\n{table}")
                print(f"wrote {args.report}")
            if args.json:
                args.json.write_text(json.dumps({r.variant: (r.result.to_dict() if r.result else {"error": r.error})
                                                 for r in rows}, indent=2))
            return 0 if any(r.result for r in rows) else 1

        if args.reference:
            if not args.candidate:
                parser.error("--reference needs --candidate")
            ref, cand = _open(args.reference, args), _open(args.candidate, args)
            if args.images:
                from ..data.image_folder import iter_image_folder

                out = agreement(ref, cand, iter_image_folder(args.images, args.limit), progress=progress)
                out.pop("iou")
            else:
                if not args.data:
                    parser.error("agreement mode needs --data (labelled split) or --images")
                split = _split(args)
                ref_result = evaluate_backend(ref, split, args.limit, progress, keep_predictions=True, desc="reference")
                cand_result = evaluate_backend(cand, split, args.limit, progress, reference=ref_result.predictions,
                                               desc="candidate")
                assert cand_result.agreement is not None
                out = {"pixel_agreement": cand_result.agreement["pixel_agreement"],
                       "miou_vs_reference": cand_result.agreement["miou_vs_reference"],
                       "frames": cand_result.frames, "reference_miou": ref_result.miou,
                       "candidate_miou": cand_result.miou, "ms_per_frame_reference": ref_result.ms_per_frame,
                       "ms_per_frame_candidate": cand_result.ms_per_frame}
            print(f"reference {args.reference}\ncandidate {args.candidate}")
            for key, value in out.items():
                print(f"  {key:24s} {100 * value:.2f} %" if "agreement" in key or "miou" in key
                      else f"  {key:24s} {value:.1f}" if isinstance(value, float) else f"  {key:24s} {value}")
            if args.json:
                args.json.write_text(json.dumps(out, indent=2))
            return 0

        if not args.data:
            parser.error("--data is required")
        path = args.checkpoint or args.onnx or args.engine
        backend = _open(path, args, BackendKind.CHECKPOINT if args.checkpoint else BackendKind.TENSORRT if args.engine
                        else BackendKind.ONNXRUNTIME)
        split = _split(args)
        result = evaluate_backend(backend, split, args.limit, progress, desc=path.name)
        print(f"{path} on {args.data} [{args.split}]")
        print(result.summary())
        for note in _dataset_note(split):
            print(note)
        if args.json:
            args.json.write_text(json.dumps(result.to_dict(), indent=2))
        return 0
    except BackendError as exc:  # the model would not open or run: exit code 3 (other errors: 2, cli.command)
        return cli.error(exc, 3)


if __name__ == "__main__":
    sys.exit(main())
