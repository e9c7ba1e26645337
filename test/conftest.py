"""Shared test fixtures: DDS on loopback with a private domain per test module, no process left behind by a test,
random-weight models with real BN statistics."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import random
import tempfile
from collections.abc import Iterator

import pytest
from process_guard import RUN_MARKER, end_processes, processes_left_behind, run_processes

# Every ROS 2 participant started by a test (in this process or a child) stays on loopback, in a domain of its
# own so that concurrent test runs on one machine never see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def _claim_domain_id() -> tuple[int, object]:
    """A ROS domain id no other test run or test module on this machine holds, and its lock: an exclusive lock on a
    per-id file, held until the handle is closed (the OS drops it when the process ends, however it ends). Fast DDS
    maps ids 0-232 to ports; 1-100 leaves the default domain 0 to anything else running here."""
    candidates = list(range(1, 101))
    random.SystemRandom().shuffle(candidates)
    for domain in candidates:
        handle = open(os.path.join(tempfile.gettempdir(), f"trt_segmentation-ros-domain-{domain}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain, handle
    raise RuntimeError("every ROS domain id 1-100 is held by another test run on this machine")


#: a domain the user set is kept for every module; otherwise each test module claims one of its own
_DOMAIN_CHOSEN_BY_USER = "ROS_DOMAIN_ID" in os.environ
if not _DOMAIN_CHOSEN_BY_USER:
    _SESSION_DOMAIN, _SESSION_LOCK = _claim_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(_SESSION_DOMAIN)
# every process a test starts inherits this marker (and passes it on to its own children): process_guard finds
# them by it, however they were started
os.environ[RUN_MARKER] = f"{os.getpid()}-{random.SystemRandom().getrandbits(64):016x}"


@pytest.fixture(scope="module", autouse=True)
def _ros_domain_of_this_module() -> Iterator[None]:
    """Each test module runs in a ROS domain of its own: a process a failed test of an earlier module left running
    can neither feed this module's nodes frames nor answer its listeners."""
    if _DOMAIN_CHOSEN_BY_USER:
        yield
        return
    domain, lock = _claim_domain_id()
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    try:
        yield
    finally:
        os.environ["ROS_DOMAIN_ID"] = str(_SESSION_DOMAIN)
        lock.close()  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """A process a test started (a publisher, a node, a tool) and did not end, because the test failed before it
    could, is ended when the test ends (SIGTERM to its process group, SIGKILL 5 s later). Processes of module
    fixtures that were already running, and children they start meanwhile (a restarted camera I/O process), stay."""
    before = run_processes()
    yield
    end_processes(processes_left_behind(before))


def pytest_sessionfinish(session, exitstatus):  # noqa: ANN001, ANN201 - a pytest hook
    """No process the tests started may outlive the test session: any still running is named, ended, and fails
    the session."""
    left = run_processes()
    if left:
        end_processes(left)
        names = "\n".join(f"  pid {pid}: {command}" for pid, command in sorted(left.items()))
        session.config.get_terminal_writer().line(
            f"{len(left)} process(es) the tests started were still running at the session's end (now ended):\n"
            f"{names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(config, items):  # noqa: ANN001, ANN201 - a pytest hook
    """Where torch is not installed (scripts/test_jazzy.sh), a test that asks for ``random_model_factory`` itself
    builds a torch SwiftNet: skip it, saying so. The node tests get their model through node_harness, which falls
    back to a torch-free stand-in there."""
    if importlib.util.find_spec("torch") is not None:
        return
    skip = pytest.mark.skip(reason="builds a torch SwiftNet; torch is not installed in this leg")
    for item in items:
        if "random_model_factory" in getattr(getattr(item, "_fixtureinfo", None), "argnames", ()):
            item.add_marker(skip)


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
    def factory(variant: str = "single_scale", encoder: str = "resnet18", seed: int = 0):  # noqa: ANN202
        import torch

        from trt_segmentation.models import build_model

        # the conv weights come from PyTorch's default init on the global RNG, which starts differently in every
        # process: seed it here (forked, so the caller's RNG state is left as it was)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(variant, encoder)
        return randomise_batchnorm(model, seed)

    return factory


@pytest.fixture(scope="module")
def engine_dir(request, tmp_path_factory, random_model_factory):  # noqa: ANN001, ANN201
    """A folder of the requesting test module holding a random-weight ``swiftnet_ss_rn18_256x512_fp32.onnx``: the
    ``engine_dir`` the node tests start the node with (node_fixtures.module_models)."""
    from node_fixtures import module_models

    return module_models(request, tmp_path_factory, random_model_factory)
