"""Shared test fixtures: DDS on loopback with a private domain, random-weight models with real BN statistics."""

from __future__ import annotations

import os
import random

import pytest

# Every ROS 2 participant started by a test (in this process or a child) stays on loopback, in a domain of its
# own so that concurrent test runs on one machine never see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))


def randomise_batchnorm(model, seed: int = 0):  # noqa: ANN001, ANN201 - torch is imported lazily
    """Give every BatchNorm non-trivial affine parameters and running statistics (eval-mode numerics differ
    from the identity), and spread the logits bias so argmax covers many classes."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
        model.logits.conv.bias.copy_(torch.randn(model.logits.conv.bias.shape, generator=generator) * 0.01)
    return model.eval()


@pytest.fixture(scope="session")
def random_model_factory():
    """``factory(variant, encoder, seed=0)`` -> SwiftNet in eval mode, every weight a function of ``seed``."""
    from trt_segmentation.models import build_model

    def factory(variant: str = "single_scale", encoder: str = "resnet18", seed: int = 0):  # noqa: ANN202
        import torch

        # the conv weights come from PyTorch's default init on the global RNG, which starts differently in every
        # process: seed it here (forked, so the caller's RNG state is left as it was)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(variant, encoder)
        return randomise_batchnorm(model, seed)

    return factory
