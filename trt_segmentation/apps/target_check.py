"""The on-target check behind tools/check_on_target.py: build/load each precision's engine, run it on the CUDA
slots, compare its labels with ONNX Runtime on the ONNX it was built from, and report one pass/fail table.

Each precision is built from the folder of variants the way the installed TensorRT needs
(engine/on_target.py ``build_from_folder``): explicit from the variant ONNX where its parser takes it, implicit
(FP32 ONNX + builder flags, INT8 scales from the variant's own Q/DQ nodes as a calibration table, or TensorRT's
entropy calibrator over --calibration images) where it does not (mixed precision on TensorRT 8.5/8.6, INT8 on a
DLA core before TensorRT 10); with DLA cores present, fp16/int8/mixed also get a DLA row. A multi-camera batch-N
variant in the folder (``<model>_<H>x<W>_b<N>_<precision>.onnx``) gets a row of its own when it is small
(N x H x W <= MAX_BATCH_PIXELS), built the same way (implicit batch rows included): its engine's rows against ONNX
Runtime's on the same batch ONNX, and ONNX Runtime's batch rows against the batch-1 file's frames. An engine that
is there but does not fit (another TensorRT, GPU, Jetson module, or a changed ONNX) FAILs with the reason, or is
rebuilt from the variants beside it with ``rebuild`` (--rebuild); a failing build or run (a missing pycuda too)
FAILs its row, never the table. Each engine's INT8 layers are counted with TensorRT's engine inspector and printed:
that count is the guard against a TensorRT that ignored the calibration table and ran FP16 (an int8/mixed GPU row
with no INT8 layer FAILs; on a DLA row it is a note until the inspector's DLA output is known). Label agreement
cannot tell that case: an FP16 run agrees with FP32 and with the INT8 variant alike (~99.7 %, above the 0.98
threshold). An implicit int8/mixed row is also compared with ONNX Runtime on the variant whose scales it took, beside
the FP32 ONNX it was built from (:func:`judge`): its agreement with the calibrated variant. Each row also shows the engine's size and
the device memory of one execution context (from the loaded engine, else its sidecar): on a Jetson that is RAM,
once per in-flight slot. Builds started here take ``workspace_mib`` (None: 1 GiB on a Jetson).

On a machine without TensorRT (CI, a laptop) it does everything up to that point (ONNX Runtime reference run, the
TensorRT-RTX parse/build check where installed) and then says exactly what needs the target. No torch, onnx or
rclpy: runs on a Jetson with TensorRT, pycuda, numpy, onnxruntime and Pillow.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ArtifactFolder, BuilderKind, Precision, artifact_path
from ..errors import MissingFile
from ..image_codec import reorder_channels
from ..runtime.backend import Backend, BackendError, InferenceResult

# minimum share of pixels whose TensorRT label equals ONNX Runtime's on the same ONNX variant
#: keyed by Precision.family (every INT8 variant shares int8's)
DEFAULT_MIN_AGREEMENT = {Precision.FP32: 0.999, Precision.FP16: 0.995, Precision.INT8: 0.98, Precision.MIXED: 0.98}
NEEDS_TARGET = "TensorRT needed"
#: a batch-N variant is checked on the target when N frames of H x W are at most this many pixels (4 frames of
#: 512x1024): its engine builds in minutes on a Jetson, a larger one is left to tools/build_engine.py
MAX_BATCH_PIXELS = 4 * 512 * 1024


@dataclass
class CheckRow:
    precision: Precision
    status: str  # PASS | FAIL | MISSING | NEEDS-TENSORRT | SKIPPED (not checked here, by design)
    path: str = "explicit"  # explicit | implicit | dla<N> (the way this TensorRT builds it)
    onnx: str = ""
    engine: str = ""
    agreement: float | None = None  # TensorRT vs ONNX Runtime, same ONNX, worst image
    agreement_fp32: float | None = None  # TensorRT vs the fp32 ONNX Runtime reference, mean
    tensorrt_gpu_ms: float | None = None  # median of the CUDA-event inference time
    ort_ms: float | None = None  # median ONNX Runtime time per image on this machine
    notes: list[str] = field(default_factory=list)
    batch: int = 1  # frames per run of the checked variant
    int8_layers: int | None = None  # layers with INT8 tensors, from TensorRT's engine inspector (None: not reported)
    agreement_variant: float | None = None  # implicit rows: TensorRT vs ONNX Runtime on the variant, worst image
    engine_bytes: int | None = None  # the serialized engine's size
    device_memory_bytes: int | None = None  # one execution context's device memory (activations, tactic scratch)


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
            raise MissingFile(f"no .png/.jpg images in {folder}")
        return [np.asarray(Image.open(p).convert("RGB").resize((width, height), bilinear)) for p in files]
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        coarse = rng.integers(0, 256, (height // 32 + 1, width // 32 + 1, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), bilinear)).astype(np.int16)
        images.append(np.clip(smooth + rng.integers(-10, 11, smooth.shape), 0, 255).astype(np.uint8))
    return images


def _ort_labels(onnx: Path, images: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    with OnnxRuntimeBackend(onnx) as backend:
        order = backend.contract.channel_order
        labels, times = [], []
        for rgb in images:
            t0 = time.perf_counter()
            labels.append(backend.infer(np.ascontiguousarray(reorder_channels(rgb, order))).labels)
            times.append((time.perf_counter() - t0) * 1e3)
    return labels, float(np.median(times))


def _inspect(row: CheckRow | None, backend: Any) -> None:
    """``row.int8_layers`` from the loaded engine's inspector and ``row.device_memory_bytes`` from the engine itself
    (engine/tensorrt_adapter.py int8_layer_count, device_memory_size)."""
    from ..engine.tensorrt_adapter import device_memory_size, int8_layer_count, real_tensorrt

    trt = real_tensorrt(need="Runtime")
    if row is not None and trt is not None:
        row.int8_layers = int8_layer_count(backend.engine, trt)
        row.device_memory_bytes = device_memory_size(backend.engine)


def _recorded_memory(row: CheckRow, engine: Path) -> None:
    """``row``'s engine size (the file's) and device memory per context (its sidecar's, where recorded)."""
    from ..engine.metadata import MetadataError, read_metadata

    row.engine_bytes = engine.stat().st_size if engine.is_file() else None
    try:
        row.device_memory_bytes = read_metadata(engine).device_memory_bytes
    except MetadataError:
        pass


def _tensorrt_labels(engine: Path, precision: Precision, images: list[np.ndarray], device: int = 0,
                     row: CheckRow | None = None) -> tuple[list[np.ndarray], float]:
    from ..runtime.tensorrt_backend import TensorRtBackend

    with TensorRtBackend(engine, slots=2, device=device, precision=precision) as backend:  # hashes the build's source ONNX
        _inspect(row, backend)
        order = backend.contract.channel_order
        frames = [reorder_channels(rgb, order) for rgb in images]
        backend.infer(frames[0])  # warm-up
        results = _in_flight(backend, backend.submit, frames)  # two frames in flight, as the node runs them
    return [r.labels for r in results], float(np.median([r.timings_ms["inference"] for r in results]))


def _in_flight(backend: Backend, submit: Callable[[Any, int], None], items: Sequence[Any]) -> list[InferenceResult]:
    """The results of ``submit(item, index)`` for each of ``items``, in order, collecting the oldest only when
    ``backend.max_in_flight`` are in flight (so that many run at a time)."""
    results = []
    for i, item in enumerate(items):
        if backend.in_flight == backend.max_in_flight:
            results.append(backend.collect())
        submit(item, i)
    while backend.in_flight:
        results.append(backend.collect())
    results.sort(key=lambda item: item[0])
    return [result for _, result in results]


def batches(images: list[np.ndarray], batch: int) -> list[list[np.ndarray]]:
    """``images`` in groups of ``batch`` (at least one group; the last filled up from the start)."""
    count = max(1, -(-len(images) // batch))
    return [[images[(g * batch + i) % len(images)] for i in range(batch)] for g in range(count)]


def _in_order(rgb: list[np.ndarray], order: str) -> list[np.ndarray]:
    return [np.ascontiguousarray(reorder_channels(rgb_frame, order)) for rgb_frame in rgb]


def _ort_batch_labels(onnx: Path, groups: list[list[np.ndarray]]) -> tuple[list[np.ndarray], float]:
    """ONNX Runtime's labels of every row of ``groups`` on a batch-N ONNX, and its median ms per batch."""
    from ..runtime.onnxruntime_backend import OnnxRuntimeBackend

    with OnnxRuntimeBackend(onnx) as backend:
        labels: list[np.ndarray] = []
        times: list[float] = []
        for group in groups:
            t0 = time.perf_counter()
            labels.extend(backend.infer_batch(_in_order(group, backend.contract.channel_order)).labels)
            times.append((time.perf_counter() - t0) * 1e3)
    return labels, float(np.median(times))


def _tensorrt_batch_labels(engine: Path, precision: Precision, groups: list[list[np.ndarray]], device: int = 0,
                           row: CheckRow | None = None) -> tuple[list[np.ndarray], float]:
    from ..runtime.tensorrt_backend import TensorRtBackend

    with TensorRtBackend(engine, slots=2, device=device, precision=precision) as backend:
        _inspect(row, backend)
        ordered = [_in_order(group, backend.contract.channel_order) for group in groups]
        backend.infer_batch(ordered[0])  # warm-up
        # two batches in flight, as the multi-camera node runs them
        results = _in_flight(backend, backend.submit_batch, ordered)
    labels = [row for result in results for row in result.labels]
    return labels, float(np.median([r.timings_ms["inference"] for r in results]))


def batch_variants(engine_dir: Path, model: str, height: int, width: int, precision: Precision) -> list[int]:
    """The batches N > 1 of the ``<model>_<H>x<W>_b<N>_<precision>.onnx`` files in ``engine_dir``."""
    return [b for b in ArtifactFolder(engine_dir).batches(model, (height, width), precision) if b > 1]


def _build(row: CheckRow, build: Callable[[], object]) -> bool:
    """Run ``build`` (an engine build); False, with ``row`` FAILed and why, when it fails in any way (TensorRT, a
    missing file, pycuda or a CUDA device missing for the calibrator): one row fails, the table goes on."""
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - every failure of one build ends that row only
        row.status = "FAIL"
        row.notes.append(f"engine build failed: {type(exc).__name__}: {exc}")
        return False
    return True


def prepare_engine(row: CheckRow, engine: Path, precision: Precision, *, build: bool, rebuild: bool, device: int = 0,
                   calibration: str | None = None, implicit_calibration: str | None = None,
                   workspace_mib: int | None = None, log: Any = print) -> bool:
    """Make ``engine`` ready for the row: build it when missing (or always with ``build``; builder workspace
    ``workspace_mib``, build_request.workspace_limit_mib); an existing one that does not fit this machine is rebuilt
    from the variants beside it with ``rebuild``, else the row FAILs naming why and the command. False when the row
    is decided (FAIL). The row gets the engine's size and recorded device memory."""
    from ..engine.on_target import build_from_folder, fit_problems, rebuild_from_name

    label = row.precision if row.batch == 1 else f"{row.precision} b{row.batch}"
    if engine.is_file() and not build:
        problems = fit_problems(engine, precision, device=device)
        if not problems:
            _recorded_memory(row, engine)
            return True
        if not rebuild:
            row.status = "FAIL"
            row.notes.append(f"{engine.name} does not fit this machine: {'; '.join(problems)}; rebuild it with "
                             f"--rebuild, or {rebuild_from_name(engine)}")
            return False
        log(f"[{label}] rebuilding {engine}: {'; '.join(problems)}")
    else:
        log(f"[{label}] building {engine} ({row.path}; minutes on a Jetson)")
    method = implicit_calibration or ("tensorrt-entropy" if calibration else None)
    built = _build(row, lambda: build_from_folder(engine, precision, calibration=calibration,
                                                  implicit_calibration=method, device=device,
                                                  workspace_mib=workspace_mib,
                                                  progress=lambda text: log(f"[{label}] build: {text}")))
    if built:
        _recorded_memory(row, engine)
    return built


def _compare(row: CheckRow, run: Callable[[], tuple[list[np.ndarray], float]], ort_labels: list[np.ndarray],
             min_agreement: float, reference_fp32: list[np.ndarray] | None = None, note: str = "",
             variant: tuple[str, list[np.ndarray]] | None = None) -> CheckRow:
    """``row`` with the TensorRT labels ``run`` returns (and its GPU ms) judged by :func:`judge`; FAIL with the
    backend's error when running fails."""
    try:
        trt_labels, row.tensorrt_gpu_ms = run()
    except Exception as exc:  # noqa: BLE001 - BackendError, a missing pycuda, a CUDA error: this row fails only
        row.status = "FAIL"
        row.notes.append(str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}")
        return row
    return judge(row, trt_labels, ort_labels, min_agreement, reference_fp32, note, variant)


def _worst(labels: list[np.ndarray], reference: list[np.ndarray]) -> float:
    return min(float(np.mean(a == b)) for a, b in zip(labels, reference))


def judge(row: CheckRow, trt_labels: list[np.ndarray], ort_labels: list[np.ndarray], min_agreement: float,
          reference_fp32: list[np.ndarray] | None = None, note: str = "",
          variant: tuple[str, list[np.ndarray]] | None = None) -> CheckRow:
    """PASS when the worst image of ``trt_labels`` agrees with ONNX Runtime's ``ort_labels`` (same ONNX) on at least
    ``min_agreement`` of its pixels, else FAIL (``note`` ends the reason). ``reference_fp32``: also the mean
    agreement with those labels. ``variant`` (name, ONNX Runtime labels): an implicit row, built from the FP32 ONNX
    with the variant's scales, must agree as well with the calibrated variant it takes its INT8 scales from (an
    FP16 run would too: this is not the guard against an ignored table). An INT8 precision whose engine has no INT8
    layer (``row.int8_layers`` 0, from the engine inspector) FAILs: TensorRT ran it without INT8, e.g. after ignoring
    its calibration table, which label agreement alone would not show. On a DLA row (``row.path`` ``dla<N>``) 0 is a
    note, not a FAIL: the inspector probably shows the DLA part as one foreign-node layer without INT8 formats (not
    yet checked on a Jetson)."""
    row.agreement = _worst(trt_labels, ort_labels)
    if reference_fp32 is not None:
        row.agreement_fp32 = float(np.mean([np.mean(a == b) for a, b in zip(trt_labels, reference_fp32)]))
    reasons = []
    if row.agreement < min_agreement:
        reasons.append(f"agreement {row.agreement:.4%} < {min_agreement:.2%}{note}")
    if variant is not None:
        row.agreement_variant = _worst(trt_labels, variant[1])
        row.notes.append(f"TensorRT vs ONNX Runtime on {variant[0]} (the variant whose scales it took): "
                         f"{row.agreement_variant:.4%} (worst image)")
        if row.agreement_variant < min_agreement:
            reasons.append(f"agreement with {variant[0]} {row.agreement_variant:.4%} < {min_agreement:.2%}")
    if row.precision.uses_int8:
        if row.int8_layers == 0 and row.path.startswith("dla"):
            row.notes.append("INT8 layers: 0 reported, not judged on DLA (TensorRT's engine inspector probably shows "
                             "the DLA part as one foreign-node layer without INT8 formats; unchecked on a Jetson)")
        elif row.int8_layers == 0:
            reasons.append("the engine has no INT8 layer (TensorRT's engine inspector): it runs without INT8, e.g. "
                           "because TensorRT did not take its calibration table; rebuild it with --verbose and read "
                           "the TensorRT log")
        elif row.int8_layers is None:
            row.notes.append("INT8 layers: not reported (this TensorRT has no engine inspector, or the engine was "
                             "built without detailed profiling verbosity)")
    row.status = "FAIL" if reasons else "PASS"
    row.notes.extend(reasons)
    return row


def check_batch(engine_dir: Path, model: str, height: int, width: int, precision: Precision, batch: int,
                images: list[np.ndarray], *, build: bool, min_agreement: float, log: Any = print,
                rebuild: bool = False, device: int = 0, calibration: str | None = None,
                implicit_calibration: str | None = None, workspace_mib: int | None = None) -> CheckRow:
    """The row of a batch-N variant: ONNX Runtime's rows on the batch ONNX equal the batch-1 file's frames (noted),
    and, with TensorRT, the batch-N engine (built from that ONNX, explicit path) agrees with them."""
    from ..engine.builder import build_path
    from ..engine.tensorrt_adapter import real_tensorrt

    onnx = artifact_path(engine_dir, model, height, width, precision, ".onnx", batch=batch)
    engine = artifact_path(engine_dir, model, height, width, precision, ".engine", batch=batch)
    row = CheckRow(precision, "MISSING", f"b{batch}", str(onnx), str(engine), batch=batch)
    if not onnx.is_file():
        row.notes.append(f"{onnx.name} is missing")
        return row
    groups = batches(images, batch)
    frames = [frame for group in groups for frame in group]
    log(f"[{precision} b{batch}] ONNX Runtime reference on {len(groups)} batches of {batch}: {onnx}")
    ort_labels, row.ort_ms = _ort_batch_labels(onnx, groups)
    single = artifact_path(engine_dir, model, height, width, precision, ".onnx")
    if single.is_file():
        single_labels = _ort_labels(single, frames)[0]
        same = min(float(np.mean(a == b)) for a, b in zip(ort_labels, single_labels))
        row.notes.append(f"ONNX Runtime batch rows vs {single.name} frame by frame: {same:.4%} equal (worst row)")
    trt = real_tensorrt()
    if trt is None:
        row.status = "NEEDS-TENSORRT"
        row.notes.append(f"ONNX Runtime batch reference ran ({row.ort_ms:.0f} ms/batch); building and running "
                         f"{engine.name} needs TensorRT >= 8.5 + pycuda on the target")
        return row
    row.path = f"b{batch} {build_path(trt, precision, onnx)}"
    if not prepare_engine(row, engine, precision, build=build, rebuild=rebuild, device=device,
                          calibration=calibration, implicit_calibration=implicit_calibration,
                          workspace_mib=workspace_mib, log=log):
        return row
    return _compare(row, lambda: _tensorrt_batch_labels(engine, precision, groups, device, row), ort_labels,
                    min_agreement, note=" (worst row)")


def check_precision(engine_dir: Path, model: str, height: int, width: int, precision: Precision,
                    images: list[np.ndarray], reference_fp32: list[np.ndarray] | None, *, build: bool, min_agreement: float,
                    parse_check: bool = True, calibration: str | None = None, dla_core: int = -1,
                    log: Any = print, rebuild: bool = False, device: int = 0,
                    implicit_calibration: str | None = None, workspace_mib: int | None = None) -> CheckRow:
    """One row of the table (see the module docstring)."""
    from ..engine.builder import build_path, explicit_path_problem
    from ..engine.metadata import MetadataError, build_hint, read_metadata, source_onnx_path
    from ..engine.parser_support import GENERATIONS
    from ..engine.tensorrt_adapter import real_tensorrt
    from ..onnx_metadata import read_onnx_opset

    variant = artifact_path(engine_dir, model, height, width, precision, ".onnx")
    fp32 = artifact_path(engine_dir, model, height, width, Precision.FP32, ".onnx")
    engine = ArtifactFolder(engine_dir).path(model, height, width, precision, ".engine", dla_core=dla_core)
    trt = real_tensorrt()
    path = build_path(trt, precision, variant, dla_core=dla_core) if trt is not None else BuilderKind.EXPLICIT
    onnx = fp32 if path is BuilderKind.IMPLICIT else variant
    if engine.is_file() and not build:  # an existing engine is compared on the ONNX its sidecar names
        try:
            meta = read_metadata(engine)
            onnx = source_onnx_path(engine, meta)
            path = BuilderKind.IMPLICIT if meta.typing == "implicit" else path
        except MetadataError:
            pass
    row = CheckRow(precision, "MISSING", f"dla{dla_core}" if dla_core >= 0 else path.value, str(onnx), str(engine))
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
    own: tuple[str, list[np.ndarray]] | None = None
    if path is BuilderKind.IMPLICIT and onnx == fp32:
        row.notes.append(f"implicit: {explicit_path_problem(trt, variant) or 'no variant ONNX'}".split(";")[0])
        if precision.uses_int8 and variant.is_file():  # its INT8 must show against the variant, not only FP32
            log(f"[{precision}] ONNX Runtime on the variant whose scales the implicit engine takes: {variant}")
            own = (variant.name, _ort_labels(variant, images)[0])
    if not prepare_engine(row, engine, precision, build=build, rebuild=rebuild, device=device,
                          calibration=calibration, implicit_calibration=implicit_calibration,
                          workspace_mib=workspace_mib, log=log):
        return row
    return _compare(row, lambda: _tensorrt_labels(engine, precision, images, device, row), ort_labels, min_agreement,
                    reference_fp32=reference_fp32, variant=own)


def dla_cores() -> int:
    """DLA cores the installed TensorRT reports (0 without TensorRT or on a GPU without DLA, e.g. Orin Nano)."""
    from ..engine.tensorrt_adapter import real_tensorrt

    trt = real_tensorrt()
    if trt is None:
        return 0
    builder = trt.module.Builder(trt.module.Logger(trt.module.Logger.ERROR))
    return int(getattr(builder, "num_DLA_cores", 0))


def run_checks(engine_dir: Path, model: str, height: int, width: int, precisions: list[Precision], *, images: int = 8,
               image_dir: Path | None = None, build: bool = False,
               min_agreement: dict[Precision, float] | None = None,
               calibration: str | None = None, dla: bool = True, log: Any = print, rebuild: bool = False,
               device: int = 0, implicit_calibration: str | None = None,
               workspace_mib: int | None = None) -> list[CheckRow]:
    """Every precision the way this TensorRT builds it, plus DLA rows (fp16/int8/mixed) where DLA cores exist;
    engines built here with the builder workspace ``workspace_mib`` (build_request.workspace_limit_mib)."""
    thresholds = {**DEFAULT_MIN_AGREEMENT, **(min_agreement or {})}
    frames = sample_images(images, height, width, image_dir)
    fp32_onnx = artifact_path(engine_dir, model, height, width, Precision.FP32, ".onnx")
    reference = _ort_labels(fp32_onnx, frames)[0] if fp32_onnx.is_file() else None
    cores = dla_cores() if dla else 0
    rows = []
    for precision in precisions:
        base = precision.family
        for core in [-1] + ([0] if cores and base is not Precision.FP32 else []):  # DLA runs FP16/INT8 only
            rows.append(check_precision(engine_dir, model, height, width, precision, frames, reference, build=build,
                                        min_agreement=thresholds[base], calibration=calibration, dla_core=core,
                                        log=log, rebuild=rebuild, device=device,
                                        implicit_calibration=implicit_calibration, workspace_mib=workspace_mib))
        for batch in batch_variants(engine_dir, model, height, width, precision):
            if batch * height * width > MAX_BATCH_PIXELS:
                log(f"[{precision} b{batch}] not checked: {batch} x {height}x{width} is more than "
                    f"{MAX_BATCH_PIXELS} pixels per run")
                continue
            rows.append(check_batch(engine_dir, model, height, width, precision, batch, frames, build=build,
                                    min_agreement=thresholds[base], log=log, rebuild=rebuild, device=device,
                                    calibration=calibration, implicit_calibration=implicit_calibration,
                                    workspace_mib=workspace_mib))
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mib(size: int | None) -> str:
    from ..engine.metadata import mib

    return "-" if size is None else mib(size)


def format_table(rows: list[CheckRow]) -> str:
    """The pass/fail table, each row's notes under it. ``engine MiB``: the serialized engine; ``MiB/context``: the
    device memory of one execution context (the check and the node run two, one per in-flight slot)."""
    header = ("precision", "result", "path", "TRT vs ORT (same ONNX)", "TRT vs fp32", "INT8 layers", "TRT GPU ms",
              "ORT ms", "engine MiB", "MiB/context", "engine")
    body = [(r.precision, r.status, r.path, _pct(r.agreement), _pct(r.agreement_fp32),
             "-" if r.int8_layers is None else r.int8_layers, _ms(r.tensorrt_gpu_ms), _ms(r.ort_ms),
             _mib(r.engine_bytes), _mib(r.device_memory_bytes), Path(r.engine).name) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [" | ".join(str(v).ljust(w) for v, w in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    for r in rows:
        label = r.precision if r.batch == 1 else f"{r.precision} b{r.batch}"
        lines.extend(f"  {label}: {note}" for note in r.notes)
    return "\n".join(lines)


def exit_code(rows: list[CheckRow]) -> int:
    """0 all PASS (SKIPPED rows aside, at least one PASS), 1 a FAIL, 2 incomplete (files missing or TensorRT
    needed)."""
    if any(r.status == "FAIL" for r in rows):
        return 1
    passed = any(r.status == "PASS" for r in rows)
    return 0 if passed and all(r.status in ("PASS", "SKIPPED") for r in rows) else 2


__all__ = ["CheckRow", "DEFAULT_MIN_AGREEMENT", "MAX_BATCH_PIXELS", "batch_variants", "batches", "check_batch",
           "check_precision", "dla_cores", "environment", "exit_code", "format_table", "judge", "prepare_engine",
           "run_checks", "sample_images"]
