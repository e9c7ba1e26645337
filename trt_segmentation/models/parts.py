"""A SwiftNet split into the four parts of seed 000's profile, each a module of its own (timed or exported alone).

``encoder``: uint8 NHWC frame -> cast, normalise (pyramid: the bicubic image pyramid) -> ResNet features.
``context``: spatial pyramid pooling (single-scale) or the pyramid's fusion (1x1 bottlenecks + per-resolution sums).
``upsampling``: the ladder of upsampling modules and the logits BN-ReLU-1x1 at 1/4 resolution.
``resize_argmax``: bilinear resize of the logits to the input size, ArgMax, uint8 labels.

Run in order on a dict of named tensors (:func:`run_parts`), the parts compute what the whole model computes
(test_parts checks the labels and logits against ``SwiftNet.forward``). The split repeats the backbones' forward
passes step by step through their own submodules (no weights of its own), so the parts always hold the model's
current weights.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..network_parts import PARTS
from .layers import final_resize
from .swiftnet import SwiftNet


@dataclass(frozen=True)
class Part:
    """One part: ``module(*[tensors[name] for name in inputs])`` returns the tensors named ``outputs`` (a tuple)."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class _Fn(nn.Module):
    """A part's forward pass as a module around the SwiftNet it reads (exportable, CUDA-graph capturable)."""

    def __init__(self, model: SwiftNet, fn: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.fn(self.model, *tensors)


def _frame_to_input(model: SwiftNet, frame: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> normalised (N, 3, H, W) in the model's dtype (cast before the transpose, as the
    export does; the permuted NHWC memory is the channels-last layout the CUDA-graph executor uses)."""
    x = frame.to(model.mean.dtype).permute(0, 3, 1, 2)
    return model.normalise(x)


def _ss_encoder(model: SwiftNet, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b: Any = model.backbone
    x = b.maxpool(b.relu(b.bn1(b.conv1(_frame_to_input(model, frame)))))
    skips = []
    for stage in (b.layer1, b.layer2, b.layer3, b.layer4):
        x = stage(x)
        skips.append(x)
    return tuple(skips)


def _ss_context(model: SwiftNet, s4: torch.Tensor) -> tuple[torch.Tensor, ...]:
    backbone: Any = model.backbone
    return (backbone.spp(s4),)


def _ss_upsampling(model: SwiftNet, x: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor,
                   s3: torch.Tensor) -> tuple[torch.Tensor, ...]:
    backbone: Any = model.backbone
    for module, skip in zip(backbone.upsample, (s3, s2, s1)):
        x = module(x, skip)
    return (model.logits(x),)


def _pyr_encoder(model: SwiftNet, frame: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b: Any = model.backbone
    x = _frame_to_input(model, frame)
    features: list[torch.Tensor] = []
    for level, image in enumerate(b.image_pyramid(x)):
        features += b._encode_level(image, level)
    return tuple(features)


def _pyr_context(model: SwiftNet, *features: torch.Tensor) -> tuple[torch.Tensor, ...]:
    b: Any = model.backbone
    slots = b.project([list(features[i:i + 4]) for i in range(0, len(features), 4)])
    return tuple(functools.reduce(operator.add, slot) for slot in slots[::-1])


def _pyr_upsampling(model: SwiftNet, *slots: torch.Tensor) -> tuple[torch.Tensor, ...]:
    backbone: Any = model.backbone
    return (model.logits(backbone.blend_slots(slots)),)


def _resize_argmax(size: tuple[int, int]) -> Callable[..., tuple[torch.Tensor, ...]]:
    def fn(model: SwiftNet, logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (final_resize(logits, size).argmax(1).to(torch.uint8),)

    return fn


def split(model: SwiftNet, height: int, width: int) -> list[Part]:
    """The four parts of ``model`` at ``height`` x ``width`` (names in :data:`network_parts.PARTS`)."""
    final = _resize_argmax((height, width))
    backbone: Any = model.backbone
    fns: list[tuple[Callable[..., tuple[torch.Tensor, ...]], tuple[str, ...], tuple[str, ...]]]
    if model.arch.variant == "single_scale":
        skips = ("s1", "s2", "s3", "s4")
        fns = [(_ss_encoder, ("frame",), skips), (_ss_context, ("s4",), ("context",)),
               (_ss_upsampling, ("context", "s1", "s2", "s3"), ("logits_quarter",))]
    else:
        levels = backbone.pyramid_levels
        features = tuple(f"l{level}s{stage}" for level in range(levels) for stage in range(1, 5))
        slots = tuple(f"slot{i}" for i in range(levels + 3))
        fns = [(_pyr_encoder, ("frame",), features), (_pyr_context, features, slots),
               (_pyr_upsampling, slots, ("logits_quarter",))]
    fns.append((final, ("logits_quarter",), ("labels",)))
    return [Part(name, _Fn(model, fn), inputs, outputs) for name, (fn, inputs, outputs) in zip(PARTS, fns)]


def run_part(part: Part, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run one part on the named tensors; returns its named outputs."""
    return dict(zip(part.outputs, part.module(*(tensors[name] for name in part.inputs))))


def run_parts(parts: list[Part], frame: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every named tensor of one frame, the parts run in order (``labels`` is the model's output)."""
    tensors = {"frame": frame}
    for part in parts:
        tensors.update(run_part(part, tensors))
    return tensors
