"""Measure inference latency per precision (or per model) in one run and print the ratios.

Backends, on the files the build tools wrote:
  trt_seg_benchmark --onnx-dir artifacts --model swiftnet_ss_rn18 --size 512x1024 --precision fp32 fp16 int8 mixed
  trt_seg_benchmark --engine-dir engines --model swiftnet_ss_rn18 --size 1024x2048 --precision fp32 fp16 int8 mixed
PyTorch on a CUDA GPU (random weights; speed does not depend on them):
  trt_seg_benchmark --torch --model swiftnet_ss_rn18 swiftnet_pyr_rn18 --size 1024x2048 --dtypes fp32 fp16
  (rows: eager channels-last, the same captured as one CUDA graph, and with --executor the node's torch executor)
Per-part profile (encoder / SPP or pyramid fusion / upsampling path / final resize + ArgMax, seed 000's split):
  trt_seg_benchmark --parts torch --model swiftnet_ss_rn18 swiftnet_pyr_rn34 --size 1024x2048 --dtypes fp32 fp16
    (GPU: each part its own CUDA graph, channels-last, cuDNN autotuned, CUDA events; the whole frame last)
  trt_seg_benchmark --parts onnxruntime --model swiftnet_ss_rn18 --size 512x1024
    (CPU: each part exported to its own ONNX file and run in its own ONNX Runtime session; the whole model last)
Compare rows of one run only: absolute numbers depend on the machine and what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import cli
from ..artifacts import ENGINE_SET, BackendKind, names

TOOL = "benchmark"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--onnx-dir", type=Path, help="folder of <model>_<H>x<W>_<precision>.onnx (ONNX Runtime)")
    cli.add_engine_dir(where, help="folder of <model>_<H>x<W>_<precision>.engine (TensorRT)")
    where.add_argument("--torch", action="store_true", help="PyTorch models on --device (CUDA events)")
    where.add_argument("--onnx-files", type=Path, nargs="+", metavar="FILE",
                       help="any exported ONNX files (e.g. plain vs --fold-bn vs pruned), one row each, ONNX Runtime")
    where.add_argument("--parts", choices=("torch", "onnxruntime"),
                       help="per-part profile of each --model: torch (CUDA GPU, --dtypes) or onnxruntime (CPU, fp32)")
    cli.add_model(p, default=None, many=True,
                  help="one or more model names (in the file names; --torch: the architectures); default swiftnet_ss_rn18")
    cli.add_size(p, default=(1024, 2048), help="input size")
    cli.add_precision(p, default=list(names(ENGINE_SET)), what="variants to time (files mode)")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "fp16"], help="--torch: fp32, fp16, bf16")
    p.add_argument("--checkpoints", type=Path, nargs="+", metavar="FILE", default=[],
                   help="--torch, --parts: also time these checkpoints (e.g. full vs trt_seg_prune output), rows named by file")
    p.add_argument("--fold-bn", action="store_true",
                   help="--torch: also time each network with its decoder batch norms folded (models/fold.py)")
    p.add_argument("--executor", action="store_true",
                   help="--torch: also time the node's torch executor through the CUDA slots (needs pycuda)")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per row (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default)")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    models = args.model or ([] if args.checkpoints else ["swiftnet_ss_rn18"])
    from ..apps.benchmarking import (
        format_table,
        time_backend,
        time_torch_executor,
        time_torch_graph,
        time_torch_model,
    )

    height, width = args.size
    if args.parts:
        return _parts(args, models, height, width)
    timings = []
    if args.torch:
        import torch

        if not torch.cuda.is_available():
            print("error: --torch times on a CUDA GPU (CUDA events) and this PyTorch sees none", file=sys.stderr)
            return 2
        from ..models import architecture_from_name, load_checkpoint
        from ..models.fold import fold_batchnorms
        from ..models.swiftnet import SwiftNet

        warmup, repeats = max(args.warmup, 10), max(args.repeats, 50)
        networks = [(name, lambda name=name: SwiftNet(architecture_from_name(name))) for name in models]
        networks += [(path.stem, lambda path=path: load_checkpoint(path)) for path in args.checkpoints]
        if args.fold_bn:
            networks += [(f"{label} folded", lambda make=make: fold_batchnorms(make())) for label, make in networks]
        for name, make in networks:
            for dtype in args.dtypes:
                model = make()
                timings.append(time_torch_model(f"{name} {dtype} eager", model, height, width, dtype, "cuda",
                                                warmup, repeats))
                print(f"  {timings[-1]}", flush=True)
                if dtype not in ("fp32", "fp16"):
                    continue  # the node's executor runs fp32 or fp16
                timings.append(time_torch_graph(f"{name} {dtype} CUDA graph", model, height, width, dtype, "cuda",
                                                warmup, repeats))
                print(f"  {timings[-1]}", flush=True)
                if args.executor:
                    timings.append(time_torch_executor(f"{name} {dtype} node executor (slots, CUDA graph)", model,
                                                       height, width, dtype, True, 1, warmup, repeats))
                    print(f"  {timings[-1]}", flush=True)
        title = f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, {height}x{width}, batch 1 (GPU time, CUDA events)"
    else:
        import numpy as np

        from ..artifacts import artifact_path
        from ..runtime import create_backend

        kind, folder, suffix = ((BackendKind.ONNXRUNTIME, args.onnx_dir, ".onnx") if not args.engine_dir
                                else (BackendKind.TENSORRT, args.engine_dir, ".engine"))
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
        if args.onnx_files:
            rows = [(path.stem, path) for path in args.onnx_files]
        else:
            rows = [(variant if len(models) == 1 else f"{name} {variant}",
                     artifact_path(folder, name, height, width, variant, suffix))
                    for name in models for variant in args.precision]
        for label, path in rows:
            if not path.is_file():
                print(f"  skipping {label}: {path} not found", file=sys.stderr)
                continue
            options = {"threads": args.threads} if kind is BackendKind.ONNXRUNTIME else {}
            with create_backend(kind, path, **options) as backend:
                timings.append(time_backend(label, backend, frames, args.warmup, args.repeats))
            print(f"  {timings[-1]}", flush=True)
        what = "files given" if args.onnx_files else " ".join(models)
        title = f"{kind}, {what} {height}x{width}, batch 1 (wall time of a whole infer call)"
    if not timings:
        print("error: nothing was timed", file=sys.stderr)
        return 2
    print()
    print(format_table(timings, title))
    return 0


def _parts(args: argparse.Namespace, models: list[str], height: int, width: int) -> int:
    """--parts: one table per model and dtype (parts, their sum, the whole frame), all from this run."""
    import tempfile

    import torch

    from ..apps.benchmarking import format_parts_table, time_onnxruntime_parts, time_torch_parts
    from ..models import architecture_from_name
    from ..models.swiftnet import SwiftNet, check_input_size

    if args.parts == "torch" and not torch.cuda.is_available():
        print("error: --parts torch times on a CUDA GPU (CUDA events) and this PyTorch sees none", file=sys.stderr)
        return 2
    from ..models import load_checkpoint

    def random_weights(arch: Any) -> Any:
        torch.manual_seed(0)  # random weights: speed does not depend on them
        return SwiftNet(arch)

    def own_weights(model: Any) -> Callable[[Any], Any]:
        return lambda arch: model

    networks: list[tuple[str, Any, Callable[[Any], Any]]] = [
        (name, architecture_from_name(name), random_weights) for name in models]
    # checkpoints (a pruned one has its own widths): their own weights
    loaded = [(path.stem, load_checkpoint(path)) for path in args.checkpoints]
    networks += [(label, model.arch, own_weights(model)) for label, model in loaded]
    for name, arch, make in networks:
        check_input_size(arch, height, width)
        if args.parts == "torch":
            warmup, repeats = max(args.warmup, 10), max(args.repeats, 50)
            for dtype in args.dtypes:
                timings = time_torch_parts(name, make(arch), height, width, dtype, warmup, repeats)
                title = (f"{name} {dtype}, PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, "
                         f"{height}x{width}, batch 1 (GPU time, CUDA events, one CUDA graph per row)")
                print(format_parts_table(timings, title) + "\n", flush=True)
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            with tempfile.TemporaryDirectory(prefix="trt_seg_parts_") as folder:
                timings = time_onnxruntime_parts(name, make(arch), height, width, folder, args.threads,
                                                 args.warmup, args.repeats)
            title = (f"{name} fp32, ONNX Runtime (CPU), {height}x{width}, batch 1 "
                     "(wall time of one session run per row; each part exported alone)")
            print(format_parts_table(timings, title) + "\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
