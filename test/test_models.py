"""SwiftNet models: original key layout and sizes, exact pooling, complexity, checkpoint errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from trt_segmentation.models import (
    Architecture,
    CheckpointError,
    SwiftNet,
    UnsupportedInputSize,
    build_model,
    check_input_size,
    infer_architecture,
    load_checkpoint,
    load_into,
)
from trt_segmentation.models.complexity import count_gmacs, count_parameters
from trt_segmentation.models.pooling import exact_adaptive_avg_pool2d

# key<TAB>shape listing produced by running the original orsic/swiftnet model code (HEAD and v0 releases)
KEYS_FILE = Path(__file__).resolve().parent / "data" / "swiftnet_state_dict_keys.txt"
SECTIONS = {
    "single_scale_rn18": Architecture("single_scale", "resnet18"),
    "single_scale_rn34": Architecture("single_scale", "resnet34"),
    "pyramid_rn18": Architecture("pyramid", "resnet18"),
    "pyramid_rn34": Architecture("pyramid", "resnet34"),
}
# (params, GMAC at 1024x2048) of the original SwiftNet code, counted with torch.utils.flop_counter (conv/matmul
# FLOPs / 2; BN, ReLU and resizes not counted); the paper's RN18 figures are 11.8 M parameters and 104 GFLOPs
REFERENCE = {
    "single_scale_rn18": (11_797_071, 103.6),
    "single_scale_rn34": (21_905_231, 180.9),
    "pyramid_rn18": (12_056_275, 128.2),
    "pyramid_rn34": (22_179_283, 229.7),
}


def reference_keys() -> dict[str, dict[str, tuple[int, ...]]]:
    """Parse the key<TAB>shape listing of the original models, section by section."""
    sections: dict[str, dict[str, tuple[int, ...]]] = {}
    current = None
    for line in KEYS_FILE.read_text().splitlines():
        header = re.match(r"# model: (\S+)", line)
        if header:
            current = sections.setdefault(header.group(1), {})
        elif line and not line.startswith("#") and current is not None:
            key, shape = line.split("\t")
            current[key] = tuple(int(v) for v in re.findall(r"\d+", shape))
    return sections


@pytest.mark.parametrize("section", list(SECTIONS))
def test_original_state_dict_loads_strictly(section: str) -> None:
    keys = reference_keys()[section]
    model = SwiftNet(SECTIONS[section])
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == keys
    state = {k: torch.randn(shape) if shape else torch.tensor(7) for k, shape in keys.items()}
    state = {k: (v.abs() + 0.5 if "running_var" in k else v) for k, v in state.items()}
    load_into(model, state)
    assert torch.equal(model.state_dict()["logits.conv.weight"], state["logits.conv.weight"])
    assert infer_architecture(state) == SECTIONS[section]


@pytest.mark.parametrize("section", list(SECTIONS))
def test_parameters_and_gmacs_match_the_original(section: str) -> None:
    params, gmac = REFERENCE[section]
    model = SwiftNet(SECTIONS[section]).eval()
    assert count_parameters(model) == params
    assert count_gmacs(model, 1024, 2048) == pytest.approx(gmac, rel=0.01)


@pytest.mark.parametrize("layer4", [(32, 64), (23, 40), (12, 39), (34, 60), (17, 30), (3, 2)])
def test_exact_pooling_equals_adaptive_avg_pool(layer4: tuple[int, int]) -> None:
    from trt_segmentation.models.layers import SpatialPyramidPooling

    x = torch.randn(2, 8, *layer4, dtype=torch.float64)
    for g in (8, 4, 2, 1):
        grid = SpatialPyramidPooling.grid_for(g, *layer4)
        torch.testing.assert_close(exact_adaptive_avg_pool2d(x, grid), F.adaptive_avg_pool2d(x, grid), rtol=0, atol=1e-12)


def test_spp_grid_rounds_half_to_even_like_the_original() -> None:
    from trt_segmentation.models.layers import SpatialPyramidPooling

    assert SpatialPyramidPooling.grid_for(8, 32, 64) == (8, 16)
    assert SpatialPyramidPooling.grid_for(8, 23, 40) == (8, 14)
    assert SpatialPyramidPooling.grid_for(2, 4, 5) == (2, 2)  # round(2.5) == 2 in Python


@pytest.mark.parametrize("size", [(375, 1242), (720, 1280), (1080, 1920)])
@pytest.mark.parametrize("variant", ["single_scale", "pyramid"])
def test_output_matches_any_input_size(variant: str, size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(variant, "resnet18")
    image = torch.rand(1, 3, *size) * 255
    before = image.clone()
    with torch.no_grad():
        out = model(image)
    assert out.shape == (1, 19, *size)
    assert torch.equal(image, before), "normalisation must not modify the caller's tensor"


def test_pyramid_refuses_sizes_whose_levels_do_not_align() -> None:
    with pytest.raises(UnsupportedInputSize, match="1033x2048"):
        check_input_size(Architecture("pyramid", "resnet18"), 1033, 2048)
    check_input_size(Architecture("single_scale", "resnet18"), 1033, 2048)
    with pytest.raises(UnsupportedInputSize, match="too small"):
        check_input_size(Architecture("single_scale", "resnet18"), 32, 2048)


def test_wrong_checkpoint_names_the_keys(tmp_path: Path) -> None:
    state = SwiftNet(Architecture("single_scale", "resnet18")).state_dict()
    del state["logits.conv.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "missing keys (1): logits.conv.bias" in message and "unexpected keys (1): extra.weight" in message


def test_mismatched_encoder_reports_shapes_and_keys() -> None:
    state = SwiftNet(Architecture("single_scale", "resnet34")).state_dict()
    with pytest.raises(CheckpointError, match=r"unexpected keys \(\d+\): backbone.layer"):
        load_into(SwiftNet(Architecture("single_scale", "resnet18")), state)
    state19 = SwiftNet(Architecture("single_scale", "resnet18")).state_dict()
    with pytest.raises(CheckpointError, match=r"shape mismatches .*logits.conv.weight"):
        load_into(SwiftNet(Architecture("single_scale", "resnet18", num_classes=7)), state19)


def test_v0_checkpoint_is_recognised_and_refused(tmp_path: Path) -> None:
    keys = reference_keys()["v0_initial_commit_single_scale_rn18"]
    path = tmp_path / "v0.pt"
    torch.save({"state_dict": {k: torch.zeros(s) for k, s in keys.items()}}, path)
    with pytest.raises(CheckpointError, match="first release"):
        load_checkpoint(path)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_fp16_checkpoint_roundtrip(tmp_path: Path, random_model_factory) -> None:  # noqa: ANN001
    model = random_model_factory("pyramid", "resnet18")
    path = tmp_path / "half.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, path)
    loaded = load_checkpoint(path)
    assert loaded.arch == model.arch
    assert next(loaded.parameters()).dtype == torch.float32
