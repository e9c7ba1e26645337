"""SwiftNet single-scale (SPP) and pyramid (multi-scale fusion) models, matching the original orsic/swiftnet.

Input: float NCHW RGB in the 0-255 range; mean/std normalisation happens inside the model (buffers
``backbone.img_mean``/``backbone.img_std``, saved in checkpoints). Output: logits at the input's size.
Every resize uses sizes that are Python ints, so an export at a fixed size contains no Shape arithmetic.
"""

from __future__ import annotations

import functools
import operator
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..encoder_scope import ENCODER_MODULES
from ..errors import InputError, SegmentationError
from .layers import BNReluConv, SpatialPyramidPooling, Upsample, UpsampleBlend, final_resize
from .resnet import BasicBlock, EncoderWidths, PyramidBasicBlock, check_encoder, make_stage

DEFAULT_MEAN = (73.15, 82.90, 72.3)
DEFAULT_STD = (47.67, 48.49, 47.73)
NUM_FEATURES = 128  # the decoder's feature width (upsampling path, SPP output, pyramid bottlenecks)
SPP_LEVELS = 3  # pooled levels of the single-scale SPP (grids 8, 4, 2), NUM_FEATURES // 3 channels each


class UnsupportedInputSize(ValueError, SegmentationError):
    """The model cannot run at the requested input size."""


@dataclass(frozen=True)
class DecoderWidths:
    """Channel counts of a decoder. ``features``: the width of each feature stream of the upsampling path; a stream
    is a sum (resized coarser features + a skip's bottleneck), so its summands share one channel set.
    Single-scale: 4 streams, coarsest first (SPP output + layer3 bottleneck, then each upsampling module's output;
    the last feeds the logits). Pyramid: 1 stream (its 1x1 bottlenecks are shared by the levels, so every slot sum,
    every blend and the logits read the same channels). ``spp``: the single-scale SPP's bottleneck width and each
    pooled level's width (empty for the pyramid)."""

    features: tuple[int, ...]
    spp: tuple[int, ...] = ()

    @staticmethod
    def full(variant: str) -> DecoderWidths:
        """The standard widths (128-channel features, SPP 128 + 3 x 42)."""
        if variant == "single_scale":
            return DecoderWidths((NUM_FEATURES,) * 4, (NUM_FEATURES,) + (NUM_FEATURES // 3,) * SPP_LEVELS)
        return DecoderWidths((NUM_FEATURES,))

    def fits(self, variant: str) -> bool:
        """Positive widths, as many as the variant has streams and SPP branches."""
        full = DecoderWidths.full(variant)
        return (len(self.features) == len(full.features) and len(self.spp) == len(full.spp)
                and all(w > 0 for w in self.features + self.spp))


@dataclass(frozen=True)
class Widths:
    """The channel widths of a channel-pruned SwiftNet (models/pruning.py): encoder and decoder."""

    encoder: EncoderWidths
    decoder: DecoderWidths


@dataclass(frozen=True)
class Architecture:
    """Which SwiftNet: ``variant`` is ``single_scale`` or ``pyramid``; ``encoder`` ``resnet18``/``resnet34``."""

    variant: str
    encoder: str
    num_classes: int = 19
    widths: Widths | None = None  # a channel-pruned network (models/pruning.py); None: the standard widths

    def encoder_widths(self) -> EncoderWidths:
        return self.widths.encoder if self.widths else EncoderWidths.full(self.encoder)

    def decoder_widths(self) -> DecoderWidths:
        return self.widths.decoder if self.widths else DecoderWidths.full(self.variant)

    @property
    def name(self) -> str:
        return f"swiftnet_{'ss' if self.variant == 'single_scale' else 'pyr'}_{self.encoder.replace('resnet', 'rn')}"


def _register_normalisation(module: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    module.register_buffer("img_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
    module.register_buffer("img_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))


class SingleScaleBackbone(nn.Module):
    """ResNet encoder + SPP on layer4 + three ladder upsampling modules (keys under ``backbone.``)."""

    encoder_modules = ENCODER_MODULES  # the encoder (what mixed precision puts in INT8); the rest is the decoder
    encoder_runs = 1  # how often the encoder runs per image

    def __init__(self, encoder: str = "resnet18", mean=DEFAULT_MEAN, std=DEFAULT_STD,
                 widths: EncoderWidths | None = None, decoder: DecoderWidths | None = None) -> None:
        super().__init__()
        blocks = check_encoder(encoder)
        w = widths or EncoderWidths.full(encoder)
        d = decoder or DecoderWidths.full("single_scale")
        _register_normalisation(self, mean, std)
        self.conv1 = nn.Conv2d(3, w.stages[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w.stages[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_stage(BasicBlock, w.stages[0], w.stages[0], blocks[0], 1, w.inner[0])
        self.layer2 = make_stage(BasicBlock, w.stages[0], w.stages[1], blocks[1], 2, w.inner[1])
        self.layer3 = make_stage(BasicBlock, w.stages[1], w.stages[2], blocks[2], 2, w.inner[2])
        self.layer4 = make_stage(BasicBlock, w.stages[2], w.stages[3], blocks[3], 2, w.inner[3])
        self.spp = SpatialPyramidPooling(w.stages[3], num_levels=SPP_LEVELS, bt_size=d.spp[0],
                                         level_sizes=d.spp[1:], out_size=d.features[0])
        self.upsample = nn.ModuleList(Upsample(d.features[i], ch, d.features[i + 1])
                                      for i, ch in enumerate(reversed(w.stages[:3])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW image -> ``features[-1]``-channel features (128 unpruned) at 1/4 resolution."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        skips = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            skips.append(x)
        x = self.spp(skips[3])
        for module, skip in zip(self.upsample, reversed(skips[:3])):
            x = module(x, skip)
        return x


class PyramidBackbone(nn.Module):
    """Shared ResNet over a 3-level bicubic image pyramid, per-level BNs, features summed by resolution."""

    encoder_modules = ENCODER_MODULES  # the encoder (shared by the levels; what mixed precision puts in INT8)

    def __init__(self, encoder: str = "resnet18", mean=DEFAULT_MEAN, std=DEFAULT_STD, levels: int = 3,
                 widths: EncoderWidths | None = None, decoder: DecoderWidths | None = None) -> None:
        super().__init__()
        blocks = check_encoder(encoder)
        w = widths or EncoderWidths.full(encoder)
        features = (decoder or DecoderWidths.full("pyramid")).features[0]
        self.pyramid_levels = levels
        self.encoder_runs = levels  # once per pyramid level: each level's Convs are separate nodes in an export
        _register_normalisation(self, mean, std)
        self.conv1 = nn.Conv2d(3, w.stages[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(w.stages[0]) for _ in range(levels))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_stage(PyramidBasicBlock, w.stages[0], w.stages[0], blocks[0], 1, w.inner[0], levels=levels)
        self.layer2 = make_stage(PyramidBasicBlock, w.stages[0], w.stages[1], blocks[1], 2, w.inner[1], levels=levels)
        self.layer3 = make_stage(PyramidBasicBlock, w.stages[1], w.stages[2], blocks[2], 2, w.inner[2], levels=levels)
        self.layer4 = make_stage(PyramidBasicBlock, w.stages[2], w.stages[3], blocks[3], 2, w.inner[3], levels=levels)
        # index 0..3 = layer4, layer3, layer2, layer1 (plain 1x1 projections, shared by all levels)
        self.upsample_bottlenecks = nn.ModuleList(
            nn.Conv2d(ch, features, kernel_size=1, bias=False) for ch in reversed(w.stages)
        )
        self.upsample_blends = nn.ModuleList(UpsampleBlend(features) for _ in range(2 + levels))

    def _encode_level(self, image: torch.Tensor, level: int) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1[level](self.conv1(image))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x, skip = block(x, level)
            features.append(skip)
        return features

    def image_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The image at each level (level l at 1/2**l, bicubic)."""
        return [x] + [F.interpolate(x, scale_factor=1.0 / 2**level, mode="bicubic", align_corners=False)
                      for level in range(1, self.pyramid_levels)]

    def project(self, features: list[list[torch.Tensor]],
                projection: Callable[[int, int], nn.Module] | None = None) -> list[list[torch.Tensor]]:
        """Each level's four stage features through its 1x1 bottleneck (``projection(level, stage)``; default
        the shared ones), gathered into the slots they are summed in, finest slot first."""
        project = projection or (lambda level, stage: self.upsample_bottlenecks[3 - stage])
        slots: list[list[torch.Tensor]] = [[] for _ in range(self.pyramid_levels + 3)]
        for level, level_features in enumerate(features):
            for stage, feature in enumerate(level_features):
                slots[level + stage].append(project(level, stage)(feature))
        return slots

    def blend_slots(self, sums: Sequence[torch.Tensor]) -> torch.Tensor:
        """The slots' sums, coarsest first, through the upsampling blends."""
        out = sums[0]
        for summed, blend in zip(sums[1:], self.upsample_blends):
            out = blend(out, summed)
        return out

    def fuse(self, x: torch.Tensor, projection: Callable[[int, int], nn.Module] | None = None) -> torch.Tensor:
        """:meth:`forward` with another bottleneck per (level, stage) use (models/fold.py gives each its own)."""
        features = [self._encode_level(image, level) for level, image in enumerate(self.image_pyramid(x))]
        slots = self.project(features, projection)
        _check_slot_sizes(slots, tuple(x.shape[2:]))
        return self.blend_slots([functools.reduce(operator.add, slot) for slot in slots[::-1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW image -> ``features[0]``-channel features (128 unpruned) at 1/4 resolution."""
        return self.fuse(x)


def _check_slot_sizes(slots: list[list[torch.Tensor]], size: tuple[int, ...]) -> None:
    for index, slot in enumerate(slots):
        shapes = {tuple(int(s) for s in f.shape[2:]) for f in slot}
        if len(shapes) > 1:
            raise UnsupportedInputSize(
                f"pyramid SwiftNet cannot fuse features at input size {size[0]}x{size[1]}: the stride-"
                f"{2 ** (index + 2)} features of different pyramid levels have sizes {sorted(shapes)} "
                "(the original model has the same limit); choose a size whose height and width halve evenly "
                "a few times, e.g. a multiple of 8 or one of 720x1280, 1080x1920, 375x1242"
            )


class SwiftNet(nn.Module):
    """Semantic segmentation model (``SemsegModel`` of the original): backbone + BN-ReLU-1x1 logits + resize."""

    def __init__(self, arch: Architecture, mean=DEFAULT_MEAN, std=DEFAULT_STD) -> None:
        super().__init__()
        self.arch = arch
        if arch.num_classes < 2 or arch.num_classes > 255:
            raise ValueError(f"num_classes must be in 2..255 (labels are uint8), got {arch.num_classes}")
        if arch.variant not in ("single_scale", "pyramid"):
            raise ValueError(f"unknown SwiftNet variant {arch.variant!r}; choose 'single_scale' or 'pyramid'")
        encoder, decoder = arch.encoder_widths(), arch.decoder_widths()
        if not encoder.fits(arch.encoder):
            raise ValueError(f"encoder widths {encoder} do not fit a {arch.encoder}")
        if not decoder.fits(arch.variant):
            raise ValueError(f"decoder widths {decoder} do not fit a {arch.variant} SwiftNet")
        backbone = SingleScaleBackbone if arch.variant == "single_scale" else PyramidBackbone
        self.backbone: nn.Module = backbone(arch.encoder, mean, std, widths=encoder, decoder=decoder)
        self.logits = BNReluConv(decoder.features[-1], arch.num_classes, k=1, bias=True)

    @property
    def encoder_modules(self) -> tuple[str, ...]:
        """The encoder's modules, as attribute names on ``backbone`` (see trt_segmentation/encoder_scope.py)."""
        return typing.cast("tuple[str, ...]", self.backbone.encoder_modules)

    def encoder_conv_count(self) -> int:
        """Convolutions the encoder runs per image (per pyramid level for the pyramid model): the Conv nodes of an
        ONNX export inside the encoder scope, i.e. what the ``mixed`` variant must quantize."""
        convs = sum(
            1
            for name in self.encoder_modules
            for module in getattr(self.backbone, name).modules()
            if isinstance(module, nn.Conv2d)
        )
        return convs * int(typing.cast(int, self.backbone.encoder_runs))

    @property
    def mean(self) -> torch.Tensor:
        """(1, 3, 1, 1) RGB mean on the 0-255 scale (the checkpoint's ``backbone.img_mean``)."""
        return typing.cast(torch.Tensor, self.backbone.img_mean)

    @property
    def std(self) -> torch.Tensor:
        """(1, 3, 1, 1) RGB standard deviation on the 0-255 scale (``backbone.img_std``)."""
        return typing.cast(torch.Tensor, self.backbone.img_std)

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        """RGB 0-255 NCHW float -> normalised (a new tensor: the caller's input is never modified)."""
        return (image - self.mean) / self.std

    def forward_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW image -> logits at the image's size."""
        features = self.backbone(x)
        return final_resize(self.logits(features), (x.shape[2], x.shape[3]))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """RGB 0-255 NCHW float image -> logits (N, num_classes, H, W)."""
        return self.forward_normalised(self.normalise(image))


def _halve_up(n: int, times: int) -> int:
    for _ in range(times):
        n = (n + 1) // 2
    return n


def check_input_size(arch: Architecture, height: int, width: int) -> None:
    """Raise :class:`UnsupportedInputSize` where the model cannot run at ``height`` x ``width``.

    Convolution strides round up (stem, max-pool and strided 3x3 convs all give ceil(n/2)); the pyramid's
    downsampled images round down (floor(n/2^l)), so its per-resolution sums need matching sizes.
    """
    if height < 64 or width < 64:
        raise UnsupportedInputSize(f"input {height}x{width} is too small; both sides must be at least 64 pixels")
    if arch.variant != "pyramid":
        return
    for axis, n in (("height", height), ("width", width)):
        for slot in range(1, 6):
            sizes = {_halve_up(n // 2**level, slot - level + 2) for level in range(3) if 0 <= slot - level <= 3}
            if len(sizes) > 1:
                raise UnsupportedInputSize(
                    f"pyramid SwiftNet cannot fuse features at input size {height}x{width}: at stride "
                    f"{2 ** (slot + 2)} the pyramid levels give {axis}s {sorted(sizes)} (the original model has "
                    "the same limit); choose sizes that halve evenly a few times, e.g. multiples of 8, or "
                    "720x1280, 1080x1920, 375x1242"
                )


def build_model(variant: str = "single_scale", encoder: str = "resnet18", num_classes: int = 19) -> SwiftNet:
    """Construct a SwiftNet with random weights (in eval mode)."""
    return SwiftNet(Architecture(variant, encoder, num_classes)).eval()


MODEL_NAMES: dict[str, Architecture] = {
    a.name: a
    for a in (Architecture(v, e) for v in ("single_scale", "pyramid") for e in ("resnet18", "resnet34"))
}


def architecture_from_name(name: str, num_classes: int = 19) -> Architecture:
    """``swiftnet_ss_rn18`` / ``swiftnet_pyr_rn34`` ... -> Architecture."""
    if name not in MODEL_NAMES:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    a = MODEL_NAMES[name]
    return Architecture(a.variant, a.encoder, num_classes)
