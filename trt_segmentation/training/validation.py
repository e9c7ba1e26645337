"""Validation during training: full-resolution, single-scale mIoU of the model on a labelled split, the confusion
matrix counted on the device (one confusion matrix and one set of scores for training and evaluation:
trt_segmentation.metrics)."""

from __future__ import annotations

from typing import Any

import torch

from ..metrics import confusion_matrix, scores_from_confusion
from ..models import SwiftNet
from .batches import Samples, collate, progress_interval


def autocast(device: torch.device, amp: bool) -> Any:
    """Mixed precision on CUDA (bf16 where supported, else fp16) when ``amp``; else a disabled autocast."""
    if device.type == "cuda" and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


# one confusion matrix and one set of scores for training and evaluation: trt_segmentation.metrics (it counts
# torch tensors on the device too)


@torch.no_grad()
def evaluate(
    model: SwiftNet,
    split: Any,
    device: torch.device,
    num_classes: int,
    amp: bool = False,
    workers: int = 2,
    batch_size: int = 4,
    max_images: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Full-resolution, single-scale evaluation of ``model`` on a labelled split (confusion on the device)."""
    from tqdm import tqdm

    samples = Samples(split)
    count = len(samples) if max_images is None else min(len(samples), max_images)
    chunks = [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
    loader = torch.utils.data.DataLoader(
        samples, batch_sampler=chunks, num_workers=workers, collate_fn=collate, pin_memory=device.type == "cuda"
    )
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    mixed = autocast(device, amp)
    for images, labels in tqdm(loader, total=len(chunks), desc="val", disable=not progress, leave=False,
                               mininterval=progress_interval()):
        pairs = zip(images, labels) if isinstance(images, list) else [(images, labels)]
        for image, label in pairs:
            if image.dim() == 3:
                image, label = image[None], label[None]
            x = image.to(device, non_blocking=True).float()
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with mixed:
                pred = model(x).argmax(1)
            confusion += confusion_matrix(label.to(device), pred, num_classes)
    model.train(was_training)
    result = scores_from_confusion(confusion.cpu().numpy())
    result["images"] = count
    result["confusion"] = confusion.cpu().numpy().tolist()
    return result

