"""An exact lighter SwiftNet graph for export: every decoder batch norm with a linear neighbour folded into a conv.

SwiftNet's decoder is pre-activation (BN -> ReLU -> conv), so its batch norms sit after an addition, a concat or
a pooling, where the exporter cannot fuse them into a conv (it fuses Conv -> BN pairs only). A batch norm in
eval mode is a per-channel affine ``a * x + b``, and a per-channel affine commutes with every linear map that acts
on each channel alike with weights summing to one (bilinear resize, average pooling) and distributes over a sum
and a concat. So:

* the blend BN after ``resize(x) + bottleneck(skip)`` folds into the conv that made ``x`` (scale) and the
  bottleneck conv (scale + shift); a pyramid slot sums several bottleneck convs, which the pyramid shares across
  levels: each use gets its own copy of the (small, 1x1) conv so each can carry its own slot's fold;
* the SPP's level BNs act on the pooled bottleneck output; pooling commutes with the 1x1 bottleneck conv, so each
  level pools the bottleneck's input (512 channels at 1/32 resolution: tiny) and applies bottleneck and level BN
  as one conv; then the fuse BN (on the concat) folds slice by slice into the bottleneck conv and the level convs;
* the logits BN folds into the last blend conv (the exporter would fuse that pair too).

What stays: a BN that follows a ReLU (the SPP's input BN and the single-scale bottleneck BNs read post-ReLU
encoder features, which the encoder also passes on): no exact fold exists. Results differ from the unfolded model
by float rounding only (test_fold: max |logit difference| < 1e-4).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .layers import SpatialPyramidPooling, upsample
from .pooling import exact_adaptive_avg_pool2d
from .swiftnet import PyramidBackbone, SingleScaleBackbone, SwiftNet


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``a * x + b`` (float64 for the folding arithmetic)."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError("a batch norm without running statistics cannot be folded")
    var = bn.running_var.double()
    a = bn.weight.double() / torch.sqrt(var + bn.eps)
    return a, bn.bias.double() - bn.running_mean.double() * a


def scale_conv(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor | None = None) -> None:
    """Make ``conv`` compute ``a * conv(x) + b`` per output channel (in place; adds a bias where it had none)."""
    weight = conv.weight.data.double() * a.view(-1, 1, 1, 1)
    bias = conv.bias.data.double() * a if conv.bias is not None else torch.zeros_like(a)
    if b is not None:
        bias = bias + b
    conv.weight.data = weight.to(conv.weight.dtype)
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def typing_tensor(value: object) -> torch.Tensor:
    """A module attribute known to be a tensor (a registered buffer), typed as one."""
    assert isinstance(value, torch.Tensor)
    return value


def then_affine(conv: nn.Conv2d, a: torch.Tensor, b: torch.Tensor) -> nn.Conv2d:
    """A copy of ``conv`` followed by ``a * x + b`` as one conv."""
    out = copy.deepcopy(conv)
    scale_conv(out, a, b)
    return out


class FoldedSpatialPyramidPooling(nn.Module):
    """SPP with its level and fuse BNs folded: each level pools the bottleneck's input (see the module doc)."""

    def __init__(self, spp: SpatialPyramidPooling) -> None:
        super().__init__()
        modules: list[Any] = list(spp.spp.children())
        bottleneck, levels, fuse = modules[0], modules[1:-1], modules[-1]
        self.grids, self.num_levels = spp.grids, spp.num_levels
        self.norm, self.relu = bottleneck.norm, bottleneck.relu  # follows the encoder's ReLU: stays
        a_fuse, b_fuse = bn_affine(fuse.norm)
        width = bottleneck.conv.out_channels
        self.bottleneck = then_affine(bottleneck.conv, a_fuse[:width], b_fuse[:width])
        self.level_in = nn.ModuleList()
        self.level_out = nn.ModuleList()
        start = width
        for level in levels:
            self.level_in.append(then_affine(bottleneck.conv, *bn_affine(level.norm)))
            end = start + level.conv.out_channels
            self.level_out.append(then_affine(level.conv, a_fuse[start:end], b_fuse[start:end]))
            start = end
        self.fuse_relu, self.fuse = fuse.relu, fuse.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = int(x.shape[2]), int(x.shape[3])
        x = self.relu(self.norm(x))
        levels = [self.bottleneck(x)]
        for i in range(self.num_levels):
            pooled = exact_adaptive_avg_pool2d(x, SpatialPyramidPooling.grid_for(self.grids[i], height, width))
            level = self.level_out[i](torch.relu(self.level_in[i](pooled)))
            levels.append(upsample(level, (height, width)))
        return self.fuse(self.fuse_relu(torch.cat(levels, dim=1)))


class FoldedPyramidBackbone(nn.Module):
    """The pyramid backbone with one copy of each 1x1 bottleneck per (level, stage) use, so that each slot's
    blend BN folds into the convs summed in that slot."""

    def __init__(self, backbone: PyramidBackbone) -> None:
        super().__init__()
        self.base = backbone
        self.register_buffer("img_mean", typing_tensor(backbone.img_mean))
        self.register_buffer("img_std", typing_tensor(backbone.img_std))
        self.pyramid_levels = backbone.pyramid_levels
        self.projections = nn.ModuleList(
            nn.ModuleList(copy.deepcopy(backbone.upsample_bottlenecks[3 - stage]) for stage in range(4))
            for _ in range(backbone.pyramid_levels))
        del backbone.upsample_bottlenecks  # every use has its own copy now

    def slot_members(self, slot: int) -> list[Any]:
        """The convs summed in slot ``slot`` (0 = stride 4, the finest)."""
        projections: Any = self.projections
        return [projections[level][slot - level] for level in range(self.pyramid_levels)
                if 0 <= slot - level <= 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projections: Any = self.projections
        return self.base.fuse(x, lambda level, stage: projections[level][stage])


def _fold_blend(blend: Any, producer: nn.Conv2d, members: list[Any]) -> None:
    """The blend BN on ``resize(producer(...)) + sum(members(...))`` into those convs; the BN becomes Identity."""
    a, b = bn_affine(blend.blend_conv.norm)
    scale_conv(producer, a)
    scale_conv(members[0], a, b)
    for conv in members[1:]:
        scale_conv(conv, a)
    blend.blend_conv.norm = nn.Identity()


def fold_batchnorms(model: SwiftNet) -> SwiftNet:
    """A copy of ``model`` (eval mode) with every exactly foldable batch norm folded (see the module doc)."""
    model = copy.deepcopy(model).eval()
    backbone: Any = model.backbone
    logits: Any = model.logits
    producer: Any
    if isinstance(model.backbone, SingleScaleBackbone):
        backbone.spp = FoldedSpatialPyramidPooling(backbone.spp)
        producer = backbone.spp.fuse
        for module in backbone.upsample:
            _fold_blend(module, producer, [module.bottleneck.conv])
            producer = module.blend_conv.conv
    elif isinstance(model.backbone, PyramidBackbone):
        folded = FoldedPyramidBackbone(backbone)
        model.backbone = folded
        top = folded.pyramid_levels + 2
        producer = folded.slot_members(top)[0]
        for index, blend in enumerate(backbone.upsample_blends):
            _fold_blend(blend, producer, folded.slot_members(top - 1 - index))
            producer = blend.blend_conv.conv
    else:
        raise TypeError(f"cannot fold batch norms of {type(backbone).__name__}")
    scale_conv(producer, *bn_affine(logits.norm))
    logits.norm = nn.Identity()
    return model
