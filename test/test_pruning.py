"""Structured pruning (models/pruning.py, trt_seg_prune): exact where it removes dead channels, a plain narrower
SwiftNet whose checkpoint records its widths, and the pruned network goes everywhere a full one goes (export, every
precision variant, a TensorRT-RTX build, ONNX Runtime, fine-tuning with --init)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trt_segmentation.artifacts import Precision
from trt_segmentation.models import MODEL_NAMES, infer_architecture, load_checkpoint
from trt_segmentation.models.checkpoint import load_state_dict_file
from trt_segmentation.models.pruning import RECIPES, group_sizes, prune_model, tensor_groups
from trt_segmentation.models.resnet import EncoderWidths
from trt_segmentation.models.swiftnet import DecoderWidths

ROOT = Path(__file__).resolve().parents[1]
H, W = 128, 256


def _pruned_groups(recipe) -> set[tuple[str, int]]:  # noqa: ANN001
    """(kind, index) of every channel group the recipe prunes (stage / inner by stage number; decoder groups)."""
    kinds = {("stage", s) for s in recipe.stages} | {("inner", s) for s in recipe.stages}
    return kinds | ({("feature", i) for i in range(4)} | {("spp", j) for j in range(4)} if recipe.decoder else set())


def _kill_half(model, recipe) -> None:  # noqa: ANN001
    """Make every second channel of each group the recipe prunes dead: its producing filters and the scale and
    shift of every BN over it are zero, so it carries 0 everywhere and removing it changes nothing. An axis over a
    concat (the SPP's fuse input) kills every second channel of each of its segments."""
    chosen, sizes = _pruned_groups(recipe), group_sizes(model.arch)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            dim = tensor_groups(key, model.arch.variant)[0]
            if not dim or tensor.dim() == 0 or key.endswith(("running_mean", "running_var")):
                continue
            offset = 0
            for group in dim:
                if (group[0], group[1]) in chosen:
                    tensor[offset + 1:offset + sizes[group]:2] = 0
                offset += sizes[group]


@pytest.mark.parametrize("name", list(MODEL_NAMES))
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_pruning_dead_channels_is_exact(name: str, recipe: str, random_model_factory) -> None:  # noqa: ANN001
    arch = MODEL_NAMES[name]
    settings = RECIPES[recipe]
    model = random_model_factory(arch.variant, arch.encoder)
    _kill_half(model, settings)
    pruned = prune_model(model, settings.stages, settings.ratio, settings.decoder)
    full = EncoderWidths.full(arch.encoder)
    assert pruned.arch.widths is not None
    widths, decoder = pruned.arch.widths.encoder, pruned.arch.widths.decoder
    assert widths.fits(arch.encoder) and decoder.fits(arch.variant)
    for s in range(1, 5):
        factor = 2 if s in settings.stages else 1
        assert widths.stages[s - 1] * factor == full.stages[s - 1]
        assert all(w * factor == f for w, f in zip(widths.inner[s - 1], full.inner[s - 1]))
    if settings.decoder:  # 128 -> 64; the SPP's 42-channel levels keep their 21 live + 3 dead (multiples of 8)
        expected = (DecoderWidths((64,) * 4, (64, 24, 24, 24)) if arch.variant == "single_scale"
                    else DecoderWidths((64,)))
        assert decoder == expected
    else:
        assert decoder == DecoderWidths.full(arch.variant)
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(2)) * 255
    with torch.no_grad():
        reference, candidate = model(image), pruned(image)
    assert (reference - candidate).abs().max().item() < 1e-4
    assert pruned.arch.name == model.arch.name  # same model name: artifact names, contracts, the node


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_decoder_pruned_model_folds_splits_and_round_trips(name: str, random_model_factory,  # noqa: ANN001
                                                           tmp_path: Path) -> None:
    """An encoder+decoder-pruned model: its checkpoint gives back its widths; the BN fold (models/fold.py) and the
    per-part split (models/parts.py) compute what it computes."""
    from trt_segmentation.models.fold import fold_batchnorms
    from trt_segmentation.models.parts import run_parts, split
    from trt_segmentation.training.trainer import save_weights

    arch = MODEL_NAMES[name]
    recipe = RECIPES["all_decoder"]
    pruned = prune_model(random_model_factory(arch.variant, arch.encoder), recipe.stages, recipe.ratio, True)
    save_weights(pruned, tmp_path / "p.pt")
    assert infer_architecture(load_state_dict_file(tmp_path / "p.pt")) == pruned.arch
    image = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3)) * 255
    frame = image.permute(0, 2, 3, 1).round().to(torch.uint8)
    with torch.no_grad():
        reference = pruned(image)
        assert (fold_batchnorms(pruned)(image) - reference).abs().max().item() < 1e-4
        labels = run_parts(split(pruned, H, W), frame)["labels"]
        expected = pruned(frame.permute(0, 3, 1, 2).float()).argmax(1).to(torch.uint8)
    assert torch.equal(labels, expected)


def test_pruning_keeps_the_channels_of_largest_l1_norm(random_model_factory) -> None:  # noqa: ANN001
    model = random_model_factory()
    pruned = prune_model(model, [3], 0.5)
    old, new = model.backbone.layer3, pruned.backbone.layer3

    def top_half(norms: torch.Tensor) -> torch.Tensor:
        return torch.sort(torch.topk(norms, len(norms) // 2).indices).values

    # inner channels: the filters of conv1 with the largest L1 norms (BN statistics show which were kept)
    inner = top_half(old[1].conv1.weight.detach().abs().sum(dim=(1, 2, 3)))
    assert torch.equal(new[1].bn1.running_mean, old[1].bn1.running_mean[inner])
    # residual channels: the largest L1 norms summed over every filter that writes the stream
    scores = old[0].downsample[0].weight.detach().abs().sum(dim=(1, 2, 3))
    for block in old:
        scores = scores + block.conv2.weight.detach().abs().sum(dim=(1, 2, 3))
    stream = top_half(scores)
    assert torch.equal(new[0].bn2.running_mean, old[0].bn2.running_mean[stream])
    assert torch.equal(pruned.backbone.upsample[0].bottleneck.norm.running_var,
                       model.backbone.upsample[0].bottleneck.norm.running_var[stream])


def test_decoder_streams_share_one_channel_set_of_largest_summed_l1_norm(random_model_factory) -> None:  # noqa: ANN001
    """A feature stream's summands (resized coarser features + the skip's bottleneck) keep the same channels: those
    of the largest L1 norms summed over both producers; every reader (blend BN and conv, the SPP's fuse input
    segment by segment, the logits) is sliced alike."""
    model = random_model_factory()
    pruned = prune_model(model, [4], 0.5, decoder=True)
    old, new = model.backbone, pruned.backbone

    def top(norms: torch.Tensor, count: int) -> torch.Tensor:
        return torch.sort(torch.topk(norms, count).indices).values

    def l1(conv: torch.nn.Conv2d) -> torch.Tensor:
        return conv.weight.detach().abs().sum(dim=(1, 2, 3))

    stream0 = top(l1(old.spp.spp.spp_fuse.conv) + l1(old.upsample[0].bottleneck.conv), 64)
    stream1 = top(l1(old.upsample[0].blend_conv.conv) + l1(old.upsample[1].bottleneck.conv), 64)
    last = top(l1(old.upsample[2].blend_conv.conv), 64)
    assert torch.equal(new.upsample[0].blend_conv.norm.running_mean, old.upsample[0].blend_conv.norm.running_mean[stream0])
    assert torch.equal(new.upsample[0].blend_conv.conv.weight, old.upsample[0].blend_conv.conv.weight[stream1][:, stream0])
    assert torch.equal(pruned.logits.conv.weight, model.logits.conv.weight[:, last])
    # the SPP's fuse reads a concat: its bottleneck's kept channels, then each level's at the level's offset
    bottleneck = top(l1(old.spp.spp.spp_bn.conv), 64)
    levels = [top(l1(getattr(old.spp.spp, f"spp{i}").conv), 24) + 128 + 42 * i for i in range(3)]
    concat = torch.cat([bottleneck, *levels])
    assert torch.equal(new.spp.spp.spp_fuse.norm.running_var, old.spp.spp.spp_fuse.norm.running_var[concat])
    assert torch.equal(new.spp.spp.spp_fuse.conv.weight, old.spp.spp.spp_fuse.conv.weight[stream0][:, concat])


def test_pruning_refuses_bad_settings(random_model_factory) -> None:  # noqa: ANN001
    model = random_model_factory()
    with pytest.raises(ValueError, match="ratio"):
        prune_model(model, [1], 1.0)
    with pytest.raises(ValueError, match="stages"):
        prune_model(model, [5], 0.5)
    with pytest.raises(ValueError, match="stages"):
        prune_model(model, [], 0.5)


def test_prune_tool_recipe_names_are_the_models_recipes() -> None:
    """trt_seg_prune lists the recipe names without importing torch; they must be models/pruning.py's."""
    from trt_segmentation.commands.prune import RECIPES as TOOL_RECIPES

    assert tuple(RECIPES) == TOOL_RECIPES
    assert RECIPES["blocks12"].stages == (1, 2) and not RECIPES["blocks12"].decoder  # seed 003's meanings kept
    assert RECIPES["all"].stages == (1, 2, 3, 4) and not RECIPES["all"].decoder


#: the variants each pruned model is made in (the all_decoder recipe: encoder and decoder pruned); the pyramid's
#: int8/mixed Q/DQ graphs are refused by the INT8 rule check for the full pyramid model too (its level-shared convs:
#: not a pruning matter), so the pyramid models get fp16 only here; of the ResNet-34s the pyramid (same code paths
#: as the RN18s; the single-scale RN34 is pruned, folded and split in the tests above, without the tool's 30 s)
VARIANTS = {"swiftnet_ss_rn18": ("fp16", "int8", "mixed", "int8-cpu"), "swiftnet_pyr_rn18": ("fp16",),
            "swiftnet_pyr_rn34": ("fp16",)}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prune_tool_checkpoint_export_variants_and_tensorrt_rtx(name: str, tmp_path: Path) -> None:
    """trt_seg_prune --recipe all_decoder -> checkpoint (fp16) -> load (widths from shapes) -> export -> precision
    variants -> ONNX Runtime labels, the torch backends' model code (runtime/torch_model.py) on the same frame;
    fp32 and fp16 build with TensorRT-RTX."""
    from trt_segmentation.data.street_scenes import write_street_split
    from trt_segmentation.engine.tensorrt_parse_check import check_onnx
    from trt_segmentation.export import ExportOptions, contract_of, export_onnx
    from trt_segmentation.precision import make_variant
    from trt_segmentation.precision.calibration_data import load_calibration_set
    from trt_segmentation.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from trt_segmentation.runtime.torch_model import frames_to_labels, load_module

    out = tmp_path / "pruned_all_decoder.pt"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "prune.py"), "--random-weights", "--model",
                          name, "--recipe", "all_decoder", "--out", str(out), "--fp16",
                          "--size", f"{H}x{W}"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "residual widths (32, 64, 128, 256)" in run.stdout and "fewer)" in run.stdout
    assert "decoder feature widths (64" in run.stdout
    state = load_state_dict_file(out)
    assert state["backbone.layer1.0.conv1.weight"].dtype == torch.float16
    arch = infer_architecture(state)
    assert arch.name == name and arch.widths is not None and arch.widths.encoder.stages == (32, 64, 128, 256)
    assert set(arch.widths.decoder.features) == {64}
    model = load_checkpoint(out)
    fp32 = tmp_path / f"{name}_{H}x{W}_fp32.onnx"
    export_onnx(model, fp32, ExportOptions(H, W))
    write_street_split(tmp_path / "street", "train", 8, seed=0, height=H, width=W, progress=False)
    calibration = load_calibration_set(tmp_path / "street" / "leftImg8bit" / "train", contract_of(onnx.load(str(fp32))),
                                       count=8, batch_size=8)
    frame = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    labels = {}
    for variant in ("fp32", *VARIANTS[name]):
        path = fp32 if variant == "fp32" else tmp_path / f"pruned_{variant}.onnx"
        if variant != "fp32":
            make_variant(fp32, Precision(variant), path, calibration)
        with OnnxRuntimeBackend(path, threads=1) as backend:
            labels[variant] = backend.infer(frame).labels
        assert labels[variant].shape == (H, W)
    assert (labels["fp16"] == labels["fp32"]).mean() > 0.95
    with torch.no_grad():
        torch_labels = frames_to_labels(load_module(out), torch.from_numpy(frame)[None], torch.float32)[0].numpy()
    assert (torch_labels == labels["fp32"]).mean() > 0.999
    for variant in ("fp32", "fp16"):
        path = fp32 if variant == "fp32" else tmp_path / f"pruned_{variant}.onnx"
        report = check_onnx(path)
        assert report.ok, report.summary()


@pytest.mark.parametrize("recipe,stages,features", [("blocks12", (32, 64, 256, 512), (128,) * 4),
                                                    ("all_decoder", (32, 64, 128, 256), (64,) * 4)])
def test_train_init_on_pruned_weights(recipe: str, stages: tuple, features: tuple, tmp_path: Path) -> None:
    """trt_seg_train --init <pruned.pt> trains the pruned network at its own widths and saves it so."""
    from trt_segmentation.data.street_scenes import write_street_split

    pruned = tmp_path / f"ss_{recipe}.pt"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "prune.py"), "--random-weights", "--recipe", recipe,
                          "--out", str(pruned), "--size", "64x128"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    write_street_split(tmp_path / "street", "train", 4, seed=0, height=64, width=128, progress=False)
    write_street_split(tmp_path / "street", "val", 2, seed=1, height=64, width=128, progress=False)
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "--data", str(tmp_path / "street"),
                          "--init", str(pruned), "--crop", "64", "--batch-size", "2", "--iterations", "2",
                          "--device", "cpu", "--workers", "0", "--out", str(tmp_path / "run"), "--no-progress"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    trained = load_checkpoint(tmp_path / "run" / "last.pt")
    assert trained.arch.encoder_widths().stages == stages and trained.arch.decoder_widths().features == features


def test_per_part_profile_of_a_pruned_checkpoint(random_model_factory, tmp_path: Path) -> None:  # noqa: ANN001
    """trt_seg_benchmark --parts --checkpoints times a checkpoint at its own (pruned) widths."""
    from trt_segmentation.training.trainer import save_weights

    recipe = RECIPES["all_decoder"]
    save_weights(prune_model(random_model_factory(), recipe.stages, recipe.ratio, True), tmp_path / "p.pt")
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "--parts", "onnxruntime",
                          "--checkpoints", str(tmp_path / "p.pt"), "--size", "64x128", "--repeats", "1",
                          "--warmup", "0", "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| p fp32 resize_argmax |" in run.stdout and "| p fp32 whole frame |" in run.stdout


def test_shipped_pruned_demo_checkpoint_loads_at_its_widths_and_segments() -> None:
    """assets/swiftnet_ss_rn18_streets_all_decoder.pt (the demo checkpoint pruned with all_decoder and fine-tuned on
    the device GPU, docs/speed_levers.md): its widths are read from the weights, it runs, and it agrees with the full
    demo checkpoint on most pixels of a generated street scene."""
    from trt_segmentation.data.street_scenes import render_scene

    assets = Path(__file__).resolve().parents[1] / "trt_segmentation" / "assets"
    pruned = load_checkpoint(assets / "swiftnet_ss_rn18_streets_all_decoder.pt").eval()
    full = load_checkpoint(assets / "swiftnet_ss_rn18_streets.pt").eval()
    arch = pruned.arch
    assert arch.encoder_widths().stages == (32, 64, 128, 256)
    assert arch.decoder_widths() == DecoderWidths((64, 64, 64, 64), (64, 24, 24, 24))
    rgb = render_scene(7, 256, 512)[0]
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        a, b = pruned(image).argmax(1), full(image).argmax(1)
    assert (a == b).float().mean().item() > 0.9
