"""Training batches: a Cityscapes-layout split as tensors, drop-last epochs in an order that is a pure function
of (seed, epoch), augmentation of iteration i seeded by (seed, i) on the training device, and the training split
optionally cached in RAM or on the GPU."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..palette import IGNORE_LABEL
from .config import TrainConfig, TrainingError
from .transforms import TrainAugmentation


def progress_interval() -> float:
    """tqdm's refresh interval: twice a second on a terminal, every 30 s into a log file."""
    return 0.5 if sys.stderr.isatty() else 30.0


class Samples(torch.utils.data.Dataset):
    """A Cityscapes-layout split as (image CHW uint8, labels HW uint8) tensors."""

    def __init__(self, split: Any) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.split[index]
        image = torch.from_numpy(np.require(sample.image, requirements=["C", "W"])).permute(2, 0, 1).contiguous()
        labels = torch.from_numpy(np.require(sample.labels, requirements=["C", "W"]))
        return image, labels


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, Any]:
    """Stack same-size samples; keep lists where sizes differ (they are then augmented one by one)."""
    images, labels = zip(*items)
    if len({tuple(i.shape) for i in images}) == 1:
        return torch.stack(images), torch.stack(labels)
    return list(images), list(labels)


def open_split(root: str | Path, split: str) -> Any:
    from ..data.cityscapes import CityscapesSplit  # the data layer; imported lazily

    return CityscapesSplit(root, split)


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class TrainBatches:
    """Augmented training batches for iterations ``start..total-1`` (drop-last epochs over a fixed order)."""

    def __init__(self, split: Any, cfg: TrainConfig, device: torch.device, mean: Sequence[float]) -> None:
        self.samples = Samples(split)
        self.cfg = cfg
        self.device = device
        self.augment = TrainAugmentation(cfg.crop, mean, IGNORE_LABEL)
        n = len(self.samples)
        if n < cfg.batch_size:
            raise TrainingError(f"the training split has {n} images, fewer than one batch of {cfg.batch_size}")
        self.iterations_per_epoch = n // cfg.batch_size
        self._order: tuple[int, torch.Tensor] | None = None
        self.cached: tuple[torch.Tensor, torch.Tensor] | None = None
        if cfg.cache != "none":
            self.cached = self._load_cache(cfg.cache)

    def _loader(self, batch_sampler: Any) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.samples,
            batch_sampler=batch_sampler,
            num_workers=self.cfg.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if self.cfg.workers > 0 else None,
        )

    def _load_cache(self, where: str) -> tuple[torch.Tensor, torch.Tensor]:
        from tqdm import tqdm

        target = self.device if where == "device" else torch.device("cpu")
        images: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        chunks = [list(range(i, min(i + 32, len(self.samples)))) for i in range(0, len(self.samples), 32)]
        bar = tqdm(total=len(self.samples), desc=f"caching train split ({where})", disable=not self.cfg.progress,
                   mininterval=progress_interval())
        for image, label in self._loader(chunks):
            if isinstance(image, list):
                raise TrainingError("--cache needs images of one size; use --cache none for mixed sizes")
            images.append(image.to(target))
            labels.append(label.to(target))
            bar.update(len(image))
        bar.close()
        try:
            return torch.cat(images), torch.cat(labels)
        except RuntimeError as exc:
            raise TrainingError(f"--cache needs images of one size ({exc}); use --cache none") from exc

    def batch_indices(self, iteration: int) -> list[int]:
        epoch, k = divmod(iteration, self.iterations_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, torch.randperm(len(self.samples), generator=_generator(self.cfg.seed, epoch)))
        order = self._order[1]
        b = self.cfg.batch_size
        return order[k * b : (k + 1) * b].tolist()

    def _augment(self, images: Any, labels: Any, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = _generator(self.cfg.seed, 7919, iteration)
        if isinstance(images, list):  # mixed sizes: one sample at a time, same generator stream
            pairs = [
                self.augment(i[None].to(self.device), l[None].to(self.device), gen) for i, l in zip(images, labels)
            ]
            return torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        return self.augment(images, labels, gen)

    def iterate(self, start: int, total: int) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        if self.cached is not None:
            images, labels = self.cached
            for it in range(start, total):
                idx = torch.tensor(self.batch_indices(it), device=images.device)
                yield (it, *self._augment(images.index_select(0, idx), labels.index_select(0, idx), it))
            return
        loader = self._loader([self.batch_indices(it) for it in range(start, total)])
        for it, (images, labels) in zip(range(start, total), loader):
            yield (it, *self._augment(images, labels, it))

