"""The PyTorch model path shared by the torch slot backend (CUDA graphs on the CUDA slots) and evaluation's plain
checkpoint backend (CPU or CUDA): loading a checkpoint, the normalisation the module applies, and uint8 frames ->
uint8 labels. torch is imported inside the functions: this module loads without it, and only a torch backend
calls them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Tuple

from .backend import BackendError


def load_module(source: Any) -> Any:
    """A checkpoint path -> its SwiftNet (``models.load_checkpoint``); a module is returned as it is."""
    if isinstance(source, (str, Path)):
        from ..models import load_checkpoint

        path = Path(source)
        if not path.is_file():
            raise BackendError(f"PyTorch checkpoint not found: {path}")
        return load_checkpoint(path)
    return source


def normalisation(module: Any) -> Tuple[Tuple[float, float, float], Tuple[float, float, float]]:
    """The mean/std (0-255 scale, RGB) the module applies inside its forward pass (SwiftNet keeps them as
    ``backbone.img_mean``/``img_std`` buffers, from the checkpoint)."""
    mean, std = getattr(module, "mean", None), getattr(module, "std", None)
    if mean is None or std is None:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    m = [float(v) for v in mean.flatten().tolist()]
    s = [float(v) for v in std.flatten().tolist()]
    return (m[0], m[1], m[2]), (s[0], s[1], s[2])


def model_name(module: Any) -> str:
    """The architecture name a SwiftNet carries (``module.arch.name``), else the class name."""
    return str(getattr(getattr(module, "arch", None), "name", type(module).__name__))


def frames_to_labels(module: Any, frames: Any, dtype: Any, flip: bool = False, channels_last: bool = False) -> Any:
    """(N, H, W, 3) uint8 tensor (on the module's device) -> (N, H, W) uint8 labels tensor.

    The module maps (N, 3, H, W) float 0..255 RGB to (N, C, H, W) logits (SwiftNet.forward normalises itself).
    ``flip``: the frames are BGR. The permuted NHWC tensor already has channels-last strides, which ``.to``
    keeps; ``channels_last`` makes that layout explicit (the CUDA-graph executor's modules are channels-last)."""
    import torch

    rgb = frames.permute(0, 3, 1, 2)  # NHWC memory seen as NCHW: that is the channels-last layout
    if flip:
        rgb = rgb.flip(1)
    x = rgb.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return module(x).argmax(1).to(torch.uint8)


__all__ = ["frames_to_labels", "load_module", "model_name", "normalisation"]
