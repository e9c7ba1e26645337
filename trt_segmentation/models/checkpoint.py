"""Load checkpoints of the original SwiftNet (HEAD key layout), detect the architecture, refuse v0 files.

A channel-pruned checkpoint (models/pruning.py) has the same keys with narrower tensors: its encoder and decoder
widths are read off the weight shapes, so every loader builds the narrower model without being told."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import SegmentationError
from .resnet import STAGE_BLOCKS, EncoderWidths
from .swiftnet import SPP_LEVELS, Architecture, DecoderWidths, SwiftNet, Widths


class CheckpointError(ValueError, SegmentationError):
    """A checkpoint file does not fit the requested SwiftNet."""


def _unwrap(obj: object) -> dict[str, torch.Tensor]:
    """Accept a bare state dict or the usual wrappers ({'state_dict': ...}, {'model': ...})."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            # checkpoints saved from nn.DataParallel prefix every key with "module."
            if all(k.startswith("module.") for k in tensors):
                tensors = {k[len("module."):]: v for k, v in tensors.items()}
            return tensors
    raise CheckpointError("the file holds no state dict (expected a mapping of parameter names to tensors)")


def is_v0_layout(state: Mapping[str, torch.Tensor]) -> bool:
    """The first public release stored no normalisation buffers and used a 3x3 logits conv without bias."""
    logits = state.get("logits.conv.weight")
    return (
        "backbone.img_mean" not in state
        and logits is not None
        and logits.dim() == 4
        and logits.shape[-1] == 3
        and "logits.conv.bias" not in state
    )


def infer_architecture(state: Mapping[str, torch.Tensor]) -> Architecture:
    """Read variant, encoder and class count off the key names and shapes."""
    if "logits.conv.weight" not in state:
        raise CheckpointError("not a SwiftNet checkpoint: key 'logits.conv.weight' is missing")
    variant = _variant(state)
    encoder = "resnet34" if "backbone.layer3.5.conv1.weight" in state else "resnet18"
    return Architecture(variant, encoder, int(state["logits.conv.weight"].shape[0]), infer_widths(state, encoder))


def _variant(state: Mapping[str, torch.Tensor]) -> str:
    return "pyramid" if any(k.startswith("backbone.upsample_bottlenecks.") for k in state) else "single_scale"


def _out_channels(state: Mapping[str, torch.Tensor], key: str) -> int:
    return int(state[key].shape[0])


def infer_widths(state: Mapping[str, torch.Tensor], encoder: str) -> Widths | None:
    """The widths the weight shapes give: encoder (``layer<i>.<j>.conv1/conv2``) and decoder (the convs that write
    each feature stream and SPP branch); None for the standard widths or where the keys are missing (then loading
    reports the missing keys)."""
    pyramid = _variant(state) == "pyramid"
    spp = "backbone.spp.spp."
    try:
        stages = tuple(_out_channels(state, f"backbone.layer{i}.0.conv2.weight") for i in range(1, 5))
        inner = tuple(tuple(_out_channels(state, f"backbone.layer{i}.{j}.conv1.weight") for j in range(blocks))
                      for i, blocks in enumerate(STAGE_BLOCKS[encoder], start=1))
        if pyramid:
            decoder = DecoderWidths((_out_channels(state, "backbone.upsample_bottlenecks.0.weight"),))
        else:
            decoder = DecoderWidths(
                (_out_channels(state, spp + "spp_fuse.conv.weight"),
                 *(_out_channels(state, f"backbone.upsample.{i}.blend_conv.conv.weight") for i in range(3))),
                (_out_channels(state, spp + "spp_bn.conv.weight"),
                 *(_out_channels(state, f"{spp}spp{i}.conv.weight") for i in range(SPP_LEVELS))))
    except KeyError:
        return None
    widths = Widths(EncoderWidths(stages, inner), decoder)  # type: ignore[arg-type]
    full = Widths(EncoderWidths.full(encoder), DecoderWidths.full("pyramid" if pyramid else "single_scale"))
    return None if widths == full else widths


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a corrupt or foreign file
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from exc
    return _unwrap(obj)


def load_into(model: SwiftNet, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> SwiftNet:
    """Strictly load ``state`` into ``model``; one clear error listing missing/unexpected/mis-shaped keys."""
    if is_v0_layout(state):
        raise CheckpointError(
            f"{source} uses the layout of SwiftNet's first release (v0, 2019-03: 3x3 logits without bias, "
            "normalisation outside the model). It is not supported; use a checkpoint of the current layout."
        )
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or mis_shaped:
        def head(items: list[str]) -> str:
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8} more)" if len(items) > 8 else "")

        parts = [f"{source} does not fit {model.arch.name} ({model.arch.num_classes} classes):"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {head(unexpected)}")
        if mis_shaped:
            parts.append(f"shape mismatches ({len(mis_shaped)}): {head(mis_shaped)}")
        raise CheckpointError("\n  ".join(parts))
    converted = {k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(converted, strict=True)
    return model.eval()


def load_checkpoint(path: str | Path, arch: Architecture | None = None) -> SwiftNet:
    """Build the model the checkpoint describes (or ``arch``) and load it strictly; fp16 files are upcast."""
    state = load_state_dict_file(path)
    if arch is None:
        if is_v0_layout(state):
            load_into(SwiftNet(Architecture("single_scale", "resnet18")), state, str(path))
        arch = infer_architecture(state)
    return load_into(SwiftNet(arch), state, str(path))
