"""ResNet-18/34 encoders of SwiftNet: the single-scale one and the pyramid one with per-level BatchNorms.

Widths are the standard ones unless an :class:`EncoderWidths` says otherwise (a channel-pruned encoder,
models/pruning.py): each stage's residual width and each block's inner width (between its two 3x3 convs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError

STAGE_BLOCKS: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
STAGE_CHANNELS = (64, 128, 256, 512)


@dataclass(frozen=True)
class EncoderWidths:
    """Channel counts of an encoder: ``stages[i]`` is the residual width of layer{i+1} (``stages[0]`` is also the
    stem's output), ``inner[i][j]`` the width inside block j of layer{i+1}."""

    stages: tuple[int, int, int, int]
    inner: tuple[tuple[int, ...], ...]

    @staticmethod
    def full(encoder: str) -> EncoderWidths:
        """The standard ResNet widths."""
        blocks = check_encoder(encoder)
        return EncoderWidths(STAGE_CHANNELS, tuple((ch,) * n for ch, n in zip(STAGE_CHANNELS, blocks)))

    def fits(self, encoder: str) -> bool:
        """Positive widths for the encoder's number of stages and blocks."""
        blocks = check_encoder(encoder)
        return (len(self.stages) == 4 and tuple(len(i) for i in self.inner) == blocks
                and all(w > 0 for w in self.stages) and all(w > 0 for stage in self.inner for w in stage))


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def make_downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Residual block of the single-scale encoder; its output is post-ReLU (as the original's skips are)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, mid_ch: int | None = None) -> None:
        super().__init__()
        mid_ch = mid_ch or out_ch
        self.conv1 = conv3x3(in_ch, mid_ch, stride)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(mid_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = make_downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class PyramidBasicBlock(nn.Module):
    """Residual block shared by all pyramid levels: convs shared, ``bn1``/``bn2`` one per level.

    Returns ``(relu(out), out)``: the pre-ReLU sum is the skip the pyramid decoder sees (as in the original).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, levels: int = 3, mid_ch: int | None = None) -> None:
        super().__init__()
        mid_ch = mid_ch or out_ch
        self.conv1 = conv3x3(in_ch, mid_ch, stride)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(mid_ch) for _ in range(levels))
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(mid_ch, out_ch)
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(out_ch) for _ in range(levels))
        self.downsample = make_downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1[level](self.conv1(x)))
        out = self.bn2[level](self.conv2(out)) + residual
        return self.relu(out), out


def make_stage(block: type[nn.Module], in_ch: int, out_ch: int, blocks: int, stride: int,
               inner: tuple[int, ...] | None = None, **kw: int) -> nn.Sequential:
    """``blocks`` residual blocks; ``inner`` their inner widths (default ``out_ch``)."""
    inner = inner or (out_ch,) * blocks
    if len(inner) != blocks:
        raise ValueError(f"{len(inner)} inner widths for a stage of {blocks} blocks")
    layers = [block(in_ch, out_ch, stride, mid_ch=inner[0], **kw)]
    layers += [block(out_ch, out_ch, 1, mid_ch=inner[i], **kw) for i in range(1, blocks)]
    return nn.Sequential(*layers)


def check_encoder(encoder: str) -> tuple[int, int, int, int]:
    if encoder not in STAGE_BLOCKS:
        raise InputError(f"unknown encoder {encoder!r}; choose one of {sorted(STAGE_BLOCKS)}")
    return STAGE_BLOCKS[encoder]
