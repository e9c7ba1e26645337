"""Training and fine-tuning of SwiftNet (needs torch): the original recipe's augmentation, loop and checkpoints."""

from .trainer import (
    TrainConfig,
    Trainer,
    TrainingError,
    TrainResult,
    evaluate,
    load_initial_weights,
    save_weights,
    train,
)
from .transforms import RandomFlip, RandomSquareCropAndScale, TrainAugmentation

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
