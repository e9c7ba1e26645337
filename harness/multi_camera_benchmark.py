"""Multi-camera node benchmark: N camera processes into N raw-CDR relays (the transport floor of N cameras), then
into N single-camera nodes, then into one node of batch N; label ages, aggregate throughput, RSS and GPU memory
of each phase. Used by ``tools/benchmark_node.py --cameras N``; the cameras, relays and listener are the single-camera
benchmark's (node_benchmark.py)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from harness.gil_profiler import GilProfiler
from harness.node_benchmark import (
    NODE_STATUS,
    AgeListener,
    _child_env,
    _wait_for_publisher,
    camera_deadline,
    model_path,
    stop_if_hung,
)
from trt_segmentation.node.diagnostics import cpu_model

MULTI_NAMESPACE = "bench_multi"


def _nvidia_smi(query: str) -> Optional[str]:
    import shutil

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        return subprocess.run(["nvidia-smi", query, "--format=csv,noheader,nounits"], capture_output=True, text=True,
                              timeout=30, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None


def gpu_used_mib() -> Optional[float]:
    """Memory in use on the first GPU (nvidia-smi), MiB; None without nvidia-smi."""
    out = _nvidia_smi("--query-gpu=memory.used")
    return float(out.split()[0]) if out and out.split() else None


def gpu_memory_mib(pids: List[int], baseline: Optional[float] = None) -> Optional[float]:
    """GPU memory the processes ``pids`` hold: nvidia-smi's per-process used_memory (MiB), or, where it lists
    none of them (a container's PIDs differ from the driver's), the GPU's memory in use minus ``baseline``; None
    without nvidia-smi (a CPU run)."""
    out = _nvidia_smi("--query-compute-apps=pid,used_memory")
    if out is None:
        return None
    used = {int(pid): float(mib) for pid, mib in (line.split(",") for line in out.strip().splitlines() if line)}
    found = [used[pid] for pid in pids if pid in used]
    if found:
        return sum(found)
    total = gpu_used_mib()
    return total - baseline if total is not None and baseline is not None else None


@dataclass
class MultiPhase:
    """One configuration of the multi-camera comparison: labels per camera, their ages, the nodes' memory."""

    name: str
    nodes: int
    sent_per_camera: int
    delivered: Dict[str, int]
    age_p50_ms: Dict[str, float]
    age_p95_ms: Dict[str, float]
    throughput_fps: float  # all cameras' labels per second after warm-up
    rss_mb: float  # sum over the node processes, at the end of the measured phase
    gpu_mib: Optional[float] = None
    status: Dict[str, str] = field(default_factory=dict)


WARMUP_S = 1.0  # each topic's first second of labels is left out of the multi-camera figures


def after_warmup(arrivals: List[float], warmup_s: float) -> int:
    """Index of a topic's first label more than ``warmup_s`` after its first label: the warm-up is a time, not a
    count, so a configuration that delivers far fewer labels than were offered still keeps its measured ones."""
    return next((i for i, t in enumerate(arrivals) if t - arrivals[0] > warmup_s), len(arrivals))


def aggregate_throughput(arrivals: Dict[str, List[float]], warmup_s: float) -> float:
    """Labels per second of all topics together: every label after each topic's warm-up (``after_warmup``), over
    the span from the first to the last of them."""
    times = sorted(t for values in arrivals.values() for t in values[after_warmup(values, warmup_s):])
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else float("nan")


def _multi_phase(name: str, listener: AgeListener, topics: Dict[str, str], nodes: List[Any], env: Dict[str, str],
                 args: argparse.Namespace, count: int, warmup_s: float, gpu_baseline: Optional[float]) -> MultiPhase:
    """Cameras -> ``nodes`` (already started): wait for every labels publisher, run the N camera processes,
    collect ages and memory."""
    for topic in topics.values():
        _wait_for_publisher(listener, topic, nodes[0].proc)
    height, width = args.size
    cameras = {camera: subprocess.Popen(
        [sys.executable, "-m", "harness.node_benchmark", "camera", "--topic", f"/{MULTI_NAMESPACE}/{camera}/image_raw",
         "--height", str(height), "--width", str(width), "--rate", str(args.rate), "--count", str(count)], env=env)
        for camera in topics}
    rss_peak, gpu_peak = 0.0, None
    deadline = camera_deadline(args.rate, count)
    for camera, proc in cameras.items():
        while proc.poll() is None:
            stop_if_hung(proc, deadline, f"camera {camera}")
            rss_peak = max(rss_peak, sum(n.rss_mb() for n in nodes))
            gpu = gpu_memory_mib([n.pid for n in nodes], gpu_baseline)
            gpu_peak = gpu if gpu_peak is None or (gpu is not None and gpu > gpu_peak) else gpu_peak
            time.sleep(0.5)
        if proc.returncode != 0:
            raise RuntimeError(f"camera {camera} failed ({proc.returncode})")
    settle, last = time.monotonic() + 5.0, -1  # the last labels: until every frame is in or none came for 3 s
    while time.monotonic() < settle and any(listener.count(t) < count for t in topics.values()):
        total = sum(listener.count(t) for t in topics.values())
        if total != last:
            last, settle = total, time.monotonic() + 3.0
        time.sleep(0.1)
    rss = sum(n.rss_mb() for n in nodes)
    arrivals = {c: listener.arrival_times(t) for c, t in topics.items()}
    ages = {c: listener.take(t)[after_warmup(arrivals[c], warmup_s):] for c, t in topics.items()}
    nan = float("nan")
    return MultiPhase(
        name, len(nodes), count, {c: listener.count(t) for c, t in topics.items()},
        {c: float(np.percentile(a, 50)) if a else nan for c, a in ages.items()},
        {c: float(np.percentile(a, 95)) if a else nan for c, a in ages.items()},
        aggregate_throughput(arrivals, warmup_s),
        max(rss, rss_peak), gpu_peak, listener.status(NODE_STATUS))


def report_multi_markdown(relay: MultiPhase, single: MultiPhase, batched: MultiPhase, setup: Dict[str, str]) -> str:
    def ratio(a: Optional[float], b: Optional[float]) -> str:
        return f"{a / b:.2f}x" if a is not None and b and a == a and b == b else "n/a"

    def ages(phase: MultiPhase, camera: str) -> str:
        return (f"{phase.delivered[camera]}/{phase.sent_per_camera}, {phase.age_p50_ms[camera]:.0f} / "
                f"{phase.age_p95_ms[camera]:.0f}")

    cameras = list(batched.delivered)
    lines = [f"### {len(cameras)} cameras: one batched node vs {single.nodes} single-camera nodes (same run)", ""]
    lines += [", ".join(f"{k}: {v}" for k, v in setup.items()), ""]
    lines += [f"| figure | {relay.nodes} raw-CDR relays (floor) | {single.nodes} single-camera nodes (batch 1) | "
              f"1 node, batch {len(cameras)} | batched / single |", "|---|---:|---:|---:|---:|"]
    lines.append(f"| aggregate throughput, labels/s | {relay.throughput_fps:.2f} | {single.throughput_fps:.2f} | "
                 f"{batched.throughput_fps:.2f} | {ratio(batched.throughput_fps, single.throughput_fps)} |")
    lines.append(f"| throughput / floor | 1.00x | {ratio(single.throughput_fps, relay.throughput_fps)} | "
                 f"{ratio(batched.throughput_fps, relay.throughput_fps)} | |")
    for camera in cameras:
        lines.append(f"| {camera}: delivered / sent, age p50 / p95 ms | {ages(relay, camera)} | {ages(single, camera)} | "
                     f"{ages(batched, camera)} | {ratio(batched.age_p95_ms[camera], single.age_p95_ms[camera])} (p95) |")
    lines.append(f"| node RSS MB (sum over the node processes, peak) | | {single.rss_mb:.0f} | {batched.rss_mb:.0f} | "
                 f"{ratio(batched.rss_mb, single.rss_mb)} |")
    gpu = (f"| GPU memory MiB (nvidia-smi, the node processes, peak) | | {single.gpu_mib:.0f} | {batched.gpu_mib:.0f} | "
           f"{ratio(batched.gpu_mib, single.gpu_mib)} |" if single.gpu_mib is not None and batched.gpu_mib is not None
           else "| GPU memory | | n/a (no nvidia-smi or no GPU process) | | |")
    lines.append(gpu)
    fill = batched.status.get("batch_fill_ratio", "n/a")
    lines.append(f"| batched node: batches, fill ratio (real rows / batch), dropped / received | | | "
                 f"{batched.status.get('batches', '?')}, {fill}, {batched.status.get('frames_dropped', '?')} / "
                 f"{batched.status.get('frames_received', '?')} | |")
    stages = ", ".join(f"{stage} {batched.status.get(f'latency_{stage}_p50_ms', '?')}"
                       for stage in ("preprocess", "inference", "postprocess"))
    lines.append(f"| batched node: stages p50 ms per batch (its /diagnostics) | | | {stages} | |")
    lines.append(f"| batched node: converter's wait p50 ms per batch, for a slot / for the batch to be due | | | "
                 f"{batched.status.get('batch_slot_wait_p50_ms', '?')} / "
                 f"{batched.status.get('batch_due_wait_p50_ms', '?')} | |")
    return "\n".join(lines)


def run_multi(args: argparse.Namespace) -> Dict[str, Any]:
    """``args.camera_count`` camera processes into as many raw-CDR relays (the transport floor of N cameras), then
    into as many single-camera nodes, then into one node of batch ``args.camera_count``; writes
    multi_camera_benchmark.{md,json} into ``args.out``."""
    from harness.launch_emulation import NodeProcess, launch_command

    n = args.camera_count
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = _child_env()
    count = int(args.rate * args.seconds)
    warmup_s = WARMUP_S
    cameras = [f"cam{i}" for i in range(n)]
    single_topics = {c: f"/{MULTI_NAMESPACE}/{c}/segmentation/labels" for c in cameras}
    batched_topics = {c: f"/{MULTI_NAMESPACE}/segmentation/{c}/labels" for c in cameras}
    relay_topics = {c: f"/{MULTI_NAMESPACE}/relay/{c}/labels" for c in cameras}
    listener = AgeListener(list(relay_topics.values()) + list(single_topics.values()) + list(batched_topics.values()))
    base = {"backend": args.backend, "precision": args.precision, "model": args.model,
            "engine_dir": str(args.engine_dir)}
    extra = {"diagnostics_period": "0.5", "inflight_slots": str(args.slots)}
    extra.update(dict(item.split("=", 1) for item in args.param))
    if args.engine_size:
        extra.update(engine_height=str(args.engine_size[0]), engine_width=str(args.engine_size[1]))
    if model_path(args):  # torch: the checkpoint (the node tells the backend the batch)
        extra["engine_path"] = str(model_path(args))

    def start(arguments: Dict[str, str], params: Dict[str, str], log: str) -> Any:
        argv, node_env = launch_command(dict(base, **arguments), extra=params)
        node_env.update({k: v for k, v in env.items() if k.startswith("ROS_")})
        return NodeProcess(argv, node_env, out / log)

    phases: Dict[str, MultiPhase] = {}
    try:
        print(f"==> phase 1/3: {n} raw-CDR relays (the transport floor of {n} cameras: no node at all)", flush=True)
        relays = [NodeProcess([sys.executable, "-m", "harness.node_benchmark", "relay", "--input",
                               f"/{MULTI_NAMESPACE}/{c}/image_raw", "--output", relay_topics[c]], env,
                              out / f"relay_{c}.log") for c in cameras]
        try:
            phases["relay"] = _multi_phase("relay", listener, relay_topics, relays, env, args, count, warmup_s, None)
        finally:
            for relay in relays:
                relay.stop()
        print(f"    {phases['relay'].throughput_fps:.2f} labels/s in all", flush=True)
        print(f"==> phase 2/3: {n} single-camera nodes, {n} cameras of {args.size[0]}x{args.size[1]} rgb8 at "
              f"{args.rate:g} Hz each, {count} frames per camera", flush=True)
        baseline = gpu_used_mib()
        nodes = [start({"namespace": f"{MULTI_NAMESPACE}/{c}", "image_topic": f"/{MULTI_NAMESPACE}/{c}/image_raw"},
                       extra, f"node_{c}.log") for c in cameras]
        try:
            phases["single"] = _multi_phase("single", listener, single_topics, nodes, env, args, count, warmup_s,
                                            baseline)
        finally:
            for node in nodes:
                node.stop()
        print(f"    {phases['single'].throughput_fps:.2f} labels/s in all", flush=True)
        print(f"==> phase 3/3: one node, cameras {cameras}, batch {n}", flush=True)
        time.sleep(2.0)  # the single-camera nodes' GPU memory is released
        baseline = gpu_used_mib()
        node = start({"namespace": MULTI_NAMESPACE, "cameras": f"[{','.join(cameras)}]",
                      "camera_topic": f"/{MULTI_NAMESPACE}/{{camera}}/image_raw"},
                     dict(extra, batch_timeout_ms=str(float(args.batch_timeout_ms))), "node_batched.log")
        try:
            deadline = time.monotonic() + 120
            while node.proc.poll() is None and listener.node.count_publishers(batched_topics[cameras[0]]) == 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the batched node did not start in 120 s:\n{node.log()[-3000:]}")
                time.sleep(0.2)
            if node.proc.poll() is not None:
                raise RuntimeError(f"the batched node exited ({node.proc.returncode}):\n{node.log()[-3000:]}")
            profiler = (GilProfiler(node, out, args.profile_seconds, 3.0 + warmup_s, "batched")
                        if args.profile_seconds else None)
            phases["batched"] = _multi_phase("batched", listener, batched_topics, [node], env, args, count, warmup_s,
                                             baseline)
            if profiler is not None:
                profiler.report(f"GIL profile, batched node, {n} cameras {args.size[0]}x{args.size[1]} at "
                                f"{args.rate:g} Hz ({', '.join(args.param) or 'default params'})",
                                out / "gil_profile_batched.md")
        finally:
            node.stop()
        print(f"    {phases['batched'].throughput_fps:.2f} labels/s in all", flush=True)
    finally:
        listener.close()
    setup = {"cameras": str(n), "size": f"{args.size[0]}x{args.size[1]} rgb8", "rate": f"{args.rate:g} Hz per camera",
             "frames per camera": str(count), "backend": args.backend, "precision": args.precision,
             "model": args.model, "batch_timeout_ms": f"{args.batch_timeout_ms:g}",
             "params": " ".join(args.param) or "defaults", "warm-up left out per camera": f"first {warmup_s:g} s of labels",
             "machine": f"{cpu_model()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    markdown = report_multi_markdown(phases["relay"], phases["single"], phases["batched"], setup)
    relay, single, batched = phases["relay"], phases["single"], phases["batched"]
    results = {"setup": setup, "relay": asdict(relay), "single": asdict(single), "batched": asdict(batched),
               "ratios": {"throughput": batched.throughput_fps / single.throughput_fps,
                          "single_to_floor": single.throughput_fps / relay.throughput_fps,
                          "batched_to_floor": batched.throughput_fps / relay.throughput_fps,
                          "rss": batched.rss_mb / single.rss_mb,
                          "gpu_memory": (batched.gpu_mib / single.gpu_mib
                                         if batched.gpu_mib is not None and single.gpu_mib else None)}}
    (out / "multi_camera_benchmark.md").write_text(markdown + "\n")
    (out / "multi_camera_benchmark.json").write_text(json.dumps(results, indent=2))
    print(markdown, flush=True)
    return results
