#!/usr/bin/env python3
"""Print parameters and GMACs (multiply-accumulates) of the SwiftNet models at a given input size.

Example: tools/model_info.py --size 1024x2048      (all four models)
         tools/model_info.py --checkpoint my.pt --size 720x1280
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trt_segmentation.cli import parse_size  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=parse_size, default=(1024, 2048), metavar="HxW", help="input size (default 1024x2048)")
    p.add_argument("--model", action="append", help="model name (repeatable); default: all four")
    p.add_argument("--checkpoint", type=Path, help="report the architecture stored in this checkpoint instead")
    args = p.parse_args(argv)
    from trt_segmentation.models import MODEL_NAMES, CheckpointError, build_model, load_checkpoint
    from trt_segmentation.models.complexity import count_gmacs, count_parameters

    height, width = args.size
    try:
        if args.checkpoint:
            models = [load_checkpoint(args.checkpoint)]
        else:
            names = args.model or list(MODEL_NAMES)
            unknown = [n for n in names if n not in MODEL_NAMES]
            if unknown:
                raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
            models = [build_model(MODEL_NAMES[n].variant, MODEL_NAMES[n].encoder) for n in names]
    except (CheckpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'model':<20} {'parameters':>12} {'GMAC @' + f'{height}x{width}':>16}")
    for model in models:
        print(f"{model.arch.name:<20} {count_parameters(model):>12,} {count_gmacs(model, height, width):>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
