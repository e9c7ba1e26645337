"""A soak of the node as launched: a single-camera node and a 4-camera node side by side for a long run, each fed by
independent camera processes at a steady rate, sampled every few seconds. Used by ``tools/soak_node.py``.

It records what a leak or a lost frame would show: the resident memory of every node process (the inference
process and each camera I/O process) over time, the ``/dev/shm`` entries the nodes own (frame rings) and their
size, and at the end each camera's counts from /diagnostics (received = processed + dropped + failed). The two
configurations run in ROS domains of their own, so their statuses (both named "segmentation: inference") and
topics never mix. A near-free model (labels = one input channel, harness.node_benchmark.free_model) keeps the CPU
for the node's own work, which is what a soak is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from harness.launch_emulation import NodeProcess, launch_command, process_rss_mb
from harness.node_benchmark import FREE_MODEL, AgeListener, _child_env, free_model
from trt_segmentation.node.camera_io.frame_ring import SHM_DIR
from trt_segmentation.node.diagnostics import camera_task, cpu_model, status_name

STATUS = status_name("segmentation")
SOURCE_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Configuration:
    """One node under soak: its cameras (one camera: the single-camera node), ROS domain and processes."""

    name: str
    cameras: List[str]
    domain: int
    node: Any = None
    camera_procs: List[subprocess.Popen] = field(default_factory=list)
    listener: Optional[AgeListener] = None

    @property
    def labels_topics(self) -> List[str]:
        if len(self.cameras) == 1:
            return [f"/{self.name}/segmentation/labels"]
        return [f"/{self.name}/segmentation/{c}/labels" for c in self.cameras]

    def camera_topic(self, camera: str) -> str:
        return f"/{self.name}/{camera}/image_raw"

    def status_names(self) -> Dict[str, str]:
        """camera -> the status that carries its counts."""
        if len(self.cameras) == 1:
            return {self.cameras[0]: STATUS}
        return {c: status_name("segmentation", camera_task(c)) for c in self.cameras}


@dataclass
class Sample:
    """One look at the machine: seconds since the start, RSS per node process (role -> MB), /dev/shm rings."""

    seconds: float
    rss_mb: Dict[str, float]
    shm_entries: int
    shm_mb: float


def node_processes(config: Configuration) -> Dict[str, int]:
    """role -> pid: the inference process and its camera I/O processes (by the ROS node name on their command line,
    ``segmentation_io_<camera>``: a restarted I/O process keeps its role)."""
    roles = {f"{config.name} inference": config.node.pid}
    for pid in config.node.child_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = argv[argv.index(b"--node-name") + 1].decode() if b"--node-name" in argv else str(pid)
        roles[f"{config.name} {name.replace('segmentation_', '')}"] = pid
    return roles


def shm_rings(node_pids: List[int]) -> tuple[int, float]:
    """How many /dev/shm entries the nodes own (their frame rings, ``trtseg-<node pid>-...``) and their size."""
    entries = [p for pid in node_pids for p in SHM_DIR.glob(f"trtseg-{pid}-*")]
    size = 0
    for entry in entries:
        try:
            size += entry.stat().st_blocks * 512  # what tmpfs holds, not the ring's address space
        except OSError:
            pass
    return len(entries), size / 2**20


@contextmanager
def ros_domain(domain: int) -> Iterator[None]:
    previous = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = previous


def start(config: Configuration, models: Path, size: tuple, rate: float, count: int, out: Path,
          env: Dict[str, str]) -> None:
    """The node (as the launch file starts it), its listener and its camera processes, in its own ROS domain."""
    env = dict(env, ROS_DOMAIN_ID=str(config.domain))
    arguments = {"backend": "onnxruntime", "precision": "fp32", "model": FREE_MODEL, "engine_dir": str(models),
                 "namespace": config.name}
    if len(config.cameras) == 1:
        arguments["image_topic"] = config.camera_topic(config.cameras[0])
    else:
        arguments.update(cameras=f"[{','.join(config.cameras)}]", camera_topic=f"/{config.name}/{{camera}}/image_raw")
    argv, node_env = launch_command(arguments, extra={"diagnostics_period": "1.0"})
    node_env.update({k: v for k, v in env.items() if k.startswith("ROS_")})
    config.node = NodeProcess(argv, node_env, out / f"{config.name}_node.log")
    with ros_domain(config.domain):
        config.listener = AgeListener(config.labels_topics)
    for camera in config.cameras:
        config.camera_procs.append(subprocess.Popen(
            [sys.executable, "-m", "harness.node_benchmark", "camera", "--topic", config.camera_topic(camera),
             "--height", str(size[0]), "--width", str(size[1]), "--rate", str(rate), "--count", str(count)],
            env=env, cwd=SOURCE_ROOT, stdout=open(out / f"{config.name}_camera_{camera}.log", "wb"),
            stderr=subprocess.STDOUT))


def final_counts(config: Configuration, sent: int, timeout: float = 30.0) -> Dict[str, Dict[str, int]]:
    """Each camera's counters from its status once they have stopped changing (the cameras have finished)."""
    assert config.listener is not None
    keys = ("frames_received", "frames_processed", "frames_dropped", "frames_failed")
    last: Dict[str, Dict[str, int]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = {camera: {k: int(config.listener.status(name).get(k, -1)) for k in keys}
               for camera, name in config.status_names().items()}
        if now == last and all(v["frames_received"] >= 0 for v in now.values()):
            break
        last = now
        time.sleep(2.5)  # more than the diagnostics period: a changed count shows by then
    for camera, values in last.items():
        values["sent"] = sent
        values["labels_received"] = config.listener.count(config.labels_topics[config.cameras.index(camera)])
    return last


def run(size: tuple, rate: float, seconds: float, sample_s: float, out: Path, domains: tuple) -> Dict[str, Any]:
    """Both configurations side by side for ``seconds``; writes soak.{json,md,png} into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    models.mkdir(exist_ok=True)
    free_model(models, *size)
    free_model(models, *size, batch=4)
    env = _child_env()
    count = int(rate * seconds)
    configs = [Configuration("soak1", ["cam"], domains[0]), Configuration("soak4", [f"c{i}" for i in range(4)],
                                                                          domains[1])]
    samples: List[Sample] = []
    started = time.monotonic()
    try:
        for config in configs:
            start(config, models, size, rate, count, out, env)
        print(f"==> soak: 1 camera and 4 cameras of {size[0]}x{size[1]} at {rate:g} Hz for {seconds:.0f} s, "
              f"a sample every {sample_s:g} s", flush=True)
        while any(p.poll() is None for c in configs for p in c.camera_procs):
            roles: Dict[str, float] = {}
            for config in configs:
                for role, pid in node_processes(config).items():
                    mb = process_rss_mb(pid)
                    if mb is not None:
                        roles[role] = mb
            entries, shm_mb = shm_rings([c.node.pid for c in configs])
            samples.append(Sample(time.monotonic() - started, roles, entries, shm_mb))
            if len(samples) % max(1, int(60 / sample_s)) == 1:
                total = sum(roles.values())
                print(f"  {samples[-1].seconds:6.0f} s: node processes {len(roles)}, RSS {total:.0f} MB in all, "
                      f"/dev/shm rings {entries} ({shm_mb:.1f} MB)", flush=True)
            time.sleep(sample_s)
        counts = {config.name: final_counts(config, count) for config in configs}
    finally:
        for config in configs:
            for proc in config.camera_procs:
                if proc.poll() is None:
                    proc.kill()
            if config.node is not None:
                config.node.stop()
            if config.listener is not None:
                config.listener.close()
    leftover = sorted(p.name for c in configs for p in SHM_DIR.glob(f"trtseg-{c.node.pid}-*"))
    setup = {"size": f"{size[0]}x{size[1]} rgb8", "rate": f"{rate:g} Hz per camera", "seconds": f"{seconds:g}",
             "model": "near-free (labels = one input channel), ONNX Runtime", "io_mode": "process (the default)",
             "machine": f"{cpu_model()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    results = {"setup": setup, "samples": [asdict(s) for s in samples], "counts": counts,
               "shm_left_after_stop": leftover}
    (out / "soak.json").write_text(json.dumps(results, indent=2))
    markdown = report_markdown(results)
    (out / "soak.md").write_text(markdown)
    plot(samples, out / "soak_rss.png", f"RSS of every node process, {setup['size']} at {setup['rate']}")
    print(markdown, flush=True)
    return results


def growth(samples: List[Dict[str, Any]], role: str, warmup_s: float) -> tuple:
    """(RSS after the warm-up, RSS at the end, end - after warm-up) of one process role, in MB."""
    series = [(s["seconds"], s["rss_mb"][role]) for s in samples if role in s["rss_mb"]]
    after = [mb for t, mb in series if t >= warmup_s] or [mb for _, mb in series]
    return after[0], after[-1], after[-1] - after[0]


def report_markdown(results: Dict[str, Any], warmup_s: float = 120.0) -> str:
    samples = results["samples"]
    roles = sorted({r for s in samples for r in s["rss_mb"]})
    lines = ["| setting | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in results["setup"].items()]
    lines += ["", f"RSS per node process (MB; the first {warmup_s:g} s are the warm-up):", "",
              "| process | after warm-up | at the end | growth | max |", "|---|---:|---:|---:|---:|"]
    for role in roles:
        first, last, grew = growth(samples, role, warmup_s)
        peak = max(s["rss_mb"][role] for s in samples if role in s["rss_mb"])
        lines.append(f"| {role} | {first:.1f} | {last:.1f} | {grew:+.1f} | {peak:.1f} |")
    shm = [(s["shm_entries"], s["shm_mb"]) for s in samples]
    lines += ["", f"/dev/shm rings of the nodes: {shm[0][0]} entries ({shm[0][1]:.1f} MB) at the first sample, "
              f"{shm[-1][0]} ({shm[-1][1]:.1f} MB) at the last, at most {max(e for e, _ in shm)}; left after the "
              f"nodes stopped: {len(results['shm_left_after_stop'])}", "",
              "| node | camera | sent | received | processed | dropped | failed | received = processed + dropped + "
              "failed | labels at the listener |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for node, cameras in results["counts"].items():
        for camera, v in cameras.items():
            exact = v["frames_received"] == v["frames_processed"] + v["frames_dropped"] + v["frames_failed"]
            lines.append(f"| {node} | {camera} | {v['sent']} | {v['frames_received']} | {v['frames_processed']} | "
                         f"{v['frames_dropped']} | {v['frames_failed']} | {'yes' if exact else 'NO'} | "
                         f"{v['labels_received']} |")
    return "\n".join(lines) + "\n"


def plot(samples: List[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roles = sorted({r for s in samples for r in s.rss_mb})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for role in roles:
        points = [(s.seconds / 60, s.rss_mb[role]) for s in samples if role in s.rss_mb]
        ax.plot([t for t, _ in points], [mb for _, mb in points], label=role, linewidth=1.2)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
