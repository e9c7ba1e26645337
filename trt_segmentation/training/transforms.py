"""Training augmentation of the original SwiftNet recipe, vectorised over a batch on any torch device.

``RandomFlip`` mirrors half of the samples horizontally. ``RandomSquareCropAndScale`` draws a scale
s ~ U(0.5, 2) per sample, cuts a square of ``int(crop * s)`` pixels at a random place (where it reaches past
the image, the image is padded with the mean colour and the labels with the ignore id) and resizes it to
``crop x crop``: bicubic for the image, nearest for the labels. Both work on a whole NCHW batch at once: the
crop-and-resize of every sample is one ``grid_sample`` with a per-sample sampling grid, so a batch of
full-size images can be augmented on the GPU without a per-image Python loop.

Difference from the original (PIL) pipeline: the bicubic resize does not low-pass filter when it shrinks
(s > 1 shrinks by at most 2x), so thin structures alias slightly more than with PIL's antialiased resize.

Every random draw comes from an explicit ``torch.Generator`` so that a run (and a resumed run) is repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..palette import IGNORE_LABEL


class RandomFlip:
    """Mirror each sample left-right with probability ``p`` (images NCHW, labels NHW, same flips)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {p}")
        self.p = p

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        flip = torch.rand(images.shape[0], generator=generator) < self.p
        if not bool(flip.any()):
            return images, labels
        flip = flip.to(images.device)
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        labels = torch.where(flip.view(-1, 1, 1), labels.flip(-1), labels)
        return images, labels


class RandomSquareCropAndScale:
    """Random square crop of ``int(crop * s)`` px, s ~ U(min_scale, max_scale), resized to ``crop x crop``.

    Input: images NCHW (uint8 or float, 0-255), labels NHW (any integer type). Output: float32 images
    N x C x crop x crop (0-255, padding = ``mean``) and int64 labels N x crop x crop (padding = ``ignore``).
    """

    def __init__(
        self,
        crop: int,
        mean: Sequence[float],
        ignore: int = IGNORE_LABEL,
        min_scale: float = 0.5,
        max_scale: float = 2.0,
    ) -> None:
        if crop < 1:
            raise ValueError(f"crop size must be positive, got {crop}")
        if not 0.0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.crop = int(crop)
        self.mean = tuple(float(m) for m in mean)
        self.ignore = int(ignore)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)

    def sample_boxes(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` boxes (x0, y0, side) in pixels. A side larger than the image places the image at a random
        position inside the box (the rest is padding); a smaller one lies wholly inside the image."""
        scale = torch.empty(n, dtype=torch.float64).uniform_(self.min_scale, self.max_scale, generator=generator)
        side = (self.crop * scale).floor()  # int(crop * s) of the original
        u = torch.rand(n, 2, dtype=torch.float64, generator=generator)
        # x0 in [0, W - side] when the box fits, else in [W - side, 0]; likewise y0
        x0 = ((width - side) * u[:, 0]).floor()
        y0 = ((height - side) * u[:, 1]).floor()
        return torch.stack([x0, y0, side], dim=1)

    def grid(self, boxes: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
        """Sampling grid (N, crop, crop, 2) for ``grid_sample`` (align_corners=False) of the given boxes, built
        on ``device`` (only the N boxes travel there)."""
        boxes = boxes.to(device=device, dtype=torch.float32)
        x0, y0, side = (boxes[:, i : i + 1] for i in range(3))
        centres = torch.arange(self.crop, dtype=torch.float32, device=device) + 0.5
        step = side / self.crop
        gx = 2.0 * (x0 + centres * step) / width - 1.0  # (N, crop): input x of each output column
        gy = 2.0 * (y0 + centres * step) / height - 1.0
        n = boxes.shape[0]
        return torch.stack(
            [gx[:, None, :].expand(n, self.crop, self.crop), gy[:, :, None].expand(n, self.crop, self.crop)], dim=-1
        )

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if images.dim() != 4 or labels.dim() != 3 or images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"expected images NCHW and labels NHW, got {tuple(images.shape)} and {tuple(labels.shape)}"
            )
        if images.shape[2:] != labels.shape[1:]:
            raise ValueError(f"image size {tuple(images.shape[2:])} differs from label size {tuple(labels.shape[1:])}")
        n, channels, height, width = images.shape
        if len(self.mean) != channels:
            raise ValueError(f"mean has {len(self.mean)} values for {channels} image channels")
        boxes = self.sample_boxes(n, height, width, generator)
        grid = self.grid(boxes, height, width, images.device)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
        # zero padding of (image - mean) is padding with the mean colour
        out = F.grid_sample(images.float() - mean, grid, mode="bicubic", padding_mode="zeros", align_corners=False)
        out = (out + mean).clamp_(0.0, 255.0)
        # labels + 1 so that the zero padding marks "outside", which becomes the ignore id
        shifted = labels.to(torch.float32).unsqueeze(1) + 1.0
        lab = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
        lab = lab.squeeze(1).round_().to(torch.int64) - 1
        lab[lab < 0] = self.ignore
        return out, lab


class TrainAugmentation:
    """The training pipeline of the original: ``RandomFlip`` then ``RandomSquareCropAndScale``."""

    def __init__(self, crop: int, mean: Sequence[float], ignore: int = IGNORE_LABEL, flip: bool = True) -> None:
        self.flip = RandomFlip() if flip else None
        self.crop_scale = RandomSquareCropAndScale(crop, mean, ignore)

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flip is not None:
            images, labels = self.flip(images, labels, generator)
        return self.crop_scale(images, labels, generator)
