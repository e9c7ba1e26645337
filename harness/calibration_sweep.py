"""Calibration sweep of one FP32 export: frames x method x selection -> time, peak memory, mIoU, agreement.

Each row is VARIANT:FRAMES:SELECTION[:SEED] (e.g. int8:64:spread, int8-kl2048:512:spread, int8:16:random:2; the
seed, default 0, only matters for the random selection). It is made by the package's
``make_variant`` in a process of its own (no calibration cache), which reports the call's wall time and its peak
RSS (the larger of its own and its quantizer subprocesses'); this process then scores the variant with
``evaluate_backend`` on the labelled split, with pixel agreement against the FP32 export's labels. Rows go to
WORK/sweep.jsonl as they finish (a rerun skips the rows already there, so an interrupted sweep resumes) and the
markdown table (docs/accuracy.md, "Calibration frames x method x selection") is rewritten after every row.

Example (the sweep in docs/accuracy.md):
  trt_seg_make_street_scenes /tmp/scenes --train 512 --size 256x512 --seed 0
  trt_seg_make_street_scenes /tmp/scenes --val 40 --size 256x512 --seed 1
  trt_seg_export_onnx --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --size 256x512 --out acc
  nice -n 5 python -m harness.calibration_sweep --onnx acc/swiftnet_ss_rn18_256x512_fp32.onnx --data /tmp/scenes \\
      --work /tmp/sweep
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# the sweep in docs/accuracy.md: entropy over frame counts, then selections (random with several seeds: how much the
# subset matters), then the other methods at 64 and 512 frames (their 512 rows are the first to drop when time is short)
DEFAULT_ROWS = (
    "int8:8:spread", "int8:16:spread", "int8:64:spread", "int8:128:spread", "int8:256:spread", "int8:512:spread",
    "int8:64:first", "int8:64:random", "int8:64:random:1", "int8:64:random:2", "int8:64:random:3",
    "int8:16:random:1", "int8:16:random:2", "int8:16:random:3", "int8:256:random:1",
    "int8-max:64:spread", "int8-percentile:64:spread", "int8-kl2048:64:spread",
    "int8-max:512:spread", "int8-percentile:512:spread", "int8-kl2048:512:spread",
)
METHOD_NAMES = {"int8": "int8 (ModelOpt entropy)", "int8-max": "int8-max (ModelOpt max)",
                "int8-percentile": "int8-percentile (ORT 2048-bin, 99.99 %)",
                "int8-kl2048": "int8-kl2048 (2048-bin KL)"}


@dataclass(frozen=True)
class Row:
    variant: str
    frames: int
    selection: str
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> Row:
        from trt_segmentation.artifacts import Precision
        from trt_segmentation.precision.calibration_data import SELECTIONS

        try:
            variant, frames, selection, *seed = text.split(":")
            if len(seed) > 1:
                raise ValueError("too many fields")
            row = cls(Precision.parse(variant).value, int(frames), selection, int(seed[0]) if seed else 0)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"a row is VARIANT:FRAMES:SELECTION[:SEED], got {text!r} ({exc})") from None
        if selection not in SELECTIONS or row.frames < 1:
            raise argparse.ArgumentTypeError(f"{text!r}: selection is one of {', '.join(SELECTIONS)}, frames >= 1")
        return row

    @property
    def name(self) -> str:
        return f"{self.variant}:{self.frames}:{self.selection}" + (f":{self.seed}" if self.seed else "")

    @property
    def selection_text(self) -> str:
        return f"{self.selection} (seed {self.seed})" if self.selection == "random" else self.selection


def calibrate_row(onnx: Path, data: Path, row: Row, out: Path, batch: int) -> dict[str, Any]:
    """Make ``row``'s variant with ``make_variant`` (run in the row's own process); seconds and peak RSS."""
    from trt_segmentation.artifacts import Precision
    from trt_segmentation.precision import make_variant

    start = time.perf_counter()
    report = make_variant(onnx, Precision(row.variant), out, f"cityscapes:{data}@train", calibration_count=row.frames,
                          calibration_batch=batch, calibration_selection=row.selection, calibration_seed=row.seed,
                          use_cache=False)
    seconds = time.perf_counter() - start
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # Linux: KiB; children: the largest
    frames = int(report.contract.extra.get("calibration_frames", row.frames))
    return {"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "calibration_frames": frames, "notes": report.notes}


def _calibrate_in_child(args: argparse.Namespace, row: Row, out: Path) -> dict[str, Any]:
    result = out.with_suffix(".calibration.json")
    command = [sys.executable, "-m", "harness.calibration_sweep", "--onnx", str(args.onnx), "--data", str(args.data),
               "--work", str(args.work), "--batch", str(args.batch),
               "--child-row", row.name, "--child-out", str(out)]
    subprocess.run(command, check=True)
    return dict(json.loads(result.read_text()))


def markdown(results: list[dict[str, Any]], fp32: dict[str, Any]) -> str:
    lines = ["| frames | method | selection | calibration s | peak RSS MB | mIoU % | Δ vs FP32 (points) | agreement % |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        delta = 100 * (r["miou"] - fp32["miou"])
        lines.append(f"| {r['frames']} | {METHOD_NAMES.get(r['variant'], r['variant'])} | "
                     f"{Row.parse(r['row']).selection_text} | "
                     f"{r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {100 * r['miou']:.2f} | {delta:+.2f} | "
                     f"{100 * r['agreement']:.3f} |")
    return "\n".join(lines) + f"\n\nFP32 export: mIoU {100 * fp32['miou']:.2f} % on {fp32['frames']} val frames.\n"


def _write_table(args: argparse.Namespace, done: dict[str, dict[str, Any]], fp32: dict[str, Any]) -> None:
    """The rows measured so far, in the order of ``--rows``."""
    (args.work / "sweep.md").write_text(markdown([done[r.name] for r in args.rows if r.name in done], fp32))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.calibration_sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", type=Path, required=True, help="the FP32 export")
    p.add_argument("--data", type=Path, required=True,
                   help="Cityscapes-layout root: calibration frames from its train split, scores on its val split")
    p.add_argument("--work", type=Path, required=True, help="folder for the variants, sweep.jsonl and sweep.md")
    p.add_argument("--rows", type=Row.parse, nargs="+", default=[Row.parse(r) for r in DEFAULT_ROWS],
                   metavar="VARIANT:FRAMES:SELECTION[:SEED]", help="rows to measure, in order (default: the 21 rows of docs/accuracy.md)")
    p.add_argument("--batch", type=int, default=8, help="calibration batch (default 8, the package's default)")
    p.add_argument("--limit", type=int, default=None, help="score only the first N val frames (default all)")
    p.add_argument("--child-row", help=argparse.SUPPRESS)  # internal: calibrate one row in this process
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child_row:
        out = args.child_out
        result = calibrate_row(args.onnx, args.data, Row.parse(args.child_row), out, args.batch)
        out.with_suffix(".calibration.json").write_text(json.dumps(result))
        return 0
    from trt_segmentation.apps.evaluation import evaluate_backend, open_model
    from trt_segmentation.data.cityscapes import CityscapesSplit

    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "sweep.jsonl"
    done = {d["row"]: d for d in map(json.loads, log.read_text().splitlines())} if log.is_file() else {}
    split = CityscapesSplit(args.data, "val")
    backend = open_model(args.onnx, "onnxruntime")
    try:
        reference = evaluate_backend(backend, split, args.limit, progress=False, keep_predictions=True)
    finally:
        backend.close()
    fp32 = {"miou": reference.miou, "frames": reference.frames}
    print(f"fp32: mIoU {100 * reference.miou:.2f} % on {reference.frames} val frames", flush=True)
    for index, row in enumerate(args.rows, 1):
        if row.name in done:
            print(f"[{index}/{len(args.rows)}] {row.name}: already in {log}", flush=True)
            continue
        print(f"[{index}/{len(args.rows)}] {row.name}: calibrating ({time.strftime('%H:%M:%S')})", flush=True)
        out = args.work / (row.name.replace(":", "_") + ".onnx")
        calibration = _calibrate_in_child(args, row, out)
        backend = open_model(out, "onnxruntime")
        try:
            scored = evaluate_backend(backend, split, args.limit, progress=False, reference=reference.predictions)
        finally:
            backend.close()
        assert scored.agreement is not None
        entry = {"row": row.name, "variant": row.variant, "frames": calibration["calibration_frames"],
                 "selection": row.selection_text, "seconds": calibration["seconds"],
                 "peak_rss_mb": calibration["peak_rss_mb"], "miou": scored.miou,
                 "agreement": scored.agreement["pixel_agreement"], "notes": calibration["notes"],
                 "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        done[row.name] = entry
        with log.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        print(f"[{index}/{len(args.rows)}] {row.name}: {entry['seconds']:.1f} s, {entry['peak_rss_mb']:.0f} MB, "
              f"mIoU {100 * scored.miou:.2f} %, agreement {100 * entry['agreement']:.3f} %", flush=True)
        _write_table(args, done, fp32)
    _write_table(args, done, fp32)
    print(f"table: {args.work / 'sweep.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
