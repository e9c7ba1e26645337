"""Training smoke tests on tiny generated street scenes (CPU): the augmentation's geometry, a few steps that lower
the loss, checkpoints in the original key layout, and a resumed run that ends where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trt_segmentation.training import RandomFlip, RandomSquareCropAndScale, TrainConfig, train
from trt_segmentation.training.trainer import HISTORY, TRAINING_STATE, WEIGHTS_LAST, plot_history

MEAN = (73.15, 82.90, 72.3)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trt_segmentation.data.street_scenes import write_street_split

    root = tmp_path_factory.mktemp("streets")
    write_street_split(root, "train", 8, height=64, width=128, progress=False)
    write_street_split(root, "val", 2, height=64, width=128, progress=False)
    return root


def _config(root: Path, out: Path, **overrides: object) -> TrainConfig:
    settings: dict = dict(
        data_root=str(root), out=str(out), crop=64, batch_size=4, epochs=None, iterations=8, lr=2e-3,
        encoder_lr=2e-3, device="cpu", workers=0, cache="ram", val_every=0, log_every=1, progress=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def test_crop_at_scale_one_is_an_exact_window() -> None:
    images = torch.randint(0, 256, (3, 3, 64, 128), dtype=torch.uint8)
    labels = torch.randint(0, 19, (3, 64, 128), dtype=torch.uint8)
    crop = RandomSquareCropAndScale(64, MEAN, min_scale=1.0, max_scale=1.0)
    out, lab = crop(images, labels, torch.Generator().manual_seed(3))
    boxes = crop.sample_boxes(3, 64, 128, torch.Generator().manual_seed(3))
    for i, (x0, y0, side) in enumerate(boxes.long().tolist()):
        assert side == 64 and y0 == 0
        assert torch.equal(out[i], images[i, :, :, x0 : x0 + 64].float())
        assert torch.equal(lab[i], labels[i, :, x0 : x0 + 64].long())


def test_crop_larger_than_image_pads_with_mean_and_ignore() -> None:
    images = torch.full((2, 3, 64, 128), 200, dtype=torch.uint8)
    labels = torch.full((2, 64, 128), 7, dtype=torch.uint8)
    out, lab = RandomSquareCropAndScale(64, MEAN, min_scale=2.0, max_scale=2.0)(images, labels)
    assert out.shape == (2, 3, 64, 64) and lab.shape == (2, 64, 64) and lab.dtype == torch.int64
    # a 128-px square of a 64x128 image: half of its rows are padding
    assert set(lab.unique().tolist()) == {7, 255}
    assert (lab == 255).float().mean().item() == pytest.approx(0.5, abs=0.05)
    # padding is the mean colour (pixels at the image's edge mix both through the bicubic kernel)
    padded = (lab == 255).unsqueeze(1).expand_as(out)
    is_mean = (out - torch.tensor(MEAN).view(1, 3, 1, 1)).abs() < 0.01
    assert is_mean[padded].float().mean().item() > 0.9
    assert out[~padded].median().item() == pytest.approx(200.0)


def test_flip_mirrors_image_and_labels_together() -> None:
    images = torch.arange(2 * 3 * 4 * 8, dtype=torch.float32).view(2, 3, 4, 8)
    labels = torch.arange(2 * 4 * 8).view(2, 4, 8) % 19
    out, lab = RandomFlip(p=1.0)(images, labels)
    assert torch.equal(out, images.flip(-1)) and torch.equal(lab, labels.flip(-1))


def test_training_lowers_the_loss_and_writes_original_layout(tiny_root: Path, tmp_path: Path) -> None:
    from trt_segmentation.models import load_checkpoint

    result = train(_config(tiny_root, tmp_path / "run", iterations=10, val_every=5))
    records = [json.loads(line) for line in (tmp_path / "run" / HISTORY).read_text().splitlines()]
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert len(losses) == 10 and all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:2]), losses
    assert [r["iteration"] for r in records if r["event"] == "val"] == [5, 10]
    val = {r["iteration"]: r["miou"] for r in records if r["event"] == "val"}
    assert result.iterations == 10 and result.final_miou == val[10] and result.best_miou == max(val.values())
    # the validation score is the evaluation module's score of the weights it wrote (computed independently)
    from trt_segmentation.apps.evaluation import evaluate_backend
    from trt_segmentation.data.cityscapes import CityscapesSplit
    from trt_segmentation.runtime.checkpoint_backend import CheckpointBackend

    scored = evaluate_backend(CheckpointBackend(tmp_path / "run" / WEIGHTS_LAST), CityscapesSplit(tiny_root, "val"),
                              progress=False)
    assert scored.miou == pytest.approx(result.final_miou, abs=1e-6)
    state = torch.load(tmp_path / "run" / WEIGHTS_LAST, map_location="cpu", weights_only=True)
    assert "backbone.spp.spp.spp_bn.conv.weight" in state and "backbone.img_mean" in state
    assert not any(k.startswith(("module.", "model.")) for k in state)
    assert load_checkpoint(tmp_path / "run" / "best.pt").arch.name == "swiftnet_ss_rn18"
    png = plot_history(tmp_path / "run" / HISTORY, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resumed_run_matches_an_uninterrupted_one(tiny_root: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float summation order in both runs
    try:
        full = train(_config(tiny_root, tmp_path / "full"))
        half = train(_config(tiny_root, tmp_path / "split", stop_after=4))
        assert half.iterations == 4 and half.total == 8 and (tmp_path / "split" / TRAINING_STATE).is_file()
        resumed = train(_config(tiny_root, tmp_path / "split", resume=str(tmp_path / "split")))
    finally:
        torch.set_num_threads(threads)
    assert resumed.iterations == 8
    a = torch.load(tmp_path / "full" / WEIGHTS_LAST, weights_only=True)
    b = torch.load(tmp_path / "split" / WEIGHTS_LAST, weights_only=True)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5), key
    assert resumed.final_loss == pytest.approx(full.final_loss, rel=1e-4)
