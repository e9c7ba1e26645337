"""ResNet-18/34 encoders of SwiftNet: the single-scale one and the pyramid one with per-level BatchNorms."""

from __future__ import annotations

import torch
from torch import nn

STAGE_BLOCKS: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}
STAGE_CHANNELS = (64, 128, 256, 512)


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def make_downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Residual block of the single-scale encoder; its output is post-ReLU (as the original's skips are)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch)
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

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, levels: int = 3) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(out_ch) for _ in range(levels))
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(out_ch) for _ in range(levels))
        self.downsample = make_downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1[level](self.conv1(x)))
        out = self.bn2[level](self.conv2(out)) + residual
        return self.relu(out), out


def make_stage(block: type[nn.Module], in_ch: int, out_ch: int, blocks: int, stride: int, **kw: int) -> nn.Sequential:
    layers = [block(in_ch, out_ch, stride, **kw)]
    layers += [block(out_ch, out_ch, 1, **kw) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def check_encoder(encoder: str) -> tuple[int, int, int, int]:
    if encoder not in STAGE_BLOCKS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(STAGE_BLOCKS)}")
    return STAGE_BLOCKS[encoder]
