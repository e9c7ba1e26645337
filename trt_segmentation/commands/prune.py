"""Structured L1-norm channel pruning of a SwiftNet (seed 003's recipe); fine-tune the result afterwards.

Seed 003's recipes (50 % of the channels of the chosen ResNet stages; "blocks" = stages layer1..layer4), by name
(--recipe blocks12 | all | all_decoder: all blocks and the decoder's feature streams and SPP) or spelled out:
  trt_seg_prune --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --blocks 1 2 --out ss_rn18_b12.pt
  trt_seg_prune --checkpoint my_pyr_rn34.pt --blocks 1 2 3 4 --ratio 0.5 --out pyr_rn34_all.pt --fp16
  trt_seg_prune --checkpoint trt_segmentation/assets/swiftnet_ss_rn18_streets.pt --recipe all_decoder --out s.pt
then fine-tune (pruning alone costs most of the accuracy):
  trt_seg_train --data data/street --model swiftnet_ss_rn18 --init ss_rn18_b12.pt --iterations 2000 --out runs/b12
A random-weight model for speed measurements: trt_seg_prune --random-weights --model swiftnet_pyr_rn18 --out p.pt
The pruned checkpoint records its widths in its weight shapes: export, precision tools, engine builds, evaluation
and the node load it like any checkpoint.
"""

from __future__ import annotations

import argparse
import sys

from .. import cli
from ..errors import InputError

#: the recipe names (models/pruning.py RECIPES; repeated here so that --help needs no torch: test_pruning checks)
RECIPES = ("blocks12", "all", "all_decoder")
TOOL = "prune"


def build_parser() -> argparse.ArgumentParser:
    p = cli.new_parser(TOOL, __doc__)
    src = p.add_mutually_exclusive_group(required=True)
    cli.add_checkpoint(src, help="checkpoint to prune")
    src.add_argument("--random-weights", action="store_true", help="prune an untrained --model (for speed tests)")
    cli.add_model(p, help="architecture for --random-weights")
    p.add_argument("--recipe", choices=list(RECIPES),
                   help="a named recipe (sets --blocks, --ratio and --decoder): blocks12, all (encoder only, "
                        "as before), all_decoder (all blocks and the decoder, 50 %%)")
    p.add_argument("--blocks", type=int, nargs="+", choices=(1, 2, 3, 4), default=[1, 2, 3, 4],
                   help="ResNet stages to prune, 1..4 = layer1..layer4 (default: all; seed 003's other recipe: 1 2)")
    p.add_argument("--ratio", type=float, default=0.5, help="share of each chosen stage's channels removed (default 0.5)")
    p.add_argument("--decoder", action="store_true",
                   help="prune the decoder too (its feature streams and SPP, by the same ratio)")
    cli.add_size(p, default=(1024, 2048), help="input size of the reported GMACs")
    cli.add_out(p, help="pruned checkpoint to write (.pt)")
    p.add_argument("--fp16", action="store_true", help="store the weights as fp16 (half the file; loaders upcast)")
    return p


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = cli.parse_args(build_parser(), argv, TOOL)
    if args.out is None:
        return cli.error(InputError("give --out, the pruned checkpoint to write"))
    cli.require_file(args.checkpoint, "checkpoint")
    import torch

    from ..models import architecture_from_name, load_checkpoint
    from ..models.complexity import count_gmacs, count_parameters
    from ..models.pruning import RECIPES as RECIPE_SETTINGS
    from ..models.pruning import prune_model
    from ..models.swiftnet import SwiftNet
    from ..training.trainer import save_weights

    height, width = args.size
    if args.recipe:
        recipe = RECIPE_SETTINGS[args.recipe]
        args.blocks, args.ratio, args.decoder = list(recipe.stages), recipe.ratio, recipe.decoder
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
    else:
        torch.manual_seed(0)
        model = SwiftNet(architecture_from_name(args.model)).eval()
    pruned = prune_model(model, args.blocks, args.ratio, args.decoder)
    save_weights(pruned, args.out, torch.float16 if args.fp16 else None)
    encoder, decoder = pruned.arch.encoder_widths(), pruned.arch.decoder_widths()
    gmac, pruned_gmac = count_gmacs(model, height, width), count_gmacs(pruned, height, width)
    print(f"wrote {args.out}: {pruned.arch.name}, stages {', '.join(map(str, sorted(set(args.blocks))))}"
          f"{' and the decoder' if args.decoder else ''} pruned by {args.ratio:.0%} (L1 norm)")
    print(f"  residual widths {encoder.stages}, inner widths {encoder.inner}")
    print(f"  decoder feature widths {decoder.features}" + (f", SPP widths {decoder.spp}" if decoder.spp else ""))
    print(f"  parameters {count_parameters(model):,} -> {count_parameters(pruned):,}; GMAC @{height}x{width} "
          f"{gmac:.1f} -> {pruned_gmac:.1f} ({gmac / pruned_gmac:.2f}x fewer)")
    print("  fine-tune it: trt_seg_train --init " + str(args.out) + " ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
