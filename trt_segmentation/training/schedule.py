"""The learning-rate schedule: optional linear warm-up, then cosine decay from each group's rate to ``min_lr``
over the run (as a LambdaLR factor of the group's base rate)."""

from __future__ import annotations

import math
from collections.abc import Callable

from .config import TrainConfig


def cosine_factor(cfg: TrainConfig, base_lr: float, total: int) -> Callable[[int], float]:
    def factor(it: int) -> float:
        if cfg.warmup_iterations > 0 and it < cfg.warmup_iterations:
            return (it + 1) / cfg.warmup_iterations
        span = max(1, total - cfg.warmup_iterations)
        t = min(1.0, (it - cfg.warmup_iterations) / span)
        lr = cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return lr / base_lr

    return factor

