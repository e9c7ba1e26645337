"""The folded export (models/fold.py, ExportOptions.fold_batchnorm: the default) is the same network with fewer batch
norms, the plain graph stays an option and the contract records which; ArgMax before the final resize
(ExportOptions.argmax_before_resize) gives labels of the same kind."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from trt_segmentation.data.street_scenes import render_scene, scene_seed
from trt_segmentation.export import ExportError, ExportOptions, contract_of, export_model
from trt_segmentation.models import MODEL_NAMES, load_checkpoint
from trt_segmentation.models.fold import fold_batchnorms
from trt_segmentation.runtime.onnxruntime_backend import open_session

DEMO = Path(__file__).resolve().parents[1] / "trt_segmentation" / "assets" / "swiftnet_ss_rn18_streets.pt"
#: stand-alone BatchNormalization nodes of a 128x256 export: plain, folded. The single-scale model keeps the four
#: BNs that follow a ReLU (SPP input, three skip bottlenecks): they have no exact fold.
BN_NODES = {"single_scale": (11, 4), "pyramid": (5, 0)}


def _ops(proto: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in proto.graph.node)


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_fold_is_exact_and_leaves_no_foldable_batchnorm(name: str, random_model_factory) -> None:  # noqa: ANN001
    arch = MODEL_NAMES[name]
    model = random_model_factory(arch.variant, arch.encoder)
    folded = fold_batchnorms(model)
    image = torch.rand(2, 3, 128, 256, generator=torch.Generator().manual_seed(3)) * 255
    with torch.no_grad():
        reference, candidate = model(image), folded(image)
    assert (reference - candidate).abs().max().item() < 1e-4
    assert torch.equal(reference.argmax(1), candidate.argmax(1))
    plain = export_model(model, ExportOptions(128, 256, output="logits", fold_batchnorm=False))
    lighter = export_model(model, ExportOptions(128, 256, output="logits"))  # the default
    assert (_ops(plain)["BatchNormalization"], _ops(lighter)["BatchNormalization"]) == BN_NODES[arch.variant]
    assert contract_of(lighter).extra == {"fold_batchnorm": "true"}
    assert contract_of(plain).extra == {"fold_batchnorm": "false"}
    # the model itself is left as it was (the fold works on a copy)
    with torch.no_grad():
        assert torch.equal(model(image), reference)


def test_fold_on_the_demo_checkpoint_keeps_logits_and_labels() -> None:
    """The trained demo model, exported plain and folded, run by ONNX Runtime on generated street scenes."""
    model = load_checkpoint(DEMO)
    sessions = [open_session(export_model(model, ExportOptions(256, 512, output="logits", fold_batchnorm=fold))
                             .SerializeToString())[0] for fold in (False, True)]
    for seed in range(3):
        frame = render_scene(scene_seed(0, "val", seed), 256, 512)[0][None]
        plain, folded = (session.run(None, {"image": frame})[0] for session in sessions)
        assert np.abs(plain - folded).max() < 1e-4
        assert np.array_equal(plain.argmax(1), folded.argmax(1))


def test_the_command_folds_by_default_and_exports_plain_on_request(tmp_path: Path) -> None:
    """trt_seg_export_onnx: folded without a flag (and with the old --fold-bn), plain with --no-fold-bn."""
    from trt_segmentation.commands.export_onnx import main

    for flags, expected in (([], "true"), (["--fold-bn"], "true"), (["--no-fold-bn"], "false")):
        out = tmp_path / f"{expected}{len(flags)}.onnx"
        assert main(["--random-weights", "--model", "swiftnet_pyr_rn18", "--size", "128x256", "--out", str(out),
                     *flags]) == 0
        proto = onnx.load(str(out))
        assert contract_of(proto).extra["fold_batchnorm"] == expected
        assert _ops(proto)["BatchNormalization"] == BN_NODES["pyramid"][expected == "true"]


def test_argmax_before_resize_gives_labels_of_the_same_kind(random_model_factory) -> None:  # noqa: ANN001
    model = random_model_factory()
    frame = np.random.default_rng(0).integers(0, 256, (1, 128, 256, 3), dtype=np.uint8)
    outputs = {}
    for early in (False, True):
        proto = export_model(model, ExportOptions(128, 256, argmax_before_resize=early))
        session, contract = open_session(proto.SerializeToString())
        outputs[early] = session.run(None, {"image": frame})[0]
    assert outputs[True].dtype == outputs[False].dtype == np.uint8
    assert outputs[True].shape == outputs[False].shape == (1, 128, 256)
    # nearest resize of the 1/4-resolution labels: each 4x4 block holds one label, the one at its top-left
    quarter = outputs[True][:, ::4, ::4]
    assert np.array_equal(np.repeat(np.repeat(quarter, 4, axis=1), 4, axis=2), outputs[True])
    assert (outputs[True] == outputs[False]).mean() > 0.5
    with pytest.raises(ExportError, match="labels"):
        ExportOptions(128, 256, output="logits", argmax_before_resize=True).validate()
