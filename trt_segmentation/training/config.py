"""What a training run is given and gives back (no torch: the command reads and resumes settings with it): the
settings (:class:`TrainConfig`, defaults = the original recipe), the result, the error, and the run folder's file
names (``last.pt`` / ``best.pt`` weights in the original SwiftNet key layout, ``training_state.pt`` for resuming,
``history.jsonl`` one line per log/validation event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SegmentationError

WEIGHTS_LAST = "last.pt"
WEIGHTS_BEST = "best.pt"
TRAINING_STATE = "training_state.pt"
HISTORY = "history.jsonl"
ENCODER_PREFIXES = ("backbone.conv1.", "backbone.bn1.", "backbone.layer")


class TrainingError(RuntimeError, SegmentationError):
    """Training cannot start or continue (bad data root, unusable resume/init file, bad settings)."""


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults are the original recipe (Cityscapes, single-scale RN-18)."""

    data_root: str
    out: str = "runs/train"
    model: str = "swiftnet_ss_rn18"
    num_classes: int = 19
    train_split: str = "train"
    val_split: str = "val"
    crop: int = 768
    batch_size: int = 14
    epochs: int | None = 250
    iterations: int | None = None  # overrides epochs when set
    lr: float = 4e-4  # decoder
    encoder_lr: float = 1e-4
    weight_decay: float = 1e-4  # decoder
    encoder_weight_decay: float = 2.5e-5
    min_lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_iterations: int = 0
    device: str = "cuda"
    amp: bool = True  # CUDA only
    workers: int = 4
    cache: str = "none"  # none | ram | device: keep the decoded training split in memory
    val_every: int = 4  # epochs (epoch schedule) or iterations (iteration schedule); 0 = only at the end
    max_val_images: int | None = None
    log_every: int = 50
    seed: int = 0
    init: str | None = None  # weights to start from (fine-tuning)
    resume: str | None = None  # output folder (or its training_state.pt) of an interrupted run
    stop_after: int | None = None  # end this session after N steps (resumable), e.g. to fit a time slot
    time_limit: float | None = None  # end this session after this many seconds of training (resumable)
    progress: bool = True
    channels_last: bool = True  # CUDA only
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    out: Path
    iterations: int
    total: int
    best_miou: float | None
    final_miou: float | None
    seconds: float
    final_loss: float | None

