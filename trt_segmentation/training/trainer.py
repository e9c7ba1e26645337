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
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..models import SwiftNet, architecture_from_name, load_into
from ..models.checkpoint import CheckpointError, infer_widths, load_state_dict_file
from ..models.swiftnet import Architecture
from ..palette import IGNORE_LABEL
from .batches import TrainBatches, open_split, progress_interval
from .config import (
    HISTORY,
    TRAINING_STATE,
    WEIGHTS_BEST,
    WEIGHTS_LAST,
    TrainConfig,
    TrainingError,
    TrainResult,
)
from .schedule import cosine_factor
from .validation import autocast, evaluate
from .weights import initialise_from_scratch, load_initial_weights, parameter_groups, save_weights


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
            self.optimizer, [cosine_factor(cfg, g["lr"], self.total) for g in self.optimizer.param_groups]
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
        with autocast(self.device, self.amp):
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
                   disable=not cfg.progress, mininterval=progress_interval(), dynamic_ncols=True)
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
