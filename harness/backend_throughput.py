"""The torch backend alone at saturation (no ROS, no node): frames/s of one process running N-frame batches, and of
N processes running single frames, fed either from ordinary host arrays (``copy``: each frame copied into the
slot's page-locked input first, the node's path before issue #31) or from page-locked shared-memory frame rings
(``ring``: each frame uploaded straight from its ring slot, the node's path since; the ceiling a node can reach).

It tells how much of a batched node's gap to the network's own rate is the backend's host work (the copy into the
page-locked slot, the upload, the download) and how much is the node's (mailboxes, conversion, publishing). Needs a
CUDA GPU and pycuda (the device tool: ``scripts/gpu_figures.sh zerocopy``). One run, printed as a table.

    python -m harness.backend_throughput --checkpoint model.pt --size 1024x2048 --batch 4 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np

from trt_segmentation.cli import parse_size


def measure(checkpoint: str, height: int, width: int, batch: int, slots: int, seconds: float,
            source: str = "copy") -> Dict[str, Any]:
    """Submit and collect ``batch``-frame runs with ``slots`` in flight for ``seconds`` after a 1 s warm-up, the
    frames taken from host arrays (``source`` copy) or from a page-locked frame ring (ring); the frames/s, the rows
    the backend copied on the host and the p50 of each slot stage (ms per run)."""
    from trt_segmentation.node.camera_io.frame_ring import FrameRing, ring_name
    from trt_segmentation.node.ring_pinning import RingPinning
    from trt_segmentation.runtime.torch_backend import TorchBackend

    backend = TorchBackend(checkpoint, height, width, slots=slots, precision="fp16", batch=batch)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]
    ring = None
    if source == "ring":  # one slot per camera of one ring, as the node's rings hold them
        ring = FrameRing.create(ring_name(os.getpid(), 0, 1), batch, height * width)
        told: List[str] = []
        if not RingPinning(backend, told.append).opened(ring):
            raise SystemExit(f"the ring could not be page-locked: {told}")
        for slot, frame in enumerate(frames):
            ring.pixels(slot, height, width)[:] = frame
        frames = [ring.pixels(slot, height, width) for slot in range(batch)]

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
    copied = backend.pipeline.rows_copied
    backend.close()
    if ring is not None:
        ring.unlink()
    stages = [key for key in timings[0] if key.startswith("gpu_")]
    return {"batch": batch, "frames_per_s": len(timings) * batch / elapsed, "source": source, "rows_copied": copied,
            "stages_p50_ms": {k: float(np.median([t[k] for t in timings])) for k in stages}}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="SwiftNet checkpoint (.pt) the torch backend loads")
    p.add_argument("--size", type=parse_size, default=(1024, 2048), metavar="HxW", help="network input size")
    p.add_argument("--batch", type=int, default=4, help="cameras: one process of this batch vs this many processes")
    p.add_argument("--slots", type=int, default=2, help="runs in flight per process (the node's inflight_slots)")
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per configuration")
    p.add_argument("--input", choices=("copy", "ring", "both"), default="both",
                   help="frames from host arrays (copy), from page-locked frame rings (ring), or both: the batch "
                        "from each, the processes from rings")
    p.add_argument("--one", type=int, metavar="BATCH", help=argparse.SUPPRESS)  # a child: one configuration, JSON
    p.add_argument("--source", choices=("copy", "ring"), default="copy", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    height, width = args.size
    if args.one is not None:
        print(json.dumps(measure(args.checkpoint, height, width, args.one, args.slots, args.seconds, args.source)),
              flush=True)
        return 0
    child = [sys.executable, "-m", "harness.backend_throughput", "--checkpoint", args.checkpoint,
             "--size", f"{height}x{width}", "--slots", str(args.slots), "--seconds", str(args.seconds), "--one"]

    def one(batch: int, source: str) -> Optional[Dict[str, Any]]:
        """One configuration's figures; None (its reason printed) when it could not run, e.g. rings that could not
        be page-locked, so the other configurations are still reported."""
        done = subprocess.run(child + [str(batch), "--source", source], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"batch {batch} from {source}: failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            return None
        result: Dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    sources = ("copy", "ring") if args.input == "both" else (args.input,)
    measured = [(f"1 process, batch {args.batch}, {source}", one(args.batch, source)) for source in sources]
    if args.input == "both" and measured[-1][1] is None:
        sources = ("copy",)  # the rings could not be used: the processes from host arrays
    rows = [(name, result) for name, result in measured if result is not None]
    procs = [subprocess.Popen(child + ["1", "--source", sources[-1]], stdout=subprocess.PIPE, text=True)
             for _ in range(args.batch)]
    outputs = [proc.communicate()[0] for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit("a single-frame process failed (its error is above)")
    singles = [json.loads(output.strip().splitlines()[-1]) for output in outputs]
    summed = dict(singles[0], frames_per_s=sum(s["frames_per_s"] for s in singles),
                  rows_copied=sum(s["rows_copied"] for s in singles))
    rows.append((f"{args.batch} processes, batch 1, {sources[-1]} (sum; stages of the first)", summed))
    print(f"### The torch backend alone, {height}x{width}, FP16 CUDA graph, {args.slots} slots ("
          f"{time.strftime('%Y-%m-%d')})\n")
    print("| configuration | frames/s | rows copied on the host | host copy | h2d | inference | d2h (p50 ms per run) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in rows:
        stages = result["stages_p50_ms"]
        cells = " | ".join(f"{stages.get('gpu_' + k, float('nan')):.2f}" for k in ("host_copy", "h2d", "inference", "d2h"))
        print(f"| {name} | {result['frames_per_s']:.1f} | {result['rows_copied']} | {cells} |")
    print()
    for name, result in rows[:-1]:
        print(f"{name} / processes: {result['frames_per_s'] / summed['frames_per_s']:.2f}x")
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
