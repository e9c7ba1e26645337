"""A SwiftNet checkpoint run with plain PyTorch (CPU or CUDA), one frame per call: the backend evaluation scores
checkpoints with (``create_backend("checkpoint", ...)``). The node's GPU paths are the TensorRT and torch-slot
backends; loading and inference are theirs too (runtime/torch_model.py), without the CUDA slots. torch is imported
only when one is created."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import InputFormat
from ..onnx_metadata import ModelContract
from .backend import Backend, InferenceResult
from .torch_model import frames_to_labels, load_module, model_name


class CheckpointBackend(Backend):
    """A checkpoint (path, or a module) at the frame's own size, or at ``height`` x ``width`` when given."""

    name = "torch-checkpoint"

    def __init__(self, checkpoint: str | Path | Any, height: int = 0, width: int = 0, device: str = "cpu",
                 threads: int = 0) -> None:
        import torch

        model = load_module(checkpoint)
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        contract = ModelContract(
            model=model_name(model), num_classes=getattr(getattr(model, "arch", None), "num_classes", 19),
            height=height, width=width, input_format=InputFormat.UINT8_RGB, output="labels_uint8", input_name="image",
            output_name="labels", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), precision="fp32",
            extra={"source": str(checkpoint) if isinstance(checkpoint, (str, Path)) else "module"})
        super().__init__(contract)

    def check_frame(self, image: np.ndarray) -> None:
        if self.contract.height > 0:
            super().check_frame(image)
        elif image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8, got {image.shape} {image.dtype}")

    def infer(self, image: np.ndarray) -> InferenceResult:
        self.check_frame(image)
        torch = self._torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            frames = torch.from_numpy(np.array(image, dtype=np.uint8)).to(self.device)[None]
            labels = frames_to_labels(self.model, frames, torch.float32)[0].cpu().numpy()
        return InferenceResult(labels, {"inference": (time.perf_counter() - t0) * 1e3})


__all__ = ["CheckpointBackend"]
