#!/usr/bin/env python3
"""Time the segmentation node end to end over real DDS, beside the transport floor, in one run.

An independent camera process publishes pre-serialized rgb8 frames at --rate; first a minimal relay (serialized
frame in, pre-built mono8 out with the same header: no inference, no conversion) and then the node, started as
the launch file starts it, answer it; a listener takes each label's age (arrival minus header stamp). Prints and
writes to --out: node_benchmark.md (table with node/floor ratios), node_benchmark.json, node_benchmark.png
(age histograms), node.log and relay.log.

  # this CPU, near-free model (labels = one input channel): only the node's own cost shows
  tools/benchmark_node.py --size 1024x2048 --rate 5 --seconds 20 --backend onnxruntime --model-kind free
  # a real model with ONNX Runtime
  tools/benchmark_node.py --size 512x1024 --rate 2 --backend onnxruntime --engine-dir artifacts --precision fp32
  # on a CUDA machine: the torch executor on a checkpoint (FP16, CUDA graph)
  tools/benchmark_node.py --size 1024x2048 --rate 30 --backend torch --precision fp16 --checkpoint model.pt \
      --engine-size 1024x2048
  # on the Jetson: the TensorRT engine
  tools/benchmark_node.py --size 1024x2048 --rate 30 --backend tensorrt --precision int8 --engine-dir engines
With --camera-count N: the multi-camera comparison instead, in one run: N independent camera processes into N
single-camera nodes (batch-1 model), then the same cameras into one node with cameras:=[cam0..] (batch-N model,
<model>_<H>x<W>_b<N>_<precision> in --engine-dir beside the batch-1 one); prints aggregate throughput (and the
ratio), each camera's age p50/p95, the nodes' RSS and, on a GPU, their GPU memory (nvidia-smi); writes
multi_camera_benchmark.{md,json}.
  tools/benchmark_node.py --camera-count 4 --size 512x1024 --rate 2 --seconds 40 --engine-dir artifacts
Keep DDS on loopback (scripts/env.sh sets ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, ROS_LOCALHOST_ONLY=1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import add_checkpoint, parse_size  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(1024, 2048), metavar="HxW", help="camera frame size (default 1024x2048)")
    p.add_argument("--rate", type=float, default=5.0, help="camera rate in Hz (default 5)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of camera frames per phase (default 20)")
    p.add_argument("--floor-seconds", type=float, default=0.0,
                   help="seconds of the relay phase (default: --seconds; a long soak needs only a short floor)")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch", "tensorrt"),
                   help="the node's backend (default onnxruntime)")
    p.add_argument("--precision", default="fp32", help="the node's precision parameter (default fp32)")
    p.add_argument("--model-kind", choices=("free", "real"), default="real",
                   help="free: a generated near-free ONNX model (onnxruntime only) so that only the node's own cost "
                        "shows; real: the files in --engine-dir, --engine-path or --checkpoint (default real)")
    p.add_argument("--model", default="swiftnet_ss_rn18", help="model name in the file names (default swiftnet_ss_rn18)")
    p.add_argument("--engine-dir", type=Path, default=Path("artifacts"), help="folder of .onnx/.engine files")
    add_checkpoint(p, help="the torch backend's PyTorch checkpoint (.pt; the node's engine_path parameter)")
    p.add_argument("--engine-path", type=Path, help="explicit .engine file (tensorrt) instead of the --engine-dir "
                                                    "naming (a .pt here is read like --checkpoint)")
    p.add_argument("--engine-size", type=parse_size, metavar="HxW", help="the torch backend's network input size")
    p.add_argument("--slots", type=int, default=2, help="the node's inflight_slots (GPU backends; default 2)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="another node parameter, e.g. --param ort_threads=1 (repeatable)")
    p.add_argument("--camera-count", type=int, default=0, metavar="N",
                   help="multi-camera comparison with N cameras: N single-camera nodes vs one batched node "
                        "(needs the batch-1 and the _b<N>_ file; default 0 = the node vs relay benchmark)")
    p.add_argument("--batch-timeout-ms", type=float, default=30.0,
                   help="the batched node's batch_timeout_ms (with --camera-count; default 30)")
    p.add_argument("--profile-seconds", type=float, default=0.0,
                   help="py-spy record --gil on the node and each of its I/O processes for this many seconds after "
                        "the warm-up (the single-camera run, or the batched phase); writes gil_profile*.md "
                        "(default 0 = off)")
    p.add_argument("--out", type=Path, default=Path("benchmark_output"), help="output folder (default benchmark_output)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.model_kind == "free" and args.backend != "onnxruntime":
        print("error: --model-kind free is an ONNX model: use --backend onnxruntime", file=sys.stderr)
        return 2
    if args.camera_count and (args.camera_count < 2 or args.model_kind == "free"):
        print("error: --camera-count needs N >= 2 and --model-kind real (the batch-1 and batch-N files)",
              file=sys.stderr)
        return 2
    if args.checkpoint and (args.backend != "torch" or args.engine_path):
        print("error: --checkpoint is the torch backend's model (--backend torch, without --engine-path)",
              file=sys.stderr)
        return 2
    from harness.multi_camera_benchmark import run_multi
    from harness.node_benchmark import run

    try:
        run_multi(args) if args.camera_count else run(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
