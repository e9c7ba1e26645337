"""Structured L1-norm channel pruning of a SwiftNet encoder (seed 003's recipe), on the state dict.

For each chosen ResNet stage (``layer1`` .. ``layer4``; seed 003's "blocks 1-2" are stages 1 and 2) a ``ratio`` of
channels goes: of each block's inner channels (between its two 3x3 convs), the filters of ``conv1`` with the
smallest L1 norm; of the stage's residual channels (shared by every block's output, the stage's downsample or
the stem, the next stage's input and the decoder's skip), those whose producing filters have the smallest summed
L1 norm. Every tensor that reads or writes a removed channel is sliced (convs on both axes, every BN of every
pyramid level, the decoder's skip bottlenecks and SPP input), so the pruned model is a plain SwiftNet with
narrower encoder widths (:class:`EncoderWidths`), loadable from its checkpoint alone (models/checkpoint.py reads
the widths off the shapes). Kept channel counts are rounded to multiples of 8 (tensor-core friendly).
Fine-tune afterwards: ``trt_seg_train --init pruned.pt`` (pruning without it costs most of the accuracy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch

from .checkpoint import load_into
from .resnet import STAGE_BLOCKS, EncoderWidths
from .swiftnet import Architecture, SwiftNet

#: seed 003's recipes: stage numbers and the share of channels removed
RECIPES: dict[str, tuple[tuple[int, ...], float]] = {"blocks12": ((1, 2), 0.5), "all": ((1, 2, 3, 4), 0.5)}

Group = tuple[str, int, int]  # ("stage", stage, 0) | ("inner", stage, block)

_BN = r"(\.\d+)?\.(weight|bias|running_mean|running_var)$"  # a BN's per-channel tensors (pyramid: one BN per level)


def _stage(s: int) -> Group:
    return ("stage", s, 0)


def tensor_groups(key: str) -> tuple[Group | None, Group | None]:
    """Which channel group dimension 0 and dimension 1 of a state-dict tensor belong to (None: not pruned)."""
    if re.match(r"backbone\.conv1\.weight$", key):
        return _stage(1), None
    if re.match(r"backbone\.bn1" + _BN, key):
        return _stage(1), None
    m = re.match(r"backbone\.layer(\d)\.(\d+)\.(.+)$", key)
    if m:
        s, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        inner, own = ("inner", s, b), _stage(s)
        before = _stage(s - 1) if b == 0 and s > 1 else own
        if rest == "conv1.weight":
            return inner, before
        if re.match(r"bn1" + _BN, rest):
            return inner, None
        if rest == "conv2.weight":
            return own, inner
        if re.match(r"bn2" + _BN, rest) or re.match(r"downsample\.1" + _BN, rest):
            return own, None
        if rest == "downsample.0.weight":
            return own, _stage(s - 1)
        return None, None
    if re.match(r"backbone\.spp\.spp\.spp_bn\.norm" + _BN, key):
        return _stage(4), None
    if key == "backbone.spp.spp.spp_bn.conv.weight":
        return None, _stage(4)
    m = re.match(r"backbone\.upsample\.(\d)\.bottleneck\.(norm\.(weight|bias|running_mean|running_var)|conv\.weight)$",
                 key)
    if m:
        stage = _stage(3 - int(m.group(1)))
        return (stage, None) if m.group(2).startswith("norm") else (None, stage)
    m = re.match(r"backbone\.upsample_bottlenecks\.(\d)\.weight$", key)
    if m:
        return None, _stage(4 - int(m.group(1)))
    return None, None


def _keep_count(n: int, ratio: float) -> int:
    keep = round(n * (1.0 - ratio))
    return max(8, int(round(keep / 8.0)) * 8) if n >= 16 else max(1, keep)


def _scores(state: Mapping[str, torch.Tensor], group: Group) -> torch.Tensor:
    """L1 norms of the filters that write ``group``'s channels (summed over every producer of a residual stream)."""
    total: torch.Tensor | None = None
    for key, tensor in state.items():
        if tensor.dim() == 4 and tensor_groups(key)[0] == group:
            norms = tensor.detach().float().abs().sum(dim=(1, 2, 3))
            total = norms if total is None else total + norms
    if total is None:
        raise ValueError(f"no convolution writes channel group {group}")
    return total


def prune_state(state: Mapping[str, torch.Tensor], arch: Architecture, stages: Sequence[int],
                ratio: float) -> tuple[dict[str, torch.Tensor], EncoderWidths]:
    """The state dict with ``ratio`` of the channels of ``stages`` removed, and the encoder widths it now has."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be between 0 and 1 (the share of channels removed), got {ratio}")
    bad = [s for s in stages if s not in (1, 2, 3, 4)]
    if bad or not stages:
        raise ValueError(f"stages are 1..4 (ResNet layer1..layer4), got {list(stages)}")
    widths = arch.encoder_widths()
    keep: dict[Group, torch.Tensor] = {}
    for s in sorted(set(stages)):
        groups: list[Group] = [_stage(s)] + [("inner", s, b) for b in range(STAGE_BLOCKS[arch.encoder][s - 1])]
        for group in groups:
            scores = _scores(state, group)
            count = _keep_count(len(scores), ratio)
            keep[group] = torch.sort(torch.topk(scores, count).indices).values
    pruned = {}
    for key, tensor in state.items():
        out = tensor
        for dim, owner in enumerate(tensor_groups(key)):
            if owner is not None and owner in keep and out.dim() > dim:
                out = out.index_select(dim, keep[owner])
        pruned[key] = out.clone() if out is tensor else out
    stage_widths = tuple(len(keep[_stage(s)]) if _stage(s) in keep else widths.stages[s - 1] for s in range(1, 5))
    inner = tuple(tuple(len(keep[("inner", s, b)]) if ("inner", s, b) in keep else widths.inner[s - 1][b]
                        for b in range(len(widths.inner[s - 1]))) for s in range(1, 5))
    return pruned, EncoderWidths(stage_widths, inner)  # type: ignore[arg-type]


def prune_model(model: SwiftNet, stages: Sequence[int], ratio: float) -> SwiftNet:
    """A new, narrower SwiftNet (eval mode) holding ``model``'s kept weights; ``model`` is left as it was."""
    state, widths = prune_state(model.state_dict(), model.arch, stages, ratio)
    arch = Architecture(model.arch.variant, model.arch.encoder, model.arch.num_classes, widths)
    mean, std = tuple(model.mean.flatten().tolist()), tuple(model.std.flatten().tolist())
    return load_into(SwiftNet(arch, mean, std), state, "the pruned state")
