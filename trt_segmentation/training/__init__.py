"""Training and fine-tuning of SwiftNet (needs torch): the original recipe's augmentation, loop and checkpoints.

config (settings, result, run-folder names; no torch), batches (data loading and augmentation), weights
(parameter groups, initial weights, saving), schedule (warm-up + cosine), validation (mIoU during training) and
trainer (the loop, checkpoints and resuming)."""

from .config import TrainConfig, TrainingError, TrainResult
from .trainer import Trainer, train
from .transforms import RandomFlip, RandomSquareCropAndScale, TrainAugmentation
from .validation import evaluate
from .weights import load_initial_weights, save_weights

__all__ = [
    "RandomFlip",
    "RandomSquareCropAndScale",
    "TrainAugmentation",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "evaluate",
    "load_initial_weights",
    "save_weights",
    "train",
]
