"""The CUDA slot machinery (pycuda streams, page-locked buffers, events) driving PyTorch on a real GPU.

Skipped without torch+CUDA+pycuda (CI, the CPU dev machine); run on the device GPU (docs/node.md has the
recorded result). Proves: bytes survive host->device->executor->host exactly, results come back in submission
order with several frames in flight (also when a later frame finishes first), event timings are real, and the
torch backend's labels equal plain PyTorch inference of the same model on the same GPU. Batches (issue #12): a
slot carries N frames written row by row (a None row left as it is), and a batch-N torch backend's rows equal the
batch-1 backend's frames.
Set GPU_SLOTS_REPORT=path.json to save the measured figures.
"""

from __future__ import annotations

import copy
import json
import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():  # pragma: no cover - depends on the machine
    pytest.skip("no CUDA GPU", allow_module_level=True)
pytest.importorskip("pycuda.driver")

from trt_segmentation.runtime.cuda_slots import SlotPipeline  # noqa: E402
from trt_segmentation.runtime.torch_backend import TorchBackend, _DeviceArray  # noqa: E402

REPORT: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    REPORT["device"] = torch.cuda.get_device_name(0)
    REPORT["torch"] = torch.__version__
    path = os.environ.get("GPU_SLOTS_REPORT")
    if path:
        with open(path, "w") as handle:
            json.dump(REPORT, handle, indent=2)
    print("\nGPU slot report:", json.dumps(REPORT, indent=2))


def reference_labels(frame: np.ndarray) -> np.ndarray:
    """What the test executor computes, in numpy: a per-pixel function of all three channels."""
    f = frame.astype(np.int32)
    return ((f[..., 0] * 3 + f[..., 1] * 5 + f[..., 2] * 7) % 19).astype(np.uint8)


class MixingExecutor:
    """Per-pixel mix of the channels; ``slow_slots`` burn extra GPU time first so later frames overtake them."""

    def __init__(self, height: int, width: int, slow_slots: tuple[int, ...] = (), batch: int = 0) -> None:
        lead = (batch,) if batch else ()  # batch > 0: a slot holds that many frames
        self.shape_in, self.shape_out = lead + (height, width, 3), lead + (height, width)
        self.slow_slots = slow_slots
        self.streams: dict[int, object] = {}
        self.burn = torch.randn(2048, 2048, device="cuda")

    def __call__(self, slot: int, in_ptr: int, out_ptr: int, stream_handle: int) -> None:
        stream = self.streams.setdefault(stream_handle, torch.cuda.ExternalStream(stream_handle))
        with torch.cuda.stream(stream):  # type: ignore[arg-type]
            if slot in self.slow_slots:
                x = self.burn
                for _ in range(20):
                    x = x @ self.burn
            frame = torch.as_tensor(_DeviceArray(in_ptr, self.shape_in, "|u1"), device="cuda").int()
            out = torch.as_tensor(_DeviceArray(out_ptr, self.shape_out, "|u1"), device="cuda")
            out.copy_(((frame[..., 0] * 3 + frame[..., 1] * 5 + frame[..., 2] * 7) % 19).to(torch.uint8))


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_slots_copy_exactly_and_return_in_order(slots: int) -> None:
    height, width = 1024, 2048
    rng = np.random.default_rng(slots)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(8)]
    executor = MixingExecutor(height, width, slow_slots=(0,) if slots > 1 else ())
    pipeline = SlotPipeline((height, width, 3), np.uint8, (height, width), np.uint8, executor, slots=slots)
    for slot in pipeline.slots:
        slot.host_out[:] = 255  # poison: every output byte must be written by the GPU
    results = []
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        if pipeline.in_flight == pipeline.capacity:
            results.append(pipeline.collect())
        # a strided (bgr->rgb) view: the slot copies it into pinned memory itself
        pipeline.submit(np.ascontiguousarray(frame[..., ::-1])[..., ::-1], tag=i)
    while pipeline.in_flight:
        results.append(pipeline.collect())
    wall = (time.perf_counter() - t0) * 1e3
    pipeline.close()
    assert [r.tag for r in results] == list(range(len(frames)))
    for r, frame in zip(results, frames):
        assert np.array_equal(r.output, reference_labels(frame))
        assert r.timings_ms["h2d"] > 0 and r.timings_ms["inference"] > 0 and r.timings_ms["d2h"] > 0
    REPORT[f"mixing_{slots}_slots"] = {
        "frames": len(frames),
        "wall_ms_per_frame": round(wall / len(frames), 3),
        "h2d_ms_median": round(float(np.median([r.timings_ms["h2d"] for r in results])), 3),
        "exec_ms_median": round(float(np.median([r.timings_ms["inference"] for r in results])), 3),
        "d2h_ms_median": round(float(np.median([r.timings_ms["d2h"] for r in results])), 3),
    }


def test_event_timing_measures_gpu_work() -> None:
    """A slot whose executor burns GPU time reports that time in 'inference', not in the copies."""
    height, width = 256, 512
    slow = MixingExecutor(height, width, slow_slots=(0,))
    fast = MixingExecutor(height, width)
    frame = np.full((height, width, 3), 7, np.uint8)
    timings = {}
    for name, executor in (("slow", slow), ("fast", fast)):
        pipeline = SlotPipeline((height, width, 3), np.uint8, (height, width), np.uint8, executor, slots=1)
        for _ in range(3):  # warm-up, then keep the last
            pipeline.submit(frame)
            timings[name] = pipeline.collect().timings_ms
        pipeline.close()
    assert timings["slow"]["inference"] > 5 * timings["fast"]["inference"]
    REPORT["event_timing_ms"] = {k: round(v["inference"], 3) for k, v in timings.items()}


def test_slot_rows_are_written_in_place_and_padding_is_left_as_it_is() -> None:
    """submit_rows copies each frame (strided views too) straight into its row of the page-locked input; a None row
    keeps what the slot held: zeros at first, then the frame of the slot's previous batch."""
    height, width, batch = 256, 512, 3
    rng = np.random.default_rng(7)
    first = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]
    second = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch)]
    executor = MixingExecutor(height, width, batch=batch)
    pipeline = SlotPipeline((batch, height, width, 3), np.uint8, (batch, height, width), np.uint8, executor,
                            slots=1)
    try:
        pipeline.slots[0].host_out[:] = 255  # poison: every output byte must be written by the GPU
        pipeline.submit_rows([first[0], None, np.ascontiguousarray(first[2][..., ::-1])[..., ::-1]], tag="a")
        out = pipeline.collect()
        assert out.tag == "a" and out.output.shape == (batch, height, width)
        assert np.array_equal(out.output[0], reference_labels(first[0]))
        assert np.array_equal(out.output[1], np.zeros((height, width), np.uint8))  # never written: zeros
        assert np.array_equal(out.output[2], reference_labels(first[2]))
        pipeline.submit_rows(first)
        pipeline.collect()
        pipeline.submit_rows([None, second[1], None], tag="b")
        out = pipeline.collect()
        assert np.array_equal(out.output[0], reference_labels(first[0]))  # padding: the slot's previous row
        assert np.array_equal(out.output[1], reference_labels(second[1]))
        assert np.array_equal(out.output[2], reference_labels(first[2]))
        with pytest.raises(ValueError, match="2 rows for a slot input of 3"):
            pipeline.submit_rows(second[:2])
        assert pipeline.in_flight == 0
    finally:
        pipeline.close()


def test_torch_backend_batch_rows_equal_single_frames(random_model_factory) -> None:
    """A batch-3 torch backend (one CUDA graph per slot over 3 frames) against the batch-1 one on the same model:
    rows equal frames run one at a time (except at near-ties: cuDNN may choose other kernels for batch 3), padded
    rows, two batches in flight in order, the contract records the batch, single-frame calls are refused."""
    from trt_segmentation.runtime import InputMismatch

    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    height, width, batch = 512, 1024, 3
    model = random_model_factory("single_scale", "resnet18", seed=8)
    rng = np.random.default_rng(8)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2 * batch)]
    single = TorchBackend(copy.deepcopy(model), height, width, slots=2)
    try:
        expected = [single.infer(frame).labels for frame in frames]
    finally:
        single.close()
    backend = TorchBackend(copy.deepcopy(model), height, width, slots=2, batch=batch)
    try:
        assert backend.batch == batch and backend.contract.batch == batch and backend.describe()["batch"] == "3"
        with pytest.raises(InputMismatch, match="submit_batch"):
            backend.submit(frames[0])
        with pytest.raises(InputMismatch, match="got 2"):
            backend.submit_batch(frames[:2])
        backend.submit_batch(frames[:batch], tag=0)
        backend.submit_batch(frames[batch:], tag=1)  # two batches in flight, one per slot
        got = [backend.collect(), backend.collect()]
        assert [tag for tag, _ in got] == [0, 1]
        rows = [row for _, result in got for row in result.labels]
        assert all(result.labels.shape == (batch, height, width) for _, result in got)
        agreement = [float((row == want).mean()) for row, want in zip(rows, expected)]
        assert min(agreement) > 0.999, agreement
        padded = backend.infer_batch([None, frames[1], None]).labels
        assert padded.shape == (batch, height, width)
        assert float((padded[1] == expected[1]).mean()) > 0.999
        timings = got[0][1].timings_ms
        assert timings["inference"] > 0 and "gpu_h2d" in timings
        REPORT["torch_backend_batch3_512x1024"] = {"min_row_agreement_with_batch1": round(min(agreement), 6),
                                                   "batch_inference_ms": round(timings["inference"], 3)}
    finally:
        backend.close()


def test_torch_backend_matches_pytorch_and_overlaps(random_model_factory) -> None:
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    height, width = 512, 1024
    model = random_model_factory("single_scale", "resnet18", seed=3)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(6)]
    backend = TorchBackend(model, height, width, slots=2)
    try:
        got = []
        for i, frame in enumerate(frames):
            if backend.in_flight == backend.max_in_flight:
                got.append(backend.collect())
            backend.submit(frame, tag=i)
        while backend.in_flight:
            got.append(backend.collect())
        assert [tag for tag, _ in got] == list(range(len(frames)))
        module = backend.executor.module
        agreement, worst_gap = [], 0.0
        with torch.inference_mode():
            for (_, result), frame in zip(got, frames):
                x = torch.from_numpy(frame).cuda().permute(2, 0, 1)[None].float()
                logits = module(x)[0]
                expected = logits.argmax(0).to(torch.uint8).cpu().numpy()
                agreement.append(float((result.labels == expected).mean()))
                # labels that differ must be near-ties of the reference logits (cuDNN may pick other algorithms
                # on another stream/workspace: TF32 rounding), never copy or ordering errors
                diff = torch.from_numpy(result.labels != expected).cuda()
                if bool(diff.any()):
                    got_idx = torch.from_numpy(result.labels).cuda().long()[None]
                    gap = logits.max(0).values - logits.gather(0, got_idx)[0]
                    worst_gap = max(worst_gap, float(gap[diff].max() / logits.std()))
        assert min(agreement) > 0.999, agreement
        assert worst_gap < 0.02, worst_gap
        # the same model on the CPU: float32 on another device agrees except at near-ties
        with torch.inference_mode():
            cpu = copy.deepcopy(module).float().cpu()
            x = torch.from_numpy(frames[0]).permute(2, 0, 1)[None].float()
            cpu_labels = cpu(x).argmax(1)[0].to(torch.uint8).numpy()
        cpu_agreement = float((got[0][1].labels == cpu_labels).mean())
        assert cpu_agreement > 0.99
        # throughput with host-side conversion (bgr8 -> rgb) overlapping the GPU, 1 slot vs 2 slots
        bgr = [np.ascontiguousarray(f[..., ::-1]) for f in frames]
        figures = {}
        for slots in (1, 2):
            backend.close()
            model = module
            backend = TorchBackend(model, height, width, slots=slots)
            for warm in bgr[:2]:
                backend.infer(warm[..., ::-1])
            t0 = time.perf_counter()
            n = 0
            for _ in range(5):
                for frame in bgr:
                    if backend.in_flight == backend.max_in_flight:
                        backend.collect()
                    backend.submit(frame[..., ::-1], tag=n)
                    n += 1
            while backend.in_flight:
                backend.collect()
            figures[f"{slots}_slot_ms_per_frame"] = round((time.perf_counter() - t0) * 1e3 / n, 3)
        REPORT["torch_backend_512x1024"] = {
            "min_agreement_with_pytorch_same_gpu": round(min(agreement), 6),
            "worst_logit_gap_of_differing_pixels_in_std": round(worst_gap, 5),
            "agreement_with_cpu": round(cpu_agreement, 5),
            **figures,
        }
    finally:
        backend.close()


def test_node_worker_pipelines_frames_in_order_on_the_gpu(random_model_factory) -> None:
    """The node's FrameWorker (mailbox + worker thread, no ROS) on the torch backend: 1024x2048 bgr8 messages
    posted as fast as a camera could, labels published in camera order and equal to a direct run; frames per
    second with 1 and 2 slots (conversion of frame N+1 overlapping inference of frame N) are recorded."""
    import threading
    from types import SimpleNamespace

    from trt_segmentation.node import FrameWorker

    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    height, width = 1024, 2048
    model = random_model_factory("single_scale", "resnet18", seed=4)
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]  # BGR bytes

    def message(i: int) -> SimpleNamespace:
        stamp = time.time_ns()
        header = SimpleNamespace(frame_id=f"f{i}", stamp=SimpleNamespace(sec=stamp // 10**9, nanosec=stamp % 10**9))
        return SimpleNamespace(encoding="bgr8", height=height, width=width, step=width * 3,
                               data=frames[i % len(frames)].tobytes(), header=header)

    figures = {}
    for slots in (1, 2):
        backend = TorchBackend(model, height, width, slots=slots)
        published: list[tuple[str, np.ndarray]] = []
        lock = threading.Lock()

        def publish(pending, labels, sink=published, lock=lock) -> None:
            with lock:
                sink.append((pending.header.frame_id, labels))

        worker = FrameWorker(backend, publish)
        worker.start()
        for i in range(3):  # warm-up
            worker.post(message(i))
            time.sleep(0.2)
        t0, n, start_count = time.perf_counter(), 3, len(published)
        while time.perf_counter() - t0 < 3.0:
            worker.post(message(n))
            n += 1
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        done = len(published) - start_count
        worker.stop()
        counters = worker.snapshot()
        ids = [int(fid[1:]) for fid, _ in published]
        assert ids == sorted(ids), "labels must come out in camera order"
        assert counters.failed == 0 and counters.processed == len(published)
        assert counters.received == counters.processed + counters.dropped
        fid, labels = published[-1]
        reference = backend.infer(np.ascontiguousarray(frames[int(fid[1:]) % len(frames)][..., ::-1])).labels
        assert float((labels == reference).mean()) > 0.999
        summary = worker.latency.summaries()
        figures[f"{slots}_slot"] = {
            "fps": round(done / elapsed, 1),
            "dropped_of_received": f"{counters.dropped}/{counters.received}",
            **{f"{stage}_p50_ms": round(summary[stage]["p50"], 2) for stage in ("preprocess", "inference",
                                                                                 "postprocess", "age")},
        }
        backend.close()
    REPORT["node_worker_1024x2048_bgr8"] = figures


def test_cuda_graph_executor_fp16_matches_eager_and_fp32(random_model_factory) -> None:
    """The node's fast executor: FP16, channels-last, one CUDA graph per slot. Its labels equal the same executor
    run eagerly (same kernels, replayed), agree with FP32 except at near-ties, two slots in flight keep their own
    graphs (frames come back in order, each with its own labels), and it is faster than eager."""
    height, width = 512, 1024
    model = random_model_factory("single_scale", "resnet18", seed=5)
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    results, figures = {}, {}
    for name, precision, graph in (("fp32_eager", "fp32", False), ("fp16_eager", "fp16", False),
                                   ("fp16_graph", "fp16", True)):
        backend = TorchBackend(copy.deepcopy(model), height, width, slots=2, precision=precision, cuda_graph=graph)
        try:
            assert backend.contract.precision == precision
            assert backend.describe()["executor"] == ("cuda_graph" if graph else "eager")
            got = []
            for i, frame in enumerate(frames[:3] * 4):  # two in flight; frame i % 3 runs on slot i % 2: both slots
                if backend.in_flight == backend.max_in_flight:
                    got.append(backend.collect())
                backend.submit(frame, tag=i)
            while backend.in_flight:
                got.append(backend.collect())
            assert [tag for tag, _ in got] == list(range(12))
            results[name] = [r.labels for _, r in got]
            figures[f"{name}_inference_ms_median"] = round(float(np.median(
                [r.timings_ms["inference"] for _, r in got[3:]])), 3)
        finally:
            backend.close()
    for a, b in zip(results["fp16_graph"], results["fp16_eager"]):
        assert float((a == b).mean()) > 0.9999
    for i in range(3):  # the same frame gives the same labels whichever slot (and graph) ran it
        assert all(np.array_equal(results["fp16_graph"][i], results["fp16_graph"][i + 3 * k]) for k in (1, 2, 3))
    agreement = min(float((a == b).mean()) for a, b in zip(results["fp16_graph"], results["fp32_eager"]))
    assert agreement > 0.99, agreement
    REPORT["cuda_graph_executor_512x1024"] = {"min_agreement_fp16_graph_vs_fp32": round(agreement, 5), **figures}


def test_torch_backend_slots_share_one_graph_pool(random_model_factory) -> None:
    """What a slot costs on the GPU: a batch-4 FP16 CUDA-graph backend with 1, 2 and 3 slots (device memory in use,
    cudaMemGetInfo, after creating it). The slots' graphs share one memory pool, so a slot beyond the first costs
    about its own input/output buffers, not another copy of the network's activations; three batches in flight
    still give the labels of one at a time (the replays never overlap)."""
    height, width, batch = 512, 1024, 4
    model = random_model_factory("single_scale", "resnet18", seed=9)
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3 * batch)]
    used: dict[int, float] = {}
    results: dict[int, list] = {}
    for slots in (1, 2, 3):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        free_before = torch.cuda.mem_get_info()[0]
        backend = TorchBackend(copy.deepcopy(model), height, width, slots=slots, precision="fp16", batch=batch)
        try:
            torch.cuda.synchronize()
            used[slots] = (free_before - torch.cuda.mem_get_info()[0]) / 2**20
            got = []
            for index in range(3):  # three batches, up to ``slots`` of them in flight at once
                if backend.in_flight == slots:
                    got.append(backend.collect())
                backend.submit_batch(frames[index * batch:(index + 1) * batch], tag=index)
            while backend.in_flight:
                got.append(backend.collect())
            assert [tag for tag, _ in got] == [0, 1, 2]
            results[slots] = [row for _, result in got for row in result.labels]
        finally:
            backend.close()
    for slots in (2, 3):  # batches in flight together give the labels of one batch at a time
        agreement = [float((row == want).mean()) for row, want in zip(results[slots], results[1])]
        assert min(agreement) > 0.999, (slots, agreement)
    per_slot = (used[3] - used[1]) / 2
    REPORT["torch_backend_b4_512x1024_fp16_memory_mib"] = {str(k): round(v, 1) for k, v in used.items()}
    REPORT["torch_backend_b4_512x1024_fp16_mib_per_extra_slot"] = round(per_slot, 1)
    assert per_slot < 0.5 * used[1], used
