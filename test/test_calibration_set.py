"""A calibration source is parsed once into a CalibrationSource (issue 20): each accepted spelling -> its typed
value, a bad one -> today's message; and a build of several calibrated precisions reads the frames once (counted
by the loader's own log line on a real folder of images, with a real pipeline run)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trt_segmentation.artifacts import Precision
from trt_segmentation.precision.calibration_data import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_COUNT,
    CalibrationDataError,
    CalibrationSource,
    parse_source,
)

H, W, SEED = 64, 128, 5


@pytest.mark.parametrize(("text", "kind", "path", "selector"), [
    ("data/frames", "folder", "data/frames", None),
    ("folder:data/frames", "folder", "data/frames", None),
    ("folder:data/a@b", "folder", "data/a@b", None),  # a folder's name may hold an @
    ("cityscapes:data/street", "cityscapes", "data/street", "train"),
    ("cityscapes:data/street@val", "cityscapes", "data/street", "val"),
    ("bag:rec/drive1", "bag", "rec/drive1", None),
    ("bag:rec/drive1@/camera/image_raw", "bag", "rec/drive1", "/camera/image_raw"),
    ("other:thing", "folder", "other:thing", None),  # an unknown prefix is part of a folder's name
])
def test_each_accepted_spelling_parses_to_one_typed_source(text: str, kind: str, path: str,
                                                           selector: str | None) -> None:
    source = parse_source(text)
    assert source == CalibrationSource(kind, Path(path), selector)
    assert (source.count, source.batch_size, source.selection, source.seed) == (DEFAULT_COUNT, DEFAULT_BATCH_SIZE,
                                                                                "spread", 0)
    assert parse_source(source) == source  # a parsed source passes through


def test_settings_travel_with_the_source() -> None:
    source = parse_source("bag:rec@/cam", count=16, batch_size=4, selection="random", seed=3)
    assert (source.count, source.batch_size, source.selection, source.seed) == (16, 4, "random", 3)
    assert parse_source(source, count=8).count == 8 and parse_source(source, count=8).seed == 3
    assert parse_source(Path("~/frames")).path == Path("~/frames").expanduser()
    assert source.describe() == "bag:rec@/cam" and parse_source("d").describe() == "folder:d"


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    ("bag:", {}, "calibration source 'bag:' names no path"),
    ("cityscapes:@val", {}, "calibration source 'cityscapes:@val' names no path"),
    ("folder:", {}, "calibration source 'folder:' names no path"),
    ("d", {"selection": "best"}, "unknown calibration selection 'best'; choose one of spread, random, first"),
])
def test_a_bad_source_gives_todays_message(text: str, kwargs: dict, message: str) -> None:
    with pytest.raises(CalibrationDataError) as caught:
        parse_source(text, **kwargs)
    assert str(caught.value) == message


def test_a_build_of_several_calibrated_precisions_reads_the_frames_once(tmp_path: Path, random_model_factory,  # noqa: ANN001
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import torch

    from trt_segmentation.apps.build import run_pipeline
    from trt_segmentation.build_request import BuildRequest
    from trt_segmentation.data.street_scenes import write_street_split

    checkpoint = tmp_path / "random.pt"
    torch.save(random_model_factory("single_scale", "resnet18", SEED).state_dict(), checkpoint)
    write_street_split(tmp_path / "street", "train", 4, seed=0, height=H, width=W, progress=False)
    folder = tmp_path / "street" / "leftImg8bit" / "train"  # a plain folder of images (the DIR spelling)
    precisions = [Precision.FP16, Precision.INT8, Precision.INT8_MAX, Precision.INT8_CPU]
    lines: list[str] = []
    with caplog.at_level(logging.INFO, logger="trt_segmentation.precision.calibration_data"):
        steps = run_pipeline(BuildRequest(precisions=precisions, checkpoint=checkpoint, size=(H, W),
                                             calibration=str(folder), calibration_count=4, calibration_batch=2,
                                             out_dir=tmp_path / "out", builder="none", use_cache=False),
                             log=lines.append)
    reads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("calibration: read ")]
    assert reads == [f"calibration: read 4 frames from folder:{folder} (spread)"], reads
    assert [s.precision for s in steps] == precisions and all(s.onnx and s.onnx.is_file() for s in steps)
    assert sum(line.startswith("reading up to 4 calibration frames") for line in lines) == 1
