"""Train or fine-tune SwiftNet on a Cityscapes-layout root, following the original recipe.

Recipe (orsic/swiftnet configs): RandomFlip + RandomSquareCropAndScale, Adam (betas 0.9/0.99) with separate
learning rates and weight decays for the encoder (conv1, bn1, layer1-4) and the decoder (SPP / ladder / logits),
cosine decay to 1e-6, cross-entropy that ignores every label >= num_classes. Additions: mixed precision on CUDA,
optional linear warm-up, iteration-based schedules, batches augmented on the training device, and the training
set optionally cached in RAM or on the GPU.

Output folder: ``last.pt`` and ``best.pt`` hold the model's state dict in the ORIGINAL SwiftNet key layout (what
``trt_segmentation.models.load_checkpoint`` reads); ``training_state.pt`` holds what resuming needs
(optimizer, scheduler, grad scaler, iteration, best mIoU); ``history.jsonl`` one line per log/validation event.

Randomness is a pure function of (seed, iteration): the sample order of epoch e comes from a generator seeded
with (seed, e) and the augmentation of iteration i from one seeded with (seed, i), so a resumed run draws the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SegmentationError
from ..metrics import confusion_matrix, scores_from_confusion
from ..models import SwiftNet, architecture_from_name, load_into
from ..models.checkpoint import CheckpointError, infer_widths, load_state_dict_file
from ..models.swiftnet import Architecture
from ..palette import IGNORE_LABEL
from .transforms import TrainAugmentation

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


# ----------------------------------------------------------------------------------------------- data


class _Samples(torch.utils.data.Dataset):
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


def _collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, Any]:
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
        self.samples = _Samples(split)
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
            collate_fn=_collate,
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
                   mininterval=_mininterval())
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


# ----------------------------------------------------------------------------------------------- model


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


# ----------------------------------------------------------------------------------------------- validation
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

    samples = _Samples(split)
    count = len(samples) if max_images is None else min(len(samples), max_images)
    chunks = [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
    loader = torch.utils.data.DataLoader(
        samples, batch_sampler=chunks, num_workers=workers, collate_fn=_collate, pin_memory=device.type == "cuda"
    )
    was_training = model.training
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    autocast = _autocast(device, amp)
    for images, labels in tqdm(loader, total=len(chunks), desc="val", disable=not progress, leave=False,
                               mininterval=_mininterval()):
        pairs = zip(images, labels) if isinstance(images, list) else [(images, labels)]
        for image, label in pairs:
            if image.dim() == 3:
                image, label = image[None], label[None]
            x = image.to(device, non_blocking=True).float()
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                pred = model(x).argmax(1)
            confusion += confusion_matrix(label.to(device), pred, num_classes)
    model.train(was_training)
    result = scores_from_confusion(confusion.cpu().numpy())
    result["images"] = count
    result["confusion"] = confusion.cpu().numpy().tolist()
    return result


# ----------------------------------------------------------------------------------------------- loop


def _mininterval() -> float:
    return 0.5 if sys.stderr.isatty() else 30.0


def _autocast(device: torch.device, amp: bool) -> Any:
    if device.type == "cuda" and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _cosine_factor(cfg: TrainConfig, base_lr: float, total: int) -> Any:
    def factor(it: int) -> float:
        if cfg.warmup_iterations > 0 and it < cfg.warmup_iterations:
            return (it + 1) / cfg.warmup_iterations
        span = max(1, total - cfg.warmup_iterations)
        t = min(1.0, (it - cfg.warmup_iterations) / span)
        lr = cfg.min_lr + (base_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
        return lr / base_lr

    return factor


def resolve_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu")
    return device


def _resume_paths(resume: str | Path) -> tuple[Path, Path]:
    path = Path(resume)
    folder = path if path.is_dir() else path.parent
    state, weights = folder / TRAINING_STATE, folder / WEIGHTS_LAST
    for p in (state, weights):
        if not p.is_file():
            raise TrainingError(f"cannot resume from {resume}: {p} is missing")
    return state, weights


def _cuda_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _with_widths_of(arch: Architecture, cfg: TrainConfig) -> Architecture:
    """``arch`` with the encoder widths of the weights the run starts from (a channel-pruned --init or the resumed
    run's weights; models/pruning.py), so a pruned network trains at its own widths."""
    source = _resume_paths(cfg.resume)[1] if cfg.resume else (Path(cfg.init) if cfg.init else None)
    if source is None or not Path(source).is_file():
        return arch  # a missing file is reported where it is loaded
    try:
        widths = infer_widths(load_state_dict_file(source), arch.encoder)
    except CheckpointError as exc:
        raise TrainingError(str(exc)) from exc
    return replace(arch, widths=widths)


class Trainer:
    """One training run; ``run()`` trains to the configured length, validating and checkpointing on the way."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if (cfg.epochs is None or cfg.epochs < 1) and (cfg.iterations is None or cfg.iterations < 1):
            raise TrainingError("give a positive number of --epochs or --iterations")
        if cfg.cache not in ("none", "ram", "device"):
            raise TrainingError(f"cache must be none, ram or device, got {cfg.cache!r}")
        self.device = resolve_device(cfg.device)
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        arch = _with_widths_of(architecture_from_name(cfg.model, cfg.num_classes), cfg)
        from ..models import check_input_size

        check_input_size(arch, cfg.crop, cfg.crop)
        self.model = SwiftNet(arch)
        initialise_from_scratch(self.model)
        if cfg.init and not cfg.resume:
            try:
                skipped = load_initial_weights(self.model, cfg.init)
            except CheckpointError as exc:
                raise TrainingError(str(exc)) from exc
            if skipped:
                self._say(f"init: {cfg.init} (logits re-initialised for {cfg.num_classes} classes)")
            else:
                self._say(f"init: {cfg.init}")
        self.model.to(self.device).train()
        self.use_channels_last = cfg.channels_last and self.device.type == "cuda"
        if self.use_channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

        encoder, decoder = parameter_groups(self.model)
        self.optimizer = torch.optim.Adam(
            [
                {"params": decoder, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "name": "decoder"},
                {"params": encoder, "lr": cfg.encoder_lr, "weight_decay": cfg.encoder_weight_decay, "name": "encoder"},
            ],
            betas=cfg.betas,
        )
        self.amp = cfg.amp and self.device.type == "cuda"
        use_scaler = self.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        try:
            self.train_split = open_split(cfg.data_root, cfg.train_split)
        except Exception as exc:  # the reader raises its own clear errors; keep them, add context
            raise TrainingError(f"cannot open training split {cfg.train_split!r} of {cfg.data_root}: {exc}") from exc
        self.val_split = None
        if cfg.val_split:
            try:
                self.val_split = open_split(cfg.data_root, cfg.val_split)
            except Exception as exc:
                self._say(f"no validation ({cfg.val_split!r} split not usable: {exc})")

        mean = self.model.backbone.get_buffer("img_mean").flatten().tolist()
        self.batches = TrainBatches(self.train_split, cfg, self.device, mean)
        ipe = self.batches.iterations_per_epoch
        self.total = cfg.iterations if cfg.iterations else int(cfg.epochs or 0) * ipe
        by_epoch = not cfg.iterations
        self.val_interval = (cfg.val_every * ipe if by_epoch else cfg.val_every) if cfg.val_every > 0 else 0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, [_cosine_factor(cfg, g["lr"], self.total) for g in self.optimizer.param_groups]
        )
        self.start = 0
        self.best_miou: float | None = None
        self.seconds_before = 0.0
        if cfg.resume:
            self._resume(cfg.resume)

    # -- bookkeeping
    def _say(self, text: str) -> None:
        if self.cfg.progress:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)

    def _log(self, record: Mapping[str, Any]) -> None:
        with open(self.out / HISTORY, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _resume(self, resume: str) -> None:
        state_path, weights_path = _resume_paths(resume)
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("model") != self.cfg.model or state.get("num_classes") != self.cfg.num_classes:
            raise TrainingError(
                f"cannot resume: {state_path} belongs to {state.get('model')} with {state.get('num_classes')} "
                f"classes, this run is {self.cfg.model} with {self.cfg.num_classes}"
            )
        try:
            load_into(self.model, load_state_dict_file(weights_path), str(weights_path))
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from exc
        self.model.train()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start = int(state["iteration"])
        self.best_miou = state.get("best_miou")
        self.seconds_before = float(state.get("seconds", 0.0))
        self._say(f"resumed from {state_path} at iteration {self.start}/{self.total}")

    def save(self, iteration: int, seconds: float) -> None:
        save_weights(self.model, self.out / WEIGHTS_LAST)
        state = {
            "iteration": iteration,
            "epoch": iteration / self.batches.iterations_per_epoch,
            "model": self.cfg.model,
            "num_classes": self.cfg.num_classes,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "best_miou": self.best_miou,
            "seconds": seconds,
            "config": asdict(self.cfg),
        }
        tmp = self.out / (TRAINING_STATE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.out / TRAINING_STATE)

    def validate(self, iteration: int) -> dict[str, Any] | None:
        if self.val_split is None:
            return None
        result = evaluate(
            self.model, self.val_split, self.device, self.cfg.num_classes, amp=self.amp,
            workers=min(self.cfg.workers, 4), max_images=self.cfg.max_val_images, progress=self.cfg.progress,
        )
        if self.best_miou is None or result["miou"] > self.best_miou:
            self.best_miou = result["miou"]
            save_weights(self.model, self.out / WEIGHTS_BEST)
        self._log({"event": "val", "iteration": iteration, "miou": result["miou"], "iou": result["iou"],
                   "pixel_accuracy": result["pixel_accuracy"], "images": result["images"]})
        self._say(f"val @ {iteration}: mIoU {100 * result['miou']:.2f} %, pixel acc "
                  f"{100 * result['pixel_accuracy']:.2f} % ({result['images']} images)")
        return result

    # -- the loop
    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.use_channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = torch.where(labels >= self.cfg.num_classes, IGNORE_LABEL, labels)
        with _autocast(self.device, self.amp):
            logits = self.model(images)
        valid = (labels != IGNORE_LABEL).sum().clamp_min(1)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_LABEL, reduction="sum") / valid
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def run(self) -> TrainResult:
        from tqdm import tqdm

        cfg = self.cfg
        if self.start >= self.total:
            self._say(f"nothing to do: already at iteration {self.start} of {self.total}")
        self._log({"event": "start", "iteration": self.start, "total": self.total, "config": asdict(cfg),
                   "device": str(self.device), "torch": torch.__version__})
        bar = tqdm(total=self.total, initial=self.start, desc=f"train {cfg.model}", unit="it",
                   disable=not cfg.progress, mininterval=_mininterval(), dynamic_ncols=True)
        t0 = time.perf_counter()
        running: list[torch.Tensor] = []
        last_loss: float | None = None
        final_miou: float | None = None
        iteration = self.start
        end = self.total if not cfg.stop_after else min(self.total, self.start + cfg.stop_after)
        for it, images, labels in self.batches.iterate(self.start, end):
            running.append(self.train_step(images, labels))
            iteration = it + 1
            bar.update(1)
            if cfg.time_limit and time.perf_counter() - t0 > cfg.time_limit and iteration < end:
                self._say(f"time limit of {cfg.time_limit:.0f} s reached at step {iteration}")
                break
            if iteration % cfg.log_every == 0 or iteration == self.total:
                last_loss = float(torch.stack(running).mean())
                running.clear()
                lrs = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
                bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lrs['decoder']:.2e}", refresh=False)
                elapsed = self.seconds_before + time.perf_counter() - t0
                epoch = iteration / self.batches.iterations_per_epoch
                self._log({"event": "train", "iteration": iteration, "epoch": epoch,
                           "loss": last_loss, "lr": lrs, "seconds": elapsed})
                if not sys.stderr.isatty():
                    self._say(f"it {iteration}/{self.total} loss {last_loss:.4f} lr {lrs['decoder']:.2e} "
                              f"{elapsed:.0f} s")
            if self.val_interval and iteration % self.val_interval == 0 and iteration < self.total:
                _cuda_sync(self.device)
                self.validate(iteration)
                self.save(iteration, self.seconds_before + time.perf_counter() - t0)
        bar.close()
        if running:
            last_loss = float(torch.stack(running).mean())
        _cuda_sync(self.device)
        seconds = self.seconds_before + time.perf_counter() - t0
        finished = iteration >= self.total
        result = self.validate(iteration) if finished and (iteration > self.start or self.best_miou is None) else None
        if result is not None:
            final_miou = result["miou"]
        if not finished:
            self._say(f"stopped at step {iteration} of {self.total}; continue with --resume {self.out}")
        self.save(iteration, seconds)
        self._log({"event": "end", "iteration": iteration, "seconds": seconds, "final_miou": final_miou,
                   "best_miou": self.best_miou})
        return TrainResult(self.out, iteration, self.total, self.best_miou, final_miou, seconds, last_loss)


def plot_history(history: str | Path, png: str | Path, title: str | None = None) -> Path:
    """Draw the training loss and validation mIoU of a run's ``history.jsonl`` into a PNG (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(history).read_text(encoding="utf-8").splitlines() if line.strip()]
    train_points = [(r["iteration"], r["loss"]) for r in records if r.get("event") == "train"]
    val_points = [(r["iteration"], 100.0 * r["miou"]) for r in records if r.get("event") == "val"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if train_points:
        ax.plot(*zip(*train_points), color="tab:blue", label="training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy", color="tab:blue")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if val_points:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val_points), "o-", color="tab:red", label="val mIoU")
        ax2.set_ylabel("val mIoU (%)", color="tab:red")
        ax2.set_ylim(0, 100)
        for x, y in val_points[-1:]:
            ax2.annotate(f"{y:.1f} %", (x, y), textcoords="offset points", xytext=(-30, -15), color="tab:red")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    png = Path(png)
    fig.savefig(png)
    plt.close(fig)
    return png


def train(cfg: TrainConfig) -> TrainResult:
    """Build a :class:`Trainer` for ``cfg`` and run it."""
    return Trainer(cfg).run()
