"""The network's weights in training: encoder / decoder parameter groups, initialisation from scratch, loading
the weights a run starts from (fine-tuning to other classes keeps new logits) and saving them in the original
SwiftNet key layout."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models import SwiftNet, load_into
from ..models.checkpoint import load_state_dict_file
from .config import ENCODER_PREFIXES


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(encoder, decoder) parameters: the ResNet stem and stages vs. SPP / ladder / logits."""
    encoder: list[nn.Parameter] = []
    decoder: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        (encoder if name.startswith(ENCODER_PREFIXES) else decoder).append(param)
    return encoder, decoder


def initialise_from_scratch(model: nn.Module) -> None:
    """He (fan-out) init of every conv but the logits, BN to identity: what the original's ResNet did before
    loading ImageNet weights. The logits conv keeps PyTorch's default init."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and not name.startswith("logits"):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def load_initial_weights(model: SwiftNet, path: str | Path) -> list[str]:
    """Load ``path`` into ``model``; if only the logits layer's class count differs, keep the new logits
    (fine-tuning to other classes). Returns the keys that were not taken from the file."""
    state = load_state_dict_file(path)
    own = model.state_dict()
    logits_keys = [k for k in own if k.startswith("logits.conv.")]
    if any(k in state and tuple(state[k].shape) != tuple(own[k].shape) for k in logits_keys):
        rest = {k: v for k, v in state.items() if not k.startswith("logits.conv.")}
        kept = {k: own[k] for k in logits_keys}
        load_into(model, {**rest, **kept}, str(path))
        return logits_keys
    load_into(model, state, str(path))
    return []


def save_weights(model: nn.Module, path: str | Path, dtype: torch.dtype | None = None) -> Path:
    """Save the state dict (original key layout); ``dtype=torch.float16`` halves the file for distribution."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.detach().to("cpu", dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path

