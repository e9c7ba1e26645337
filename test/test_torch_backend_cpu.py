"""The torch backend's refusals that need no GPU: precisions it cannot run, a missing checkpoint, no CUDA."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trt_segmentation.runtime import BackendError, create_backend  # noqa: E402


@pytest.mark.parametrize("precision", ["int8", "mixed", "int8-max"])
def test_precisions_the_torch_backend_cannot_run_are_refused_clearly(precision: str) -> None:
    with pytest.raises(BackendError, match=rf"runs fp32 or fp16, not {precision}; int8 and mixed need the tensorrt"):
        create_backend("torch", "model.pt", precision=precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_no_cuda_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match=r"needs a CUDA GPU"):
        create_backend("torch", "model.pt", precision="fp16")


@pytest.mark.parametrize("options,message", [
    ({"input_format": "float_normalised"}, "takes uint8_rgb or uint8_bgr frames, not float_normalised"),
    ({"batch": 0}, "batch must be at least 1, got 0"),
])
def test_options_the_torch_backend_cannot_run_are_refused_before_cuda(options: dict, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        create_backend("torch", "model.pt", **options)


def test_one_model_path_for_the_torch_backend_and_evaluation(random_model_factory) -> None:
    """runtime/torch_model.py is the torch backend's model code (its CUDA-graph executor calls frames_to_labels)
    and evaluation's CheckpointBackend's: on the CPU a batch's rows equal frames run one at a time through
    CheckpointBackend, equal plain PyTorch inference, and BGR frames with ``flip`` equal the RGB frames."""
    import numpy as np

    from trt_segmentation.runtime.checkpoint_backend import CheckpointBackend
    from trt_segmentation.runtime.torch_model import frames_to_labels, load_module, model_name

    model = random_model_factory(seed=6)
    assert load_module(model) is model and model_name(model) == "swiftnet_ss_rn18"
    with pytest.raises(BackendError, match="PyTorch checkpoint not found"):
        load_module("missing.pt")
    rng = np.random.default_rng(6)
    frames = np.stack([rng.integers(0, 256, (64, 128, 3), dtype=np.uint8) for _ in range(3)])
    backend = CheckpointBackend(model)
    single = np.stack([backend.infer(frame).labels for frame in frames])
    assert single.dtype == np.uint8 and len(np.unique(single)) > 1
    with torch.inference_mode():
        direct = np.stack([model(torch.from_numpy(f).permute(2, 0, 1)[None].float()).argmax(1)[0].to(torch.uint8)
                           .numpy() for f in frames])
        batch = frames_to_labels(model, torch.from_numpy(frames), torch.float32).numpy()
        bgr = frames_to_labels(model, torch.from_numpy(np.ascontiguousarray(frames[..., ::-1])), torch.float32,
                               flip=True).numpy()
    np.testing.assert_array_equal(single, direct)
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(bgr, single)
