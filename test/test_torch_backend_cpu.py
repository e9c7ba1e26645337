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
