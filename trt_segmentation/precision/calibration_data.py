"""Calibration frames for INT8: read from an image folder, a Cityscapes split or a rosbag topic, shaped like the
camera frames the deployed graph eats (H x W x 3 uint8 in the contract's channel order, N of them per run of a
static batch-N graph: :func:`model_runs` cuts a frame stack into those (N, H, W, 3) inputs).

A source is written as one string so that it fits a command line and the engine metadata:
``DIR`` or ``folder:DIR`` (every image below DIR), ``cityscapes:ROOT[@split]`` (leftImg8bit/<split>, default
``train``), ``bag:PATH[@/topic]`` (sensor_msgs/Image messages; the only Image topic if none is named).
Frames whose size differs from the model input are resized (bilinear) when the aspect ratio matches; another
aspect ratio is an error, because squashing would calibrate on shapes the camera never produces.

Which frames (:data:`SELECTIONS`): ``spread`` (default) takes ``count`` frames evenly over the whole source -- every
k-th image of a folder, every k-th of a Cityscapes split sorted by city (so each city gives its share), the frames
nearest ``count`` evenly spaced times over a bag's time span; ``random`` a seeded random sample (sorted back into
source order); ``first`` the first ``count`` (the old behaviour: one city of Cityscapes, a bag's first seconds).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..artifacts import CALIBRATION_COUNT
from ..errors import MissingFile, SegmentationError
from ..image_codec import reorder_channels, resize_image
from ..onnx_metadata import ModelContract

LOG = logging.getLogger(__name__)

DEFAULT_COUNT = CALIBRATION_COUNT
DEFAULT_BATCH_SIZE = 8
SELECTIONS = ("spread", "random", "first")
DEFAULT_SELECTION = "spread"
ASPECT_TOLERANCE = 0.02


class CalibrationDataError(ValueError, SegmentationError):
    """The calibration source is missing, empty, too small or has frames that do not fit the model."""


@dataclass(frozen=True)
class CalibrationSource:
    """A calibration source parsed once from the user's text (:func:`parse_source`): where the frames are
    (``kind`` folder | cityscapes | bag, ``path``, ``selector`` = the Cityscapes split or the bag topic) and which
    of them a build feeds (``count``, ``batch_size``, ``selection``, ``seed``). :meth:`load` reads them."""

    kind: str  # folder | cityscapes | bag
    path: Path
    selector: str | None = None  # cityscapes split or bag topic
    count: int = DEFAULT_COUNT
    batch_size: int = DEFAULT_BATCH_SIZE
    selection: str = DEFAULT_SELECTION
    seed: int = 0

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise CalibrationDataError(f"unknown calibration selection {self.selection!r}; choose one of "
                                       f"{', '.join(SELECTIONS)}")

    def describe(self) -> str:
        if self.kind == "folder":
            return f"folder:{self.path}"
        return f"{self.kind}:{self.path}" + (f"@{self.selector}" if self.selector else "")

    def load(self, contract: ModelContract) -> CalibrationSet:
        """Read the frames (see the module docstring), fitted to ``contract``: one read of the source per call,
        so a build calls it once and hands the set to every variant."""
        # the description stays the source string (metadata, sidecars compare it); the selection shows in the
        # set's sha256 (the pixels fed), which keys the cache and is recorded beside it
        frames = collect_frames(_iter_rgb(self, self.count, self.selection, self.seed), contract, self.describe(),
                                self.count, self.batch_size)
        LOG.info("calibration: read %d frames from %s (%s)", len(frames), self.describe(), self.selection)
        return frames


def parse_source(spec: str | Path | CalibrationSource, *, count: int | None = None, batch_size: int | None = None,
                 selection: str | None = None, seed: int | None = None) -> CalibrationSource:
    """``DIR`` | ``folder:DIR`` | ``cityscapes:ROOT[@split]`` | ``bag:PATH[@/topic]`` -> a :class:`CalibrationSource`;
    the keyword settings given replace the defaults (or those of a source passed in)."""
    settings = {k: v for k, v in (("count", count), ("batch_size", batch_size), ("selection", selection),
                                  ("seed", seed)) if v is not None}
    if isinstance(spec, CalibrationSource):
        return replace(spec, **settings)  # type: ignore[arg-type]
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("folder", "cityscapes", "bag"):
        kind, rest = "folder", text
    path, _, selector = rest.partition("@") if kind != "folder" else (rest, "", "")
    if not path:
        raise CalibrationDataError(f"calibration source {text!r} names no path")
    if kind == "cityscapes" and not selector:
        selector = "train"
    return CalibrationSource(kind, Path(path).expanduser(), selector or None, **settings)  # type: ignore[arg-type]


def select_indices(positions: Sequence[float] | int, count: int, selection: str = DEFAULT_SELECTION,
                   seed: int = 0) -> list[int]:
    """Indices of ``count`` items (all when fewer) among ``positions`` (their times, or a number of items spaced
    evenly): ``spread`` the item nearest each of ``count`` evenly spaced points over the span (each point at the
    middle of its 1/count share), ``random`` a seeded sample, ``first`` the first ``count``; sorted, unique."""
    if selection not in SELECTIONS:
        raise CalibrationDataError(f"unknown calibration selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
    pos = np.arange(positions, dtype=np.float64) if isinstance(positions, int) else np.asarray(positions, np.float64)
    total = int(pos.size)
    if count >= total:
        return list(range(total))
    if selection == "first":
        return list(range(count))
    if selection == "random":
        return sorted(int(i) for i in np.random.default_rng(seed).choice(total, size=count, replace=False))
    order = np.argsort(pos, kind="stable")
    ordered = pos[order]
    targets = ordered[0] + (np.arange(count) + 0.5) / count * (ordered[-1] - ordered[0] + (1 if isinstance(positions, int) else 0))
    chosen: list[int] = []
    taken: set[int] = set()
    for target in targets:
        at = int(np.clip(np.searchsorted(ordered, target), 0, total - 1))
        candidates = sorted(range(max(0, at - 1), min(total, at + 2)), key=lambda j: abs(ordered[j] - target))
        pick = next((j for j in candidates if j not in taken), None)
        if pick is None:  # crowded: the nearest free item on either side
            pick = min((j for j in range(total) if j not in taken), key=lambda j: abs(ordered[j] - target))
        taken.add(pick)
        chosen.append(int(order[pick]))
    return sorted(chosen)


def _iter_rgb(source: CalibrationSource, limit: int, selection: str = DEFAULT_SELECTION,
              seed: int = 0) -> Iterator[np.ndarray]:
    """RGB uint8 HxWx3 frames from the data layer's readers (imported lazily); their errors (the package's
    root, or a missing file) become ours, with the source named."""
    if not source.path.exists():
        raise CalibrationDataError(f"calibration source {source.describe()}: {source.path} does not exist")
    try:
        if source.kind in ("folder", "cityscapes"):
            from ..data.image_folder import list_images, read_rgb

            if source.kind == "folder":
                paths = list_images(source.path, recursive=True)
                if not paths:
                    raise MissingFile(f"no .png/.jpg images in {source.path}")
            else:
                from ..data.cityscapes import CityscapesSplit

                paths = list(CityscapesSplit(source.path, source.selector or "train").image_paths)  # sorted by city
            for index in select_indices(len(paths), limit, selection, seed):  # images only: no labels needed
                yield read_rgb(paths[index])
        else:
            from ..data.bags import bag_image_times, iter_bag_images

            times = bag_image_times(source.path, source.selector)
            wanted = set(select_indices(times, limit, selection, seed))
            for _, rgb in iter_bag_images(source.path, source.selector, indices=wanted):
                yield rgb
    except CalibrationDataError:
        raise
    except (FileNotFoundError, SegmentationError) as exc:
        raise CalibrationDataError(f"calibration source {source.describe()}: {exc}") from exc


def fit_frame(rgb: np.ndarray, contract: ModelContract, where: str = "frame") -> np.ndarray:
    """RGB uint8 frame of any size with the model's aspect ratio -> H x W x 3 uint8 in the contract's order."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise CalibrationDataError(f"{where}: expected an H x W x 3 uint8 image, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if (h, w) != (contract.height, contract.width):
        want, got = contract.width / contract.height, w / h
        if abs(got / want - 1.0) > ASPECT_TOLERANCE:
            raise CalibrationDataError(
                f"{where} is {w}x{h} (aspect {got:.3f}) but the model input is {contract.width}x{contract.height} "
                f"(aspect {want:.3f}); crop the calibration images to the camera's aspect ratio or export the "
                "model at a size that matches them"
            )
        rgb = resize_image(rgb, contract.height, contract.width)
    return np.ascontiguousarray(reorder_channels(rgb, contract.channel_order))


def onnxruntime_providers() -> list[str]:
    """ONNX Runtime providers for calibration passes: CUDA first where this onnxruntime has it, else the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def modelopt_eps() -> list[str]:
    """The same choice in ModelOpt's ``calibration_eps`` spelling."""
    return ["cuda:0", "cpu"] if "CUDAExecutionProvider" in onnxruntime_providers() else ["cpu"]


def whole_runs(frames: np.ndarray, batch: int) -> np.ndarray:
    """The first ``len(frames) // batch * batch`` frames: whole inputs of a static batch-``batch`` graph (the
    quantizers feed a batch-N graph N frames per run; a leftover frame cannot be fed)."""
    if batch < 1:
        raise CalibrationDataError(f"batch must be >= 1, got {batch}")
    usable = len(frames) // batch * batch
    if usable == 0:
        raise CalibrationDataError(f"{len(frames)} calibration frame(s) are fewer than one input of the batch-{batch} "
                                   "model; give at least as many frames as the batch")
    if usable < len(frames):
        LOG.info("calibration: using %d of %d frames (whole inputs of the batch-%d model)", usable, len(frames), batch)
    return frames[:usable]


def model_runs(frames: np.ndarray, batch: int) -> Iterator[np.ndarray]:
    """(M, H, W, 3) frames -> the (batch, H, W, 3) inputs of a static batch-``batch`` graph, whole ones only."""
    usable = whole_runs(frames, batch)
    for start in range(0, len(usable), batch):
        yield np.ascontiguousarray(usable[start : start + batch])


@dataclass
class CalibrationSet:
    """N x H x W x 3 uint8 frames exactly as the graph's input receives them (one frame per inference)."""

    frames: np.ndarray
    description: str
    batch_size: int = DEFAULT_BATCH_SIZE

    @property
    def sha256(self) -> str:
        """Hash of the pixels fed (after resizing/reordering), so any change of images or preprocessing shows."""
        digest = hashlib.sha256()
        digest.update(f"{self.frames.shape}|{self.frames.dtype}".encode())
        digest.update(np.ascontiguousarray(self.frames).tobytes())
        return digest.hexdigest()

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def batches(self) -> Iterator[np.ndarray]:
        """Whole batches of ``batch_size`` frames (the TensorRT implicit calibrator's unit)."""
        for start in range(0, len(self) - self.batch_size + 1, self.batch_size):
            yield self.frames[start : start + self.batch_size]


def collect_frames(
    frames: Iterable[np.ndarray],
    contract: ModelContract,
    description: str,
    count: int = DEFAULT_COUNT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> CalibrationSet:
    """Take up to ``count`` frames (whole batches only), fitted to ``contract``; clear errors if too few. For a
    batch-N contract (N > 1) a calibration batch is one run of the graph: ``batch_size`` becomes N."""
    if contract.batch > 1 and batch_size != contract.batch:
        LOG.info("calibration: batch-%d model, %d frames per calibration batch (one run of the graph)",
                 contract.batch, contract.batch)
        batch_size = contract.batch
    if batch_size < 1 or count < batch_size:
        raise CalibrationDataError(f"calibration count {count} must be >= batch size {batch_size} (>= 1)")
    fitted = []
    for index, rgb in enumerate(frames):
        fitted.append(fit_frame(rgb, contract, f"calibration image #{index} of {description}"))
        if len(fitted) >= count:
            break
    if not fitted:
        raise CalibrationDataError(f"calibration source {description} holds no images")
    if len(fitted) < batch_size:
        raise CalibrationDataError(
            f"calibration source {description} has {len(fitted)} image(s), fewer than one batch ({batch_size}); "
            f"add images or lower the batch size (--calibration-batch)"
        )
    usable = len(fitted) // batch_size * batch_size
    if usable < len(fitted):
        LOG.info("calibration: using %d of %d images (whole batches of %d)", usable, len(fitted), batch_size)
    return CalibrationSet(np.stack(fitted[:usable]), description, batch_size)


def load_calibration_set(
    source: str | Path | CalibrationSource,
    contract: ModelContract,
    count: int = DEFAULT_COUNT,
    batch_size: int = DEFAULT_BATCH_SIZE,
    selection: str = DEFAULT_SELECTION,
    seed: int = 0,
) -> CalibrationSet:
    """Read up to ``count`` frames from ``source``, chosen by ``selection`` (see the module docstring)."""
    return parse_source(source, count=count, batch_size=batch_size, selection=selection, seed=seed).load(contract)
