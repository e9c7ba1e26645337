"""The on-target check behind tools/check_on_target.py: build/load each precision's engine, run it on the CUDA
slots, compare its labels with ONNX Runtime on the ONNX it was built from, and report one pass/fail table.

Each precision is built the way the installed TensorRT needs (engine/builder.py ``build_path``): explicit from
the variant ONNX where its parser takes it, implicit (FP32 ONNX + builder flags + entropy calibrator) where it
does not (mixed precision on TensorRT 8.5/8.6); with DLA cores present, fp16/int8/mixed also get a DLA row.

On a machine without TensorRT (CI, a laptop) it does everything up to that point (ONNX Runtime reference run, the
TensorRT-RTX parse/build check where installed) and then says exactly what needs the target. No torch, onnx or
rclpy: runs on a Jetson with TensorRT, pycuda, numpy, onnxruntime and Pillow.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import artifact_path, check_variant
from .backend import BackendError

# minimum share of pixels whose TensorRT label equals ONNX Runtime's on the same ONNX variant
DEFAULT_MIN_AGREEMENT = {"fp32": 0.999, "fp16": 0.995, "int8": 0.98, "mixed": 0.98}
NEEDS_TARGET = "TensorRT needed"


@dataclass
class CheckRow:
    precision: str
    status: str  # PASS | FAIL | MISSING | NEEDS-TENSORRT
    path: str = "explicit"  # explicit | implicit | dla<N> (the way this TensorRT builds it)
    onnx: str = ""
    engine: str = ""
    agreement: float | None = None  # TensorRT vs ONNX Runtime, same ONNX, worst image
    agreement_fp32: float | None = None  # TensorRT vs the fp32 ONNX Runtime reference, mean
    tensorrt_gpu_ms: float | None = None  # median of the CUDA-event inference time
    ort_ms: float | None = None  # median ONNX Runtime time per image on this machine
    notes: list[str] = field(default_factory=list)


def environment() -> dict[str, str]:
    """What this machine offers for the check."""
    from ..engine.tensorrt_adapter import gpu_identity, real_tensorrt, tensorrt_rtx

    info = {"python": sys.version.split()[0], "machine": platform.machine(), "numpy": np.__version__}
    model_file = Path("/proc/device-tree/model")
    info["jetson"] = model_file.read_text(errors="replace").strip("\x00\n ") if model_file.is_file() else "no"
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = "missing"
    trt = real_tensorrt()
    info["tensorrt"] = trt.version if trt else "missing"
    rtx = tensorrt_rtx()
    info["tensorrt_rtx"] = rtx.version if rtx else "missing"
    try:
        import pycuda  # type: ignore[import-not-found, unused-ignore]

        info["pycuda"] = ".".join(map(str, pycuda.VERSION))
    except ImportError:
        info["pycuda"] = "missing"
    name, capability = gpu_identity()
    info["gpu"] = f"{name} (compute {capability})" if name != "none" else "none"
    return info


def sample_images(count: int, height: int, width: int, folder: Path | None = None, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB images: from ``folder`` (png/jpg, any size) or smooth synthetic street-like colour fields."""
    from PIL import Image

    from ..image_codec import pil_filter

    bilinear = pil_filter("BILINEAR")
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[:count]
        if not files:
            raise FileNotFoundError(f"no .png/.jpg images in {folder}")
        return [np.asarray(Image.open(p).convert("RGB").resize((width, height), bilinear)) for p in files]
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), bilinear)).astype(np.int16)
        images.append(np.clip(smooth + rng.integers(-10, 11, smooth.shape), 0, 255).astype(np.uint8))
    return images


def _ort_labels(onnx: Path, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    from .onnxruntime_backend import OnnxRuntimeBackend

    with OnnxRuntimeBackend(onnx) as backend:
        order = backend.contract.channel_order
        labels, times = [], []
        for rgb in images:
            t0 = time.perf_counter()
            labels.append(backend.infer(np.ascontiguousarray(rgb if order == "rgb" else rgb[..., ::-1])).labels)
            times.append((time.perf_counter() - t0) * 1e3)
    return labels, float(np.median(times))


def _tensorrt_labels(engine: Path, precision: str, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    from .tensorrt_backend import TensorRtBackend

    with TensorRtBackend(engine, slots=2, precision=precision) as backend:  # hashes the build's source ONNX
        order = backend.contract.channel_order
        frames = [rgb if order == "rgb" else rgb[..., ::-1] for rgb in images]
        backend.infer(frames[0])  # warm-up
        results = []
        for i, frame in enumerate(frames):  # two frames in flight, as the node runs them
            if backend.in_flight == backend.max_in_flight:
                results.append(backend.collect())
            backend.submit(frame, i)
        while backend.in_flight:
            results.append(backend.collect())
    results.sort(key=lambda item: item[0])
    return [r.labels for _, r in results], float(np.median([r.timings_ms["inference"] for _, r in results]))


def check_precision(engine_dir: Path, model: str, height: int, width: int, precision: str, images: list[np.ndarray],
                    reference_fp32: list[np.ndarray] | None, *, build: bool, min_agreement: float,
                    parse_check: bool = True, calibration: str | None = None, dla_core: int = -1,
                    log: Any = print) -> CheckRow:
    """One row of the table (see the module docstring)."""
    from ..engine.builder import build_path, explicit_path_problem
    from ..engine.metadata import MetadataError, build_hint, read_metadata, source_onnx_path
    from ..engine.parser_support import GENERATIONS
    from ..engine.tensorrt_adapter import real_tensorrt
    from ..onnx_metadata import read_onnx_opset

    precision = check_variant(precision)
    variant = artifact_path(engine_dir, model, height, width, precision, ".onnx")
    fp32 = artifact_path(engine_dir, model, height, width, "fp32", ".onnx")
    engine = artifact_path(engine_dir, model, height, width, precision, ".engine")
    if dla_core >= 0:
        engine = engine.with_name(engine.name.replace(".engine", f".dla{dla_core}.engine"))
    trt = real_tensorrt()
    path = build_path(trt, precision, variant) if trt is not None else "explicit"
    onnx = fp32 if path == "implicit" else variant
    if engine.is_file() and not build:  # an existing engine is compared on the ONNX its sidecar names
        try:
            meta = read_metadata(engine)
            onnx = source_onnx_path(engine, meta)
            path = "implicit" if meta.typing == "implicit" else path
        except MetadataError:
            pass
    row = CheckRow(precision, "MISSING", f"dla{dla_core}" if dla_core >= 0 else path, str(onnx), str(engine))
    if not onnx.is_file():
        hint = build_hint(model, (height, width), precision, engine_dir)
        row.notes.append(f"{onnx.name} is missing; make it with: {hint}")
        return row
    log(f"[{precision}] ONNX Runtime reference on {len(images)} images: {onnx}")
    ort_labels, row.ort_ms = _ort_labels(onnx, images)
    if trt is None:
        row.status = "NEEDS-TENSORRT"
        row.notes.append(f"ONNX Runtime reference ran ({row.ort_ms:.0f} ms/image); building and running "
                         f"{engine.name} and comparing needs TensorRT >= 8.5 + pycuda on the target")
        opset = read_onnx_opset(onnx)
        row.notes.append("path per TensorRT: " + ", ".join(
            f"{g} {'explicit' if opset <= f.max_opset else 'implicit'}" for g, f in GENERATIONS.items())
            + f" (variant opset {opset})")
        if parse_check:
            from ..engine.tensorrt_adapter import TensorRTUnavailable
            from ..engine.tensorrt_parse_check import check_onnx

            try:
                report = check_onnx(onnx, build=True)
                row.notes.append("TensorRT-RTX parse+build here: " + ("ok" if report.ok else report.summary()))
            except TensorRTUnavailable as exc:
                row.notes.append(f"no TensorRT-RTX parse check ({exc})")
        return row
    if path == "implicit" and onnx == fp32:
        row.notes.append(f"implicit: {explicit_path_problem(trt, variant) or 'no variant ONNX'}".split(";")[0])
    if build or not engine.is_file():
        from ..engine.builder import build_engine
        from ..engine.tensorrt_adapter import BuildError, TensorRTUnavailable

        if path == "implicit" and precision in ("int8", "mixed") and calibration is None:
            row.status = "FAIL"
            row.notes.append(f"TensorRT {trt.version} builds {precision} the implicit way: pass --calibration")
            return row
        log(f"[{precision}] building {engine} ({row.path}; minutes on a Jetson)")
        try:
            build_engine(onnx, engine, precision, calibration if path == "implicit" else None,
                         implicit=path == "implicit", dla_core=dla_core,
                         progress=lambda text: log(f"[{precision}] build: {text}"))
        except (BuildError, TensorRTUnavailable, ValueError) as exc:
            row.status = "FAIL"
            row.notes.append(f"engine build failed: {exc}")
            return row
    try:
        trt_labels, row.tensorrt_gpu_ms = _tensorrt_labels(engine, precision, images)
    except BackendError as exc:
        row.status = "FAIL"
        row.notes.append(str(exc))
        return row
    row.agreement = min(float(np.mean(a == b)) for a, b in zip(trt_labels, ort_labels))
    if reference_fp32 is not None:
        row.agreement_fp32 = float(np.mean([np.mean(a == b) for a, b in zip(trt_labels, reference_fp32)]))
    row.status = "PASS" if row.agreement >= min_agreement else "FAIL"
    if row.status == "FAIL":
        row.notes.append(f"agreement {row.agreement:.4%} < {min_agreement:.2%}")
    return row


def dla_cores() -> int:
    """DLA cores the installed TensorRT reports (0 without TensorRT or on a GPU without DLA, e.g. Orin Nano)."""
    from ..engine.tensorrt_adapter import real_tensorrt

    trt = real_tensorrt()
    if trt is None:
        return 0
    builder = trt.module.Builder(trt.module.Logger(trt.module.Logger.ERROR))
    return int(getattr(builder, "num_DLA_cores", 0))


def run_checks(engine_dir: Path, model: str, height: int, width: int, precisions: list[str], *, images: int = 8,
               image_dir: Path | None = None, build: bool = False, min_agreement: dict[str, float] | None = None,
               calibration: str | None = None, dla: bool = True, log: Any = print) -> list[CheckRow]:
    """Every precision the way this TensorRT builds it, plus DLA rows (fp16/int8/mixed) where DLA cores exist."""
    thresholds = dict(DEFAULT_MIN_AGREEMENT, **(min_agreement or {}))
    frames = sample_images(images, height, width, image_dir)
    fp32_onnx = artifact_path(engine_dir, model, height, width, "fp32", ".onnx")
    reference = _ort_labels(fp32_onnx, frames)[0] if fp32_onnx.is_file() else None
    cores = dla_cores() if dla else 0
    rows = []
    for precision in precisions:
        base = check_variant(precision).split("-")[0]
        for core in [-1] + ([0] if cores and base != "fp32" else []):  # DLA runs FP16/INT8 only
            rows.append(check_precision(engine_dir, model, height, width, precision, frames, reference, build=build,
                                        min_agreement=thresholds[base], calibration=calibration, dla_core=core,
                                        log=log))
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_table(rows: list[CheckRow]) -> str:
    header = ("precision", "result", "path", "TRT vs ORT (same ONNX)", "TRT vs fp32", "TRT GPU ms", "ORT ms", "engine")
    body = [(r.precision, r.status, r.path, _pct(r.agreement), _pct(r.agreement_fp32), _ms(r.tensorrt_gpu_ms), _ms(r.ort_ms),
             Path(r.engine).name) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(str(v).ljust(w) for v, w in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    for r in rows:
        lines.extend(f"  {r.precision}: {note}" for note in r.notes)
    return "\n".join(lines)


def exit_code(rows: list[CheckRow]) -> int:
    """0 all PASS, 1 a FAIL, 2 incomplete (files missing or TensorRT needed)."""
    if any(r.status == "FAIL" for r in rows):
        return 1
    return 0 if rows and all(r.status == "PASS" for r in rows) else 2


__all__ = ["CheckRow", "DEFAULT_MIN_AGREEMENT", "check_precision", "dla_cores", "environment", "exit_code", "format_table",
           "run_checks", "sample_images"]
