"""The torch backend alone at saturation (no ROS, no node): frames/s of one process running N-frame batches, and of
N processes running single frames, fed from ordinary host arrays as the node feeds it from its frame rings.

It tells how much of a batched node's gap to the network's own rate is the backend's host work (the copy into the
page-locked slot, the upload, the download) and how much is the node's (mailboxes, conversion, publishing). Needs a
CUDA GPU and pycuda (the device tool: ``scripts/gpu_figures.sh batchprofile``). One run, printed as a table.

    python -m harness.backend_throughput --checkpoint model.pt --size 1024x2048 --batch 4 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, Dict, List

import numpy as np

from trt_segmentation.cli import parse_size


def measure(checkpoint: str, height: int, width: int, batch: int, slots: int, seconds: float) -> Dict[str, Any]:
    """Submit and collect ``batch``-frame runs with ``slots`` in flight for ``seconds`` after a 1 s warm-up; the
    frames/s and the p50 of each slot stage (ms per run)."""
    from trt_segmentation.runtime.torch_backend import TorchBackend

    backend = TorchBackend(checkpoint, height, width, slots=slots, precision="fp16", batch=batch)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]

    def run_for(duration: float) -> List[Dict[str, float]]:
        """Keep every slot busy for ``duration`` seconds; the stage timings of each run collected."""
        timings: List[Dict[str, float]] = []
        end = time.perf_counter() + duration
        while time.perf_counter() < end:
            while backend.in_flight < slots:
                backend.submit_batch(frames) if batch > 1 else backend.submit(frames[0])
            timings.append(backend.collect()[1].timings_ms)
        return timings

    run_for(1.0)  # warm-up
    start = time.perf_counter()
    timings = run_for(seconds)
    elapsed = time.perf_counter() - start
    while backend.in_flight:
        backend.collect()
    backend.close()
    stages = [key for key in timings[0] if key.startswith("gpu_")]
    return {"batch": batch, "frames_per_s": len(timings) * batch / elapsed,
            "stages_p50_ms": {k: float(np.median([t[k] for t in timings])) for k in stages}}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="SwiftNet checkpoint (.pt) the torch backend loads")
    p.add_argument("--size", type=parse_size, default=(1024, 2048), metavar="HxW", help="network input size")
    p.add_argument("--batch", type=int, default=4, help="cameras: one process of this batch vs this many processes")
    p.add_argument("--slots", type=int, default=2, help="runs in flight per process (the node's inflight_slots)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per configuration")
    p.add_argument("--one", type=int, metavar="BATCH", help=argparse.SUPPRESS)  # a child: one configuration, JSON
    args = p.parse_args(argv)
    height, width = args.size
    if args.one is not None:
        print(json.dumps(measure(args.checkpoint, height, width, args.one, args.slots, args.seconds)), flush=True)
        return 0
    child = [sys.executable, "-m", "harness.backend_throughput", "--checkpoint", args.checkpoint,
             "--size", f"{height}x{width}", "--slots", str(args.slots), "--seconds", str(args.seconds), "--one"]
    batched = json.loads(subprocess.run(child + [str(args.batch)], check=True, capture_output=True,
                                        text=True).stdout.strip().splitlines()[-1])
    procs = [subprocess.Popen(child + ["1"], stdout=subprocess.PIPE, text=True) for _ in range(args.batch)]
    singles = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    single_fps = sum(s["frames_per_s"] for s in singles)
    print(f"### The torch backend alone, {height}x{width}, FP16 CUDA graph, {args.slots} slots ("
          f"{time.strftime('%Y-%m-%d')})\n")
    print("| configuration | frames/s | host copy | h2d | inference | d2h (p50 ms per run) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, fps, stages in ((f"1 process, batch {args.batch}", batched["frames_per_s"], batched["stages_p50_ms"]),
                              (f"{args.batch} processes, batch 1 (sum; stages of the first)", single_fps,
                               singles[0]["stages_p50_ms"])):
        cells = " | ".join(f"{stages.get('gpu_' + k, float('nan')):.2f}"
                           for k in ("host_copy", "h2d", "inference", "d2h"))
        print(f"| {name} | {fps:.1f} | {cells} |")
    print(f"\nbatched / processes: {batched['frames_per_s'] / single_fps:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
