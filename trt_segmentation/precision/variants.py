"""One call per precision variant: FP32 export -> any :class:`~trt_segmentation.artifacts.Precision` ONNX.

Every variant keeps the exported contract (uint8 NHWC in, labels out, same names) and carries it with
``precision`` set, plus how it was calibrated, so an engine built from it (or ONNX Runtime running it) knows
what it is. FP16+Q/DQ graphs are marked ``ort_graph_optimization=disable``: ONNX Runtime's CPU optimiser
mis-fuses them (ONNX Runtime 1.31 CPU: 2-30 points of label agreement lost) and our ONNX Runtime backend honours
the mark. ``int8-cpu`` comes from ONNX Runtime's own quantizer (precision/int8_cpu.py) and records the CPU class
it was made for.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ENGINE_SET, CalibrationMethod, Precision, names
from ..errors import SegmentationError
from ..hashing import sha256_file
from ..onnx_metadata import ModelContract
from .calibration_data import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COUNT,
    DEFAULT_SELECTION,
    CalibrationDataError,
    CalibrationSet,
    CalibrationSource,
    parse_source,
)
from .mixed import MixedConfig, check_patterns_match, load_mixed_config

LOG = logging.getLogger(__name__)

VARIANTS = names()
ENGINE_PRECISIONS = names(ENGINE_SET)  # what `--precision all` builds (the launch switch)


class VariantError(ValueError, SegmentationError):
    """The variant cannot be made from this input (wrong file, precision, or missing calibration)."""


@dataclass
class VariantReport:
    variant: Precision
    path: Path
    seconds: float
    contract: ModelContract
    cache_status: str = "n/a"  # int8/mixed: hit | missing | stale | corrupt | disabled
    notes: list[str] = field(default_factory=list)


def needs_calibration(variant: Precision) -> bool:
    return variant.calibration is not None


def read_fp32_contract(fp32_onnx: str | Path) -> ModelContract:
    """The contract of the FP32 export ``fp32_onnx``, read without torch or the onnx package (a vehicle reads it)."""
    from ..onnx_metadata import read_contract

    path = Path(fp32_onnx)
    if not path.is_file():
        raise VariantError(f"FP32 ONNX not found: {path}")
    try:
        contract = read_contract(path)
    except ValueError as exc:
        raise VariantError(str(exc)) from exc
    if contract.precision != Precision.FP32:  # metadata text against the member (a str enum)
        raise VariantError(f"{path} is already the {contract.precision} variant; start from the FP32 export")
    if contract.input_format == "float_normalised":
        raise VariantError(f"{path} takes float input; export with --input-format uint8_rgb/uint8_bgr for deployment")
    return contract


def synthetic_frames(contract: ModelContract, count: int = 1, seed: int = 0) -> np.ndarray:
    """Deterministic noise frames, only for FP16's overflow check when no calibration images are given."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, contract.height, contract.width, 3), dtype=np.uint8)


def make_variant(
    fp32_onnx: str | Path,
    variant: Precision,
    out_path: str | Path,
    calibration: CalibrationSet | CalibrationSource | str | Path | None = None,
    *,
    calibration_count: int = DEFAULT_COUNT,
    calibration_batch: int = DEFAULT_BATCH_SIZE,
    calibration_selection: str = DEFAULT_SELECTION,
    calibration_seed: int = 0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    mixed_config: MixedConfig | str | Path | None = None,
    percentile: float | None = None,
    cpu_recipe: Any = None,
) -> VariantReport:
    """Write ``variant`` of ``fp32_onnx`` to ``out_path``. INT8 and mixed need ``calibration``: a loaded
    CalibrationSet (a build making several variants loads it once and passes it to each), a parsed
    CalibrationSource (read here with its own settings), or a source's text ``DIR`` | ``cityscapes:ROOT[@split]`` |
    ``bag:PATH[@/topic]`` read with the ``calibration_*`` settings. Calibration
    scales are cached in ``cache_dir`` (default: next to ``out_path``) as ``<out stem>.calib.json``.
    ``cpu_recipe``: int8-cpu only, an :class:`.int8_cpu.CpuRecipe` (default: the one for this machine's CPU)."""
    start = time.perf_counter()
    fp32_onnx, out_path = Path(fp32_onnx), Path(out_path)
    contract = read_fp32_contract(fp32_onnx)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if variant is Precision.FP32:  # the export itself, byte for byte (its hash keys the calibration caches)
        if out_path.resolve() != fp32_onnx.resolve():
            shutil.copyfile(fp32_onnx, out_path)
        return VariantReport(Precision.FP32, out_path, time.perf_counter() - start, contract)
    # below the FP32 copy: the export (torch) and ModelOpt are the build machine's; a vehicle makes fp32 only
    import onnx

    from ..export import set_contract
    from .fp16 import convert_fp16
    from .int8 import DEFAULT_PERCENTILE, Int8Options, quantize_int8

    if out_path.resolve() == fp32_onnx.resolve():
        raise VariantError(f"refusing to overwrite the FP32 input {fp32_onnx} with the {variant} variant")
    calib: CalibrationSet | None = None
    if isinstance(calibration, CalibrationSet):
        calib = calibration
    elif isinstance(calibration, CalibrationSource):
        calib = calibration.load(contract)  # the source carries its own count, batch, selection and seed
    elif calibration is not None:
        calib = parse_source(calibration, count=calibration_count, batch_size=calibration_batch,
                             selection=calibration_selection, seed=calibration_seed).load(contract)
    if needs_calibration(variant) and calib is None:
        raise CalibrationDataError(
            f"the {variant} variant needs calibration images: pass an image folder, cityscapes:ROOT[@split] "
            "or bag:PATH[@/topic] (tools/calibrate.py --calibration ...)"
        )
    extra: dict[str, str] = dict(contract.extra)
    cache_status = "n/a"
    notes: list[str] = []
    cache_path = (Path(cache_dir) if cache_dir else out_path.parent) / f"{out_path.stem}.calib.json"
    with tempfile.TemporaryDirectory(prefix="trtseg-variant-") as tmp:
        produced = Path(tmp) / "variant.onnx"
        if variant is Precision.FP16:
            frames = calib.frames[: contract.batch] if calib is not None else synthetic_frames(contract, contract.batch)
            convert_fp16(fp32_onnx, produced, frames)
        elif variant is Precision.INT8_CPU:
            from .int8_cpu import quantize_int8_cpu, recipe_for

            assert calib is not None
            recipe = cpu_recipe or recipe_for()
            result = quantize_int8_cpu(fp32_onnx, produced, calib, recipe, cache_path if use_cache else None)
            cache_status = result.cache_status
            notes.append(f"{result.quantized_nodes} Convs in INT8 for ONNX Runtime on {recipe.cpu_class} "
                         f"({recipe.activation} activations, reduce_range {recipe.reduce_range}), "
                         f"{len(result.scales)} activation ranges, cache {cache_status}")
            extra.update(recipe.contract_extra())
            extra.update(_calibration_extra(CalibrationMethod.MINMAX.value, calib))
        else:
            assert calib is not None and variant.calibration is not None
            method = variant.calibration.value
            if variant is Precision.MIXED:
                config = mixed_config if isinstance(mixed_config, MixedConfig) else load_mixed_config(mixed_config)
                names = [n.name for n in onnx.load(str(fp32_onnx), load_external_data=False).graph.node]
                for pattern in check_patterns_match(config, names):
                    LOG.warning("mixed-precision pattern %r matches no node of %s (typo?)", pattern, fp32_onnx)
                    notes.append(f"pattern {pattern!r} matched nothing")
                options = Int8Options(method=method, nodes_to_quantize=list(config.int8),
                                      nodes_to_exclude=list(config.exclude_int8))
            else:
                config = None
                options = Int8Options(method=method, percentile=percentile or DEFAULT_PERCENTILE)
            qdq = Path(tmp) / "qdq.onnx" if variant is Precision.MIXED else produced
            result = quantize_int8(fp32_onnx, qdq, calib, options, cache_path if use_cache else None)
            cache_status = result.cache_status
            notes.append(f"{result.quantized_nodes} Convs in INT8, {len(result.scales)} activation scales, "
                         f"cache {cache_status}")
            if variant is Precision.MIXED and config is not None:
                convert_fp16(qdq, produced, calib.frames[: contract.batch], keep_fp32=config.fp32)
                extra["ort_graph_optimization"] = "disable"  # fp16 + Q/DQ: ORT CPU mis-fuses it
            extra.update(_calibration_extra(method + (f" (p{options.percentile})" if method == "percentile" else ""),
                                            calib))
        model = onnx.load(str(produced))
    extra["source_onnx_sha256"] = sha256_file(fp32_onnx)
    new_contract = replace(contract, precision=variant.value, extra=extra)
    set_contract(model, new_contract)
    onnx.checker.check_model(model)
    tmp_out = out_path.with_name(out_path.name + ".tmp")
    onnx.save(model, str(tmp_out))
    tmp_out.replace(out_path)
    seconds = time.perf_counter() - start
    LOG.info("%s variant written to %s in %.1f s", variant, out_path, seconds)
    return VariantReport(variant, out_path, seconds, new_contract, cache_status, notes)


def _calibration_extra(method: str, calib: CalibrationSet) -> dict[str, str]:
    return {"calibration_method": method, "calibration_set": calib.description,
            "calibration_set_sha256": calib.sha256, "calibration_frames": str(len(calib))}
