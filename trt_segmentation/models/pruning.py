"""Structured L1-norm channel pruning of a SwiftNet (seed 003's recipe), on the state dict.

Encoder: for each chosen ResNet stage (``layer1`` .. ``layer4``; seed 003's "blocks 1-2" are stages 1 and 2) a
``ratio`` of channels goes: of each block's inner channels (between its two 3x3 convs), the filters of ``conv1``
with the smallest L1 norm; of the stage's residual channels (shared by every block's output, the stage's downsample
or the stem, the next stage's input and the decoder's skip), those whose producing filters have the smallest summed
L1 norm. Decoder (``decoder=True``): the same ratio of every feature stream of the upsampling path (a stream is a
sum — resized coarser features plus a skip's 1x1 bottleneck — so its kept channel set is chosen once, from the
L1 norms summed over every conv that writes it: single-scale, the SPP's fuse conv or the previous blend conv plus
the bottleneck; pyramid, one stream for all, its bottlenecks being shared by the levels) and of the single-scale
SPP's bottleneck and pooled levels. Every tensor that reads or writes a removed channel is sliced (convs on both
axes, every BN of every pyramid level, the SPP's fuse input slice by slice, the logits' BN and conv), so the pruned
model is a plain SwiftNet with narrower widths (:class:`Widths`), loadable from its checkpoint alone
(models/checkpoint.py reads the widths off the shapes). Kept channel counts are rounded to multiples of 8
(tensor-core friendly). Fine-tune afterwards: ``trt_seg_train --init pruned.pt`` (pruning without it costs most
of the accuracy).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..errors import InputError
from .checkpoint import load_into
from .resnet import STAGE_BLOCKS, EncoderWidths
from .swiftnet import SPP_LEVELS, Architecture, DecoderWidths, SwiftNet, Widths


@dataclass(frozen=True)
class Recipe:
    """Which channels a recipe removes: ``ratio`` of those of the ResNet ``stages`` and, with ``decoder``, of the
    decoder's feature streams and SPP."""

    stages: tuple[int, ...]
    ratio: float
    decoder: bool = False


#: seed 003's recipes ("blocks 1-2" and "all blocks" prune the encoder only) and all blocks with the decoder, the
#: reading of seed 003's "all blocks" that gives its 3.5x fewer GMAC
RECIPES: dict[str, Recipe] = {"blocks12": Recipe((1, 2), 0.5), "all": Recipe((1, 2, 3, 4), 0.5),
                              "all_decoder": Recipe((1, 2, 3, 4), 0.5, decoder=True)}

# ("stage", s, 0) residual stream of layer s | ("inner", s, b) inside block b of layer s | ("feature", i, 0) decoder
# feature stream i | ("spp", j, 0) SPP bottleneck (j = 0) or pooled level j - 1
Group = tuple[str, int, int]
Dim = tuple[Group, ...]  # the groups one tensor axis runs over, in order (several: a concat); () not pruned

_BN = r"(\.\d+)?\.(weight|bias|running_mean|running_var)$"  # a BN's per-channel tensors (pyramid: one BN per level)
_NORM = r"norm\.(weight|bias|running_mean|running_var)$"  # a decoder BNReluConv's BN


def _stage(s: int) -> Group:
    return ("stage", s, 0)


def _feature(i: int) -> Group:
    return ("feature", i, 0)


def _spp(j: int) -> Group:
    return ("spp", j, 0)


def _spp_groups() -> Dim:
    return tuple(_spp(j) for j in range(SPP_LEVELS + 1))


def _kind(rest: str) -> str | None:
    """``norm`` (a BNReluConv's per-channel BN tensors), ``conv`` (its conv weight) or None (nothing to slice)."""
    return "norm" if re.match(_NORM, rest) else "conv" if rest == "conv.weight" else None


def _decoder_groups(key: str, variant: str) -> tuple[Dim, Dim] | None:
    """The groups of a decoder tensor (the skip bottlenecks' and SPP's input sides included); None: not decoder."""
    last = _feature(0 if variant == "pyramid" else 3)
    m = re.match(r"(logits|backbone\.spp\.spp\.(spp_bn|spp\d|spp_fuse)|backbone\.upsample\.(\d)\.(bottleneck|blend_conv)"
                 r"|backbone\.upsample_blends\.\d\.blend_conv)\.(.+)$", key)
    if m is None:
        m = re.match(r"backbone\.upsample_bottlenecks\.(\d)\.weight$", key)
        return None if m is None else ((_feature(0),), (_stage(4 - int(m.group(1))),))
    spp, upsample, role, kind = m.group(2), m.group(3), m.group(4), _kind(m.group(5))
    reads: Dim  # the groups the module's BN and conv input run over
    writes: Dim
    if m.group(1) == "logits":
        reads, writes = (last,), ()
    elif spp is not None:
        reads = (_stage(4),) if spp == "spp_bn" else _spp_groups() if spp == "spp_fuse" else (_spp(0),)
        writes = ((_spp(0),) if spp == "spp_bn" else (_feature(0),) if spp == "spp_fuse"
                  else (_spp(1 + int(spp[3:])),))
    elif upsample is not None:
        i = int(upsample)
        reads = (_stage(3 - i),) if role == "bottleneck" else (_feature(i),)
        writes = (_feature(i),) if role == "bottleneck" else (_feature(i + 1),)
    else:  # a pyramid blend
        reads, writes = (_feature(0),), (_feature(0),)
    return (reads, ()) if kind == "norm" else (writes, reads) if kind == "conv" else ((), ())


def tensor_groups(key: str, variant: str) -> tuple[Dim, Dim]:
    """Which channel groups dimension 0 and dimension 1 of a state-dict tensor run over (() : not pruned)."""
    decoder = _decoder_groups(key, variant)
    if decoder is not None:
        return decoder
    if re.match(r"backbone\.conv1\.weight$", key) or re.match(r"backbone\.bn1" + _BN, key):
        return (_stage(1),), ()
    m = re.match(r"backbone\.layer(\d)\.(\d+)\.(.+)$", key)
    if m:
        s, b, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        inner, own = ("inner", s, b), _stage(s)
        before = _stage(s - 1) if b == 0 and s > 1 else own
        if rest == "conv1.weight":
            return (inner,), (before,)
        if re.match(r"bn1" + _BN, rest):
            return (inner,), ()
        if rest == "conv2.weight":
            return (own,), (inner,)
        if re.match(r"bn2" + _BN, rest) or re.match(r"downsample\.1" + _BN, rest):
            return (own,), ()
        if rest == "downsample.0.weight":
            return (own,), (_stage(s - 1),)
    return (), ()


def _keep_count(n: int, ratio: float) -> int:
    keep = round(n * (1.0 - ratio))
    return max(8, int(round(keep / 8.0)) * 8) if n >= 16 else max(1, keep)


def _scores(state: Mapping[str, torch.Tensor], variant: str, group: Group) -> torch.Tensor:
    """L1 norms of the filters that write ``group``'s channels (summed over every producer of a stream)."""
    total: torch.Tensor | None = None
    for key, tensor in state.items():
        if tensor.dim() == 4 and tensor_groups(key, variant)[0] == (group,):
            norms = tensor.detach().float().abs().sum(dim=(1, 2, 3))
            total = norms if total is None else total + norms
    if total is None:
        raise ValueError(f"no convolution writes channel group {group}")
    return total


def group_sizes(arch: Architecture) -> dict[Group, int]:
    """The width of every channel group of ``arch``."""
    encoder, decoder = arch.encoder_widths(), arch.decoder_widths()
    sizes = {_stage(s): encoder.stages[s - 1] for s in range(1, 5)}
    sizes.update({("inner", s, b): w for s in range(1, 5) for b, w in enumerate(encoder.inner[s - 1])})
    sizes.update({_feature(i): w for i, w in enumerate(decoder.features)})
    sizes.update({_spp(j): w for j, w in enumerate(decoder.spp)})
    return sizes


def _index(dim: Dim, keep: Mapping[Group, torch.Tensor], sizes: Mapping[Group, int]) -> torch.Tensor | None:
    """The kept positions along an axis running over ``dim``'s groups (a concat: each group at its offset)."""
    if not any(group in keep for group in dim):
        return None
    parts, offset = [], 0
    for group in dim:
        parts.append(keep[group] + offset if group in keep else torch.arange(offset, offset + sizes[group]))
        offset += sizes[group]
    return torch.cat(parts)


def prune_state(state: Mapping[str, torch.Tensor], arch: Architecture, stages: Sequence[int],
                ratio: float, decoder: bool = False) -> tuple[dict[str, torch.Tensor], Widths]:
    """The state dict with ``ratio`` of the channels of ``stages`` (and, with ``decoder``, of the decoder's
    streams and SPP) removed, and the widths it now has."""
    if not 0.0 < ratio < 1.0:
        raise InputError(f"ratio must be between 0 and 1 (the share of channels removed), got {ratio}")
    bad = [s for s in stages if s not in (1, 2, 3, 4)]
    if bad or not (stages or decoder):
        raise InputError(f"stages are 1..4 (ResNet layer1..layer4), got {list(stages)}")
    sizes = group_sizes(arch)
    groups: list[Group] = []
    for s in sorted(set(stages)):
        groups += [_stage(s)] + [("inner", s, b) for b in range(STAGE_BLOCKS[arch.encoder][s - 1])]
    if decoder:
        groups += [g for g in sizes if g[0] in ("feature", "spp")]
    keep: dict[Group, torch.Tensor] = {}
    for group in groups:
        scores = _scores(state, arch.variant, group)
        keep[group] = torch.sort(torch.topk(scores, _keep_count(len(scores), ratio)).indices).values
    pruned = {}
    for key, tensor in state.items():
        out = tensor
        for axis, dim in enumerate(tensor_groups(key, arch.variant)):
            index = _index(dim, keep, sizes)
            if index is not None and out.dim() > axis:
                out = out.index_select(axis, index)
        pruned[key] = out.clone() if out is tensor else out
    width = {g: len(keep[g]) if g in keep else n for g, n in sizes.items()}
    old_encoder, old_decoder = arch.encoder_widths(), arch.decoder_widths()
    encoder = EncoderWidths(tuple(width[_stage(s)] for s in range(1, 5)),  # type: ignore[arg-type]
                            tuple(tuple(width[("inner", s, b)] for b in range(len(old_encoder.inner[s - 1])))
                                  for s in range(1, 5)))
    new_decoder = DecoderWidths(tuple(width[_feature(i)] for i in range(len(old_decoder.features))),
                                tuple(width[_spp(j)] for j in range(len(old_decoder.spp))))
    return pruned, Widths(encoder, new_decoder)


def prune_model(model: SwiftNet, stages: Sequence[int], ratio: float, decoder: bool = False) -> SwiftNet:
    """A new, narrower SwiftNet (eval mode) holding ``model``'s kept weights; ``model`` is left as it was."""
    state, widths = prune_state(model.state_dict(), model.arch, stages, ratio, decoder)
    arch = Architecture(model.arch.variant, model.arch.encoder, model.arch.num_classes, widths)
    mean, std = tuple(model.mean.flatten().tolist()), tuple(model.std.flatten().tolist())
    return load_into(SwiftNet(arch, mean, std), state, "the pruned state")
