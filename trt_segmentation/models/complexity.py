"""Parameter and multiply-accumulate counts of a model at a given input size (torch's FLOP counter)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, height: int, width: int) -> float:
    """Conv/matmul multiply-accumulates in GMAC (FLOPs / 2; BN, ReLU and resizes are not counted)."""
    x = torch.zeros(1, 3, height, width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2e9
