"""Train or fine-tune SwiftNet on a Cityscapes-layout root (leftImg8bit/ + gtFine/), the original recipe by default.

Defaults follow orsic/swiftnet (random flip, random square crop-and-scale 768, batch 14, Adam with lr 4e-4/1e-4 and
weight decay 1e-4/2.5e-5 for decoder/encoder, cosine to 1e-6 over 250 epochs, validation every 4 epochs).
Writes to --out: last.pt / best.pt (weights in the original SwiftNet key layout, readable by every tool here),
training_state.pt (for --resume), history.jsonl, training_curve.png (loss and val mIoU; needs matplotlib), and
with --export-fp16 a half-precision copy for distribution. More: docs/training.md.

Examples:
  trt_seg_train --data data/cityscapes --device cuda --out runs/rn18          # the original recipe
  trt_seg_train --data data/streets --crop 448 --batch-size 24 --iterations 10000 --lr 1e-3 \\
      --encoder-lr 1e-3 --encoder-weight-decay 1e-4 --warmup 300 --cache device --workers 16 \\
      --val-every 2500 --out runs/streets --export-fp16 runs/streets/fp16.pt  # demo checkpoint, docs/training.md
  trt_seg_train --resume runs/streets                                              # continue an interrupted run
  trt_seg_train --data mydata --init trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --epochs 20  # fine-tune
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import cli

TOOL = "train"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    cli.add_data(p, help="Cityscapes-layout root with train (and val) splits")
    cli.add_model(p, help="swiftnet_ss_rn18, swiftnet_ss_rn34, swiftnet_pyr_rn18 or swiftnet_pyr_rn34")
    p.add_argument("--num-classes", type=int, default=19, help="classes (default 19, Cityscapes trainIds)")
    p.add_argument("--train-split", default="train", help="split to train on (default train)")
    p.add_argument("--val-split", default="val", help="split to validate on, '' for none (default val)")
    p.add_argument("--crop", type=int, default=768, help="square training crop in px (default 768; 448 at half res)")
    p.add_argument("--batch-size", type=int, default=14, help="images per step (default 14)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help="train this many epochs (default 250)")
    length.add_argument("--iterations", type=int, help="train this many steps instead of epochs")
    p.add_argument("--lr", type=float, default=4e-4, help="decoder learning rate (default 4e-4)")
    p.add_argument("--encoder-lr", type=float, default=1e-4,
                   help="encoder learning rate (default 1e-4, for an ImageNet-initialised encoder; from scratch "
                        "use the decoder's)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="decoder weight decay (default 1e-4)")
    p.add_argument("--encoder-weight-decay", type=float, default=2.5e-5, help="encoder weight decay (default 2.5e-5)")
    p.add_argument("--min-lr", type=float, default=1e-6, help="end of the cosine schedule (default 1e-6)")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps (default 0, as the original)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                   help="mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling; default on)")
    p.add_argument("--workers", type=int, default=4, help="data loading processes (default 4)")
    p.add_argument("--cache", choices=["none", "ram", "device"], default="none",
                   help="keep the decoded training split in RAM or on the GPU (fast; needs one image size)")
    p.add_argument("--val-every", type=int, default=4,
                   help="validate every N epochs (with --epochs) or N steps (with --iterations); 0: only at the end")
    p.add_argument("--max-val-images", type=int, help="validate on the first N images only")
    p.add_argument("--log-every", type=int, default=50, help="log the mean loss every N steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of sample order, augmentation and init (default 0)")
    p.add_argument("--init", type=Path, metavar="CHECKPOINT",
                   help="start from these weights (fine-tuning); a different class count re-initialises the logits")
    p.add_argument("--resume", type=Path, metavar="OUT_DIR",
                   help="continue the run saved in this output folder (its training_state.pt and last.pt)")
    p.add_argument("--stop-after", type=int, metavar="N",
                   help="end this session after N steps, resumable with --resume (to fit a time slot)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="end this session after this much training time, resumable with --resume")
    cli.add_out(p, default="runs/train")
    p.add_argument("--export-fp16", type=Path, metavar="PATH",
                   help="at the end, also write the best (else last) weights as fp16 to PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    return p


# argparse destination -> TrainConfig field, for the options a resumed run takes from its saved config
_FIELDS = {
    "data": "data_root", "model": "model", "num_classes": "num_classes", "train_split": "train_split",
    "val_split": "val_split", "crop": "crop", "batch_size": "batch_size", "epochs": "epochs",
    "iterations": "iterations", "lr": "lr", "encoder_lr": "encoder_lr", "weight_decay": "weight_decay",
    "encoder_weight_decay": "encoder_weight_decay", "min_lr": "min_lr", "warmup": "warmup_iterations",
    "device": "device", "amp": "amp", "workers": "workers", "cache": "cache", "val_every": "val_every",
    "max_val_images": "max_val_images", "log_every": "log_every", "seed": "seed", "init": "init",
}


def explicit_options(argv: list[str] | None) -> set[str]:
    """The destinations the user typed (a parser whose defaults are all 'not given')."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(cli.parse_args(parser, argv, TOOL)))


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.init, "checkpoint")
    cli.require_file(args.data, "dataset root", folder=True)
    import torch

    from ..models import load_checkpoint
    from ..training import TrainConfig, save_weights, train

    values = {field: getattr(args, dest) for dest, field in _FIELDS.items()}
    values["data_root"] = str(args.data) if args.data else None
    values["init"] = str(args.init) if args.init else None
    values["epochs"] = args.epochs if args.epochs is not None else (None if args.iterations else 250)
    out = args.out
    if args.resume is not None:
        # a resumed run keeps its saved settings; options typed now override them
        resume_dir = args.resume if args.resume.is_dir() else args.resume.parent
        if "out" not in explicit_options(argv):
            out = resume_dir
        try:
            saved = torch.load(resume_dir / "training_state.pt", map_location="cpu", weights_only=False)["config"]
        except (OSError, KeyError, RuntimeError) as exc:
            if isinstance(exc, FileNotFoundError):
                print(cli.missing_file_message("training state", resume_dir / "training_state.pt"), file=sys.stderr)
            else:
                print(f"error: cannot read {resume_dir / 'training_state.pt'}: {exc}", file=sys.stderr)
            return 2
        typed = explicit_options(argv)
        for dest, field in _FIELDS.items():
            if dest not in typed and field in saved:
                values[field] = saved[field]
        if "epochs" in typed:
            values["iterations"] = None
        if "iterations" in typed:
            values["epochs"] = None
    if values["data_root"] is None:
        print("error: --data is required (unless --resume finds it in the run folder)", file=sys.stderr)
        return 2
    values["device"] = values["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    cfg = TrainConfig(
        out=str(out), resume=str(args.resume) if args.resume else None, stop_after=args.stop_after,
        time_limit=args.time_limit,
        progress=not args.no_progress, **values,
    )
    try:
        result = train(cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: {cli.tool_command(TOOL, '--resume', str(out))}", file=sys.stderr)
        return 130
    best = f"{100 * result.best_miou:.2f} %" if result.best_miou is not None else "n/a"
    final = f"{100 * result.final_miou:.2f} %" if result.final_miou is not None else "n/a"
    print(f"trained to step {result.iterations} of {result.total} in {result.seconds:.0f} s; final loss "
          f"{result.final_loss if result.final_loss is None else round(result.final_loss, 4)}; "
          f"val mIoU final {final}, best {best}; weights in {result.out}")
    try:
        from ..training.trainer import plot_history

        print(f"wrote {plot_history(result.out / 'history.jsonl', result.out / 'training_curve.png', cfg.model)}")
    except ImportError:
        pass  # matplotlib is optional
    if args.export_fp16:
        source = result.out / ("best.pt" if (result.out / "best.pt").is_file() else "last.pt")
        save_weights(load_checkpoint(source), args.export_fp16, dtype=torch.float16)
        size = args.export_fp16.stat().st_size / 2**20
        print(f"wrote {args.export_fp16} (fp16 weights of {source.name}, {size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
