"""Latency measurement for backends and PyTorch models: warm-up, many repeats, medians, ratios in one run.

Numbers are only compared within one run on one machine (the ratio column); absolute figures say something
only with the device and date they were taken on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..runtime.backend import Backend


@dataclass(frozen=True)
class Timing:
    name: str
    median_ms: float
    p95_ms: float
    runs: int

    @property
    def fps(self) -> float:
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


def summarise(name: str, samples_ms: list[float]) -> Timing:
    return Timing(name, statistics.median(samples_ms), float(np.percentile(samples_ms, 95)), len(samples_ms))


def time_backend(name: str, backend: Backend, frames: list[np.ndarray], warmup: int = 3, repeats: int = 20) -> Timing:
    """Wall time of ``backend.infer`` (whole call: preprocessing, inference, labels back on the host)."""
    for i in range(warmup):
        backend.infer(frames[i % len(frames)])
    samples = []
    for i in range(repeats):
        start = time.perf_counter()
        backend.infer(frames[i % len(frames)])
        samples.append((time.perf_counter() - start) * 1e3)
    return summarise(name, samples)


def _torch_inputs(model, height: int, width: int, dtype: str, device: str, count: int):  # noqa: ANN001, ANN202
    """The model in ``dtype``, channels-last, eval, and ``count`` random 0-255 inputs of its layout; cuDNN
    autotuning on (fixed size)."""
    import torch

    torch.backends.cudnn.benchmark = True
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    model = model.to(device=device, dtype=torch_dtype, memory_format=torch.channels_last).eval()
    inputs = [(torch.rand(1, 3, height, width, device=device) * 255).to(torch_dtype).contiguous(
        memory_format=torch.channels_last) for _ in range(count)]
    return model, inputs


def _event_times_ms(run: Callable[[int], object], warmup: int, repeats: int,
                    before: Callable[[int], object] = lambda i: None) -> list[float]:
    """CUDA-event time of ``run(i)`` for ``repeats`` runs after ``warmup`` untimed ones; ``before(i)`` runs
    untimed ahead of each (e.g. refilling a static input)."""
    import torch

    with torch.inference_mode():
        for i in range(warmup):
            before(i)
            run(i)
        torch.cuda.synchronize()
        samples = []
        for i in range(repeats):
            before(i)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run(i)
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
    return samples


def time_torch_model(name: str, model, height: int, width: int, dtype: str = "fp32", device: str = "cuda",  # noqa: ANN001
                     warmup: int = 10, repeats: int = 50) -> Timing:
    """GPU time of one forward pass (batch 1, uint8-range input, argmax included) from CUDA events; rotates
    between 4 random inputs so repeated runs do not measure a cache."""
    model, inputs = _torch_inputs(model, height, width, dtype, device, 4)
    return summarise(name, _event_times_ms(lambda i: model(inputs[i % 4]).argmax(1), warmup, repeats))


def time_torch_graph(name: str, model, height: int, width: int, dtype: str = "fp32", device: str = "cuda",  # noqa: ANN001
                     warmup: int = 10, repeats: int = 50) -> Timing:
    """Like :func:`time_torch_model`, with the forward pass and argmax captured once as a CUDA graph and replayed
    (the launch overhead of the ~150 kernels disappears); GPU time from CUDA events around each replay, the copy
    of the next input into the graph's static input untimed."""
    import torch

    model, inputs = _torch_inputs(model, height, width, dtype, device, 5)
    static, sources = inputs[0], inputs[1:]
    side = torch.cuda.Stream()
    with torch.inference_mode():
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture stream, as CUDA graph capture wants
            for _ in range(3):
                model(static).argmax(1)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(static).argmax(1)
    samples = _event_times_ms(lambda i: graph.replay(), warmup, repeats, before=lambda i: static.copy_(sources[i % 4]))
    return summarise(name, samples)


def time_torch_executor(name: str, model, height: int, width: int, dtype: str = "fp32", cuda_graph: bool = True,  # noqa: ANN001
                        slots: int = 1, warmup: int = 10, repeats: int = 50) -> Timing:
    """The node's torch executor through the CUDA slot pipeline (uint8 frame in, labels out): the GPU time of
    the executor stage alone, from the slot's CUDA events (the same figure the node reports as inference)."""
    from ..runtime.torch_backend import TorchBackend

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    backend = TorchBackend(model, height, width, slots=slots, precision=dtype, cuda_graph=cuda_graph)
    try:
        for i in range(warmup):
            backend.infer(frames[i % 4])
        samples = [backend.infer(frames[i % 4]).timings_ms["inference"] for i in range(repeats)]
    finally:
        backend.close()
    return summarise(name, samples)


def _part_inputs(model, height: int, width: int, device: str, dtype: str, seed: int = 0):  # noqa: ANN001, ANN202
    """The model in ``dtype`` (channels-last on CUDA, as the CUDA-graph executor holds it), its four parts and the
    named tensors of one random uint8 frame run through them (each part's inputs, computed once)."""
    import torch

    from ..models.parts import run_parts, split

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype]
    memory = torch.channels_last if device != "cpu" else torch.contiguous_format
    model = model.to(device=device, dtype=torch_dtype, memory_format=memory).eval()
    generator = torch.Generator().manual_seed(seed)
    frame = torch.randint(0, 256, (1, height, width, 3), dtype=torch.uint8, generator=generator).to(device)
    parts = split(model, height, width)
    with torch.inference_mode():
        tensors = run_parts(parts, frame)
    return model, parts, tensors


def _replayer(graph: Any) -> Callable[[int], object]:
    """``run(i)`` for :func:`_event_times_ms`: one replay of a captured CUDA graph."""
    return lambda i: graph.replay()


def time_torch_parts(name: str, model, height: int, width: int, dtype: str = "fp16",  # noqa: ANN001
                     warmup: int = 10, repeats: int = 50) -> list[Timing]:
    """GPU time of each part (encoder, context, upsampling, resize + ArgMax) and of the whole frame, each captured
    as its own CUDA graph over static inputs (channels-last, cuDNN autotuned: the node's CUDA-graph executor's
    configuration) and replayed; CUDA events around each replay. The whole-frame row is last (the parts' sum
    is a little above it: a graph boundary costs a launch and the parts cannot fuse across it)."""
    import torch

    from ..models.parts import run_part
    from ..runtime.torch_model import frames_to_labels

    torch.backends.cudnn.benchmark = True
    model, parts, tensors = _part_inputs(model, height, width, "cuda", dtype)
    def part_run(part: Any) -> Callable[[], object]:
        return lambda: run_part(part, tensors)

    def whole() -> object:
        return frames_to_labels(model, tensors["frame"], model.mean.dtype, channels_last=True)

    runs: list[tuple[str, Callable[[], object]]] = [(part.name, part_run(part)) for part in parts]
    runs.append(("whole frame", whole))
    timings = []
    for label, fn in runs:
        side = torch.cuda.Stream()
        with torch.inference_mode():
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up (cuDNN autotuning) off the capture stream
                for _ in range(3):
                    fn()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
        timings.append(summarise(f"{name} {dtype} {label}", _event_times_ms(_replayer(graph), warmup, repeats)))
    return timings


def export_parts(model, height: int, width: int, folder, opset: int = 17) -> list:  # noqa: ANN001
    """Each part of ``model`` (fp32, CPU) as its own ONNX file in ``folder``: ``(Part, path, inputs)`` where
    ``inputs`` are the part's input arrays from one random frame. Same exporter settings as export.py."""
    import warnings
    from pathlib import Path

    import torch

    model, parts, tensors = _part_inputs(model, height, width, "cpu", "fp32")
    out = []
    for part in parts:
        path = Path(folder) / f"{part.name}.onnx"
        args = tuple(tensors[n] for n in part.inputs)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(part.module, args, str(path), input_names=list(part.inputs),
                              output_names=list(part.outputs), opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        out.append((part, path, {n: tensors[n].numpy() for n in part.inputs}))
    return out


def time_onnxruntime_parts(name: str, model, height: int, width: int, folder, threads: int = 0,  # noqa: ANN001
                           warmup: int = 2, repeats: int = 10) -> list[Timing]:
    """Wall time of each part exported alone (:func:`export_parts`) in its own ONNX Runtime CPU session (the
    session settings of runtime/onnxruntime_backend.py), then the whole model's export (labels_uint8, uint8
    RGB input) in one session: the last row. Parts run on the inputs the previous parts computed."""
    import onnxruntime as ort

    from ..export import ExportOptions, export_onnx
    from ..runtime.onnxruntime_backend import X64_EXACT_INT8_KEY

    def session(path) -> Any:  # noqa: ANN001
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.add_session_config_entry(X64_EXACT_INT8_KEY, "1")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    timings = []
    rows = [(part.name, path, feeds) for part, path, feeds in export_parts(model, height, width, folder)]
    whole = export_onnx(model.float(), f"{folder}/whole.onnx", ExportOptions(height, width, fold_batchnorm=False))  # as the parts
    frame = rows[0][2]["frame"]
    rows.append(("whole frame", f"{folder}/whole.onnx", {whole.input_name: frame}))
    for label, path, feeds in rows:
        sess = session(path)
        for _ in range(warmup):
            sess.run(None, feeds)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            sess.run(None, feeds)
            samples.append((time.perf_counter() - start) * 1e3)
        timings.append(summarise(f"{name} fp32 {label}", samples))
    return timings


def format_parts_table(timings: list[Timing], title: str) -> str:
    """Markdown table of one model's part rows and its whole-frame row: each part's share of the parts' sum."""
    parts, whole = timings[:-1], timings[-1]
    total = sum(t.median_ms for t in parts) or 1.0
    lines = [f"### {title}", "", "| row | median ms | share of the parts' sum |", "|---|---:|---:|"]
    lines += [f"| {t.name} | {t.median_ms:.3f} | {t.median_ms / total:.0%} |" for t in parts]
    lines.append(f"| sum of the parts | {total:.3f} | |")
    lines.append(f"| {whole.name} | {whole.median_ms:.3f} | |")
    return "\n".join(lines)


def format_table(timings: list[Timing], title: str) -> str:
    """Markdown table; ``ratio`` is each row's median over the first row's, from this same run."""
    base = timings[0].median_ms if timings else 1.0
    lines = [f"### {title}", "", "| variant | median ms | p95 ms | fps | time vs first row |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {t.name} | {t.median_ms:.2f} | {t.p95_ms:.2f} | {t.fps:.1f} | {t.median_ms / base:.2f}x |"
              for t in timings]
    return "\n".join(lines)
