"""SwiftNet models in PyTorch (needs torch): architectures, exact pooling, checkpoints, complexity."""

from .checkpoint import CheckpointError, infer_architecture, load_checkpoint, load_into
from .swiftnet import (
    MODEL_NAMES,
    Architecture,
    SwiftNet,
    UnsupportedInputSize,
    architecture_from_name,
    build_model,
    check_input_size,
)

__all__ = [
    "MODEL_NAMES",
    "Architecture",
    "CheckpointError",
    "SwiftNet",
    "UnsupportedInputSize",
    "architecture_from_name",
    "build_model",
    "check_input_size",
    "infer_architecture",
    "load_checkpoint",
    "load_into",
]
