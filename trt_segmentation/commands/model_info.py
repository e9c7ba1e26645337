"""Print parameters and GMACs (multiply-accumulates) of the SwiftNet models at a given input size.

Example: trt_seg_model_info --size 1024x2048      (all four models)
         trt_seg_model_info --checkpoint my.pt --size 720x1280
"""

from __future__ import annotations

import argparse
import sys

from .. import cli
from ..errors import InputError

TOOL = "model_info"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    cli.add_size(p, default=(1024, 2048), help="input size")
    cli.add_model(p, default=None, many=True, help="model names; default: all four")
    cli.add_checkpoint(p, help="report the architecture stored in this checkpoint instead")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    cli.require_file(args.checkpoint, "checkpoint")
    from ..models import MODEL_NAMES, build_model, load_checkpoint
    from ..models.complexity import count_gmacs, count_parameters

    height, width = args.size
    if args.checkpoint:
        models = [load_checkpoint(args.checkpoint)]
    else:
        names = args.model or list(MODEL_NAMES)
        unknown = [n for n in names if n not in MODEL_NAMES]
        if unknown:
            raise InputError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
        models = [build_model(MODEL_NAMES[n].variant, MODEL_NAMES[n].encoder) for n in names]
    print(f"{'model':<20} {'parameters':>12} {'GMAC @' + f'{height}x{width}':>16}")
    for model in models:
        print(f"{model.arch.name:<20} {count_parameters(model):>12,} {count_gmacs(model, height, width):>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
