"""Precision variants and the other closed sets of the pipeline as types (:class:`Precision`, :class:`BackendKind`,
:class:`BuilderKind`, :class:`InputFormat`), and the file names of build artifacts (pure Python, no dependencies).

:class:`Precision` is the only list of variants: tools (argparse choices), node parameters, file names, the launch
file and the engine sidecar all use its values, and every property a caller needs (calibration method, whether
TensorRT builds it, which builder flags) is a field of the member instead of a re-parsed string.

One name encodes every setting that changes the result, so switching precision can never pick up another
precision's file: ``<model>_<H>x<W>_<precision>.onnx`` / ``.engine`` / ``.json`` (engine metadata sidecar), and
``<model>_<H>x<W>_b<N>_<precision>.*`` for a static batch of N > 1 frames (multi-camera mode). Folders of them are
searched through one catalogue, :class:`ArtifactFolder`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import List, Optional, Tuple, Type, TypeVar, Union

from .errors import InputError

_Member = TypeVar("_Member", bound="ClosedSet")


class ClosedSet(str, Enum):
    """Base of the closed sets below: a member is its name (``str(member)`` and f-strings give the value on every
    Python; 3.12 changed Enum.__format__) and ``parse`` turns a user's text into the member once, at an edge."""

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def _what(cls) -> str:
        """What the set is called in the error message."""
        return cls.__name__

    @classmethod
    def _normalise(cls, text: str) -> str:
        return text.strip().lower()

    @classmethod
    def parse(cls: Type[_Member], text: Union[str, _Member]) -> _Member:
        """The member named ``text``; ValueError names the choices."""
        if isinstance(text, cls):
            return text
        try:
            return cls(cls._normalise(str(text)))
        except ValueError:
            raise InputError(f"unknown {cls._what()} {text!r}; choose one of "
                             f"{', '.join(m.value for m in cls)}") from None


class CalibrationMethod(ClosedSet):
    """How INT8 activation ranges are found. entropy/max/percentile/kl2048: symmetric, for TensorRT (ModelOpt Q/DQ;
    entropy = ModelOpt's calibrator of that name, a 128-bin KL with one candidate: in effect the first calibration
    frame's max; kl2048 = TensorRT's own 2048-bin KL search); minmax: asymmetric min..max ranges found by ONNX
    Runtime's own quantizer (the CPU variant)."""

    ENTROPY = "entropy"
    MAX = "max"
    PERCENTILE = "percentile"
    KL2048 = "kl2048"
    MINMAX = "minmax"


class Target(ClosedSet):
    """What runs a variant: TensorRT engines (Jetson/GPU; ONNX Runtime runs these files too), or ONNX Runtime's
    CPU kernels only (never fed to TensorRT)."""

    TENSORRT = "tensorrt"
    ONNXRUNTIME_CPU = "onnxruntime-cpu"


class Precision(ClosedSet):
    """A precision variant; the value is the name used in files, parameters and command lines.

    ``int8`` is calibrated by ModelOpt's "entropy" (128 bins: in effect the first calibration frame's max);
    ``int8-max`` / ``int8-percentile`` / ``int8-kl2048`` (TensorRT's own 2048-bin KL search, the seed theses'
    calibrator) are the same Q/DQ placement with other scales; ``mixed`` is an INT8 encoder with the rest FP16; ``int8-cpu`` is ONNX Runtime's
    CPU recipe (uint8 asymmetric activations, per-channel int8 weights, Conv only) and is never given to TensorRT.
    """

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT8_MAX = "int8-max"
    INT8_PERCENTILE = "int8-percentile"
    INT8_KL2048 = "int8-kl2048"
    MIXED = "mixed"
    INT8_CPU = "int8-cpu"

    @property
    def calibration(self) -> Optional[CalibrationMethod]:
        """The calibration method, or None for the variants made without calibration images (fp32, fp16)."""
        return _CALIBRATION[self]

    @property
    def target(self) -> Target:
        return Target.ONNXRUNTIME_CPU if self is Precision.INT8_CPU else Target.TENSORRT

    @property
    def tensorrt(self) -> bool:
        """True when TensorRT builds engines of this variant (False: ONNX Runtime CPU only)."""
        return self.target is Target.TENSORRT

    @property
    def uses_fp16(self) -> bool:
        """TensorRT's FP16 builder flag (weak typing, implicit path)."""
        return self in (Precision.FP16, Precision.MIXED)

    @property
    def uses_int8(self) -> bool:
        """INT8 arithmetic (TensorRT's INT8 builder flag for the TensorRT variants)."""
        return self.calibration is not None

    @property
    def implicit_ok(self) -> bool:
        """TensorRT's implicit path (FP32 ONNX + builder flags + its entropy calibrator) can build it."""
        return self in (Precision.FP32, Precision.FP16, Precision.INT8, Precision.MIXED)

    @property
    def family(self) -> Precision:
        """The arithmetic it runs: FP32, FP16, INT8 (every INT8 variant, whatever its calibration) or MIXED; e.g.
        the key of the on-target check's pass thresholds."""
        if self is Precision.MIXED or self.calibration is None:
            return self
        return Precision.INT8

    @classmethod
    def _what(cls) -> str:
        return "precision variant"

    @classmethod
    def _normalise(cls, text: str) -> str:
        """``int8-entropy`` is accepted for ``int8``."""
        name = text.strip().lower()
        return Precision.INT8.value if name == "int8-" + CalibrationMethod.ENTROPY.value else name


class BackendKind(ClosedSet):
    """What runs a model file: ONNX Runtime, TensorRT, PyTorch on the CUDA slots (the node's three), or a plain
    PyTorch checkpoint (evaluation, CPU or CUDA)."""

    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"
    TORCH = "torch"
    CHECKPOINT = "checkpoint"

    @property
    def node(self) -> bool:
        """The node can run it (``backend`` parameter)."""
        return self is not BackendKind.CHECKPOINT

    @classmethod
    def _what(cls) -> str:
        return "backend"

    @classmethod
    def for_file(cls, path: Union[str, Path]) -> Optional[BackendKind]:
        """The kind that runs a file, told by its suffix (None when the suffix says nothing)."""
        return _KIND_OF_SUFFIX.get(Path(path).suffix.lower())


_KIND_OF_SUFFIX = {".onnx": BackendKind.ONNXRUNTIME, ".engine": BackendKind.TENSORRT, ".plan": BackendKind.TENSORRT,
                   ".pt": BackendKind.CHECKPOINT, ".pth": BackendKind.CHECKPOINT, ".ckpt": BackendKind.CHECKPOINT,
                   ".tar": BackendKind.CHECKPOINT}
#: the node's backends
NODE_BACKENDS: Tuple[BackendKind, ...] = tuple(k for k in BackendKind if k.node)


class BuilderKind(ClosedSet):
    """How TensorRT builds an engine: ``explicit`` from the precision's own ONNX variant (its Q/DQ nodes and casts),
    ``implicit`` from the FP32 ONNX with builder flags and a calibrator (TensorRT 8.5-10.x where the parser does
    not take the variant, and INT8 on DLA before TensorRT 10). A DLA core is where an engine runs, on either
    path (``dla_core``), not a third way of building."""

    EXPLICIT = "explicit"
    IMPLICIT = "implicit"


class InputFormat(ClosedSet):
    """What the network's input takes: camera bytes (N, H, W, 3) uint8 in RGB or BGR order, normalised in the
    graph, or (N, 3, H, W) float already normalised."""

    UINT8_RGB = "uint8_rgb"
    UINT8_BGR = "uint8_bgr"
    FLOAT_NORMALISED = "float_normalised"

    @property
    def camera(self) -> bool:
        """uint8 camera frames (what the node and the TensorRT / torch backends feed)."""
        return self is not InputFormat.FLOAT_NORMALISED

    @property
    def channel_order(self) -> str:
        return "bgr" if self is InputFormat.UINT8_BGR else "rgb"

    @classmethod
    def _what(cls) -> str:
        return "input format"

    @classmethod
    def _normalise(cls, text: str) -> str:
        return text


#: camera input formats (export choices for deployment, build_engine's --input-format)
CAMERA_FORMATS: Tuple[InputFormat, ...] = tuple(f for f in InputFormat if f.camera)


_CALIBRATION = {
    Precision.FP32: None,
    Precision.FP16: None,
    Precision.INT8: CalibrationMethod.ENTROPY,
    Precision.INT8_MAX: CalibrationMethod.MAX,
    Precision.INT8_PERCENTILE: CalibrationMethod.PERCENTILE,
    Precision.INT8_KL2048: CalibrationMethod.KL2048,
    Precision.MIXED: CalibrationMethod.ENTROPY,
    Precision.INT8_CPU: CalibrationMethod.MINMAX,
}

#: what ``--precision all`` builds and the launch file's switch: one variant per TensorRT precision
ENGINE_SET: Tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.INT8, Precision.MIXED)
CALIBRATION_COUNT = 64  # calibration frames by default (docs/accuracy.md's sweep: 8-512 frames agree alike)


def names(precisions: Optional[Tuple[Precision, ...]] = None) -> Tuple[str, ...]:
    """The values of ``precisions`` (default: every member), e.g. for argparse ``choices``."""
    return tuple(p.value for p in (precisions if precisions is not None else tuple(Precision)))


def artifact_stem(model: str, height: int, width: int, precision: Union[str, Precision], batch: int = 1) -> str:
    """``<model>_<H>x<W>_<precision>``; a batch of N > 1 adds ``_b<N>`` before the precision."""
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}")
    batch_part = f"_b{batch}" if batch > 1 else ""
    return f"{model}_{height}x{width}{batch_part}_{Precision.parse(precision).value}"


def artifact_path(directory: Union[str, Path], model: str, height: int, width: int, precision: Union[str, Precision],
                  suffix: str, batch: int = 1) -> Path:
    """e.g. artifact_path('engines', 'swiftnet_ss_rn18', 512, 1024, 'int8', '.engine', batch=4)."""
    return Path(directory) / (artifact_stem(model, height, width, precision, batch) + suffix)


_SIZE_IN_NAME = re.compile(r"_(\d+)x(\d+)_")


#: a camera name of multi-camera mode (the node's ``cameras``, a bag's camera topics): one ROS topic-name token,
#: since it becomes ``~/<name>/image`` and ``/cameras/<name>/image``; ASCII only, like ROS names
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_camera_name(name: str) -> str:
    """``name`` if it is a valid camera name (:data:`CAMERA_NAME`), else ValueError naming the rule."""
    if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name):
        raise InputError(f"{name!r} is no valid camera name (camera names are ROS name tokens: an ASCII letter, "
                         "then ASCII letters, digits or underscores)")
    return name


def size_from_name(name: str) -> Optional[Tuple[int, int]]:
    """(height, width) from an artifact name such as ``swiftnet_ss_rn18_512x1024_int8.engine``, or None."""
    match = _SIZE_IN_NAME.search(name)
    return (int(match.group(1)), int(match.group(2))) if match else None


_BATCH_IN_NAME = re.compile(r"_\d+x\d+_b(\d+)_")


def batch_from_name(name: str) -> int:
    """The static batch an artifact name carries (``..._512x1024_b4_fp16.onnx`` -> 4); 1 when it names none."""
    match = _BATCH_IN_NAME.search(name)
    return int(match.group(1)) if match else 1


# ------------------------------------------------------------------------------------------------- the catalogue
_PRECISION_ALTERNATIVES = "|".join(sorted((re.escape(p.value) for p in Precision), key=len, reverse=True))
_ARTIFACT_NAME = re.compile(rf"^(?P<model>.+?)_(?P<height>\d+)x(?P<width>\d+)(?:_b(?P<batch>\d+))?"
                            rf"_(?P<precision>{_PRECISION_ALTERNATIVES})(?:\.dla(?P<dla>\d+))?(?P<suffix>\.[^.]+)$")


@dataclass(frozen=True)
class Artifact:
    """One file of an artifact folder, read from its name ``<model>_<H>x<W>[_b<N>]_<precision>[.dla<K>]<suffix>``
    (``.dla<K>`` only before ``.engine``: an engine built for DLA core K)."""

    directory: Path
    model: str
    height: int
    width: int
    precision: Precision
    suffix: str
    batch: int = 1
    dla_core: int = -1

    @property
    def size(self) -> Tuple[int, int]:
        return self.height, self.width

    @property
    def name(self) -> str:
        dla = f".dla{self.dla_core}" if self.dla_core >= 0 else ""
        return artifact_stem(self.model, self.height, self.width, self.precision, self.batch) + dla + self.suffix

    @property
    def path(self) -> Path:
        return self.directory / self.name

    @classmethod
    def from_path(cls, path: Union[str, Path]) -> Optional[Artifact]:
        """The artifact ``path`` names, or None for a file named otherwise (also a non-canonical ``_b1_``)."""
        path = Path(path)
        match = _ARTIFACT_NAME.match(path.name)
        if match is None:
            return None
        found = cls(path.parent, match["model"], int(match["height"]), int(match["width"]),
                    Precision(match["precision"]), match["suffix"], int(match["batch"] or 1),
                    int(match["dla"]) if match["dla"] is not None else -1)
        return found if found.name == path.name else None


class ArtifactFolder:
    """The one search of a folder of build artifacts: every lookup by model, size, batch, precision and suffix
    (the tools, the target check, the build hints) reads the folder through :meth:`find`."""

    def __init__(self, directory: Union[str, Path]) -> None:
        self.directory = Path(directory)

    def path(self, model: str, height: int, width: int, precision: Union[str, Precision], suffix: str,
             batch: int = 1, dla_core: int = -1) -> Path:
        """Where that artifact is (or would be) in this folder."""
        return Artifact(self.directory, model, height, width, Precision.parse(precision), suffix, batch,
                        dla_core).path

    def find(self, model: Optional[str] = None, size: Optional[Tuple[int, int]] = None, batch: Optional[int] = None,
             precision: Union[str, Precision, None] = None, suffix: Optional[str] = None,
             dla_core: Optional[int] = -1) -> List[Artifact]:
        """The artifacts in the folder that match every criterion given (None: any), sorted by name;
        ``dla_core`` -1 (default) = GPU engines and every non-engine file, None = any."""
        if not self.directory.is_dir():
            return []
        wanted = Precision.parse(precision) if precision is not None else None
        found = []
        for path in self.directory.iterdir():
            item = Artifact.from_path(path)
            if item is None or not path.is_file():
                continue
            if ((model is None or item.model == model) and (size is None or item.size == tuple(size))
                    and (batch is None or item.batch == batch) and (wanted is None or item.precision is wanted)
                    and (suffix is None or item.suffix == suffix) and (dla_core is None or item.dla_core == dla_core)):
                found.append(item)
        return sorted(found, key=lambda a: a.name)

    def sizes(self, model: str, *, batch: int = 1, precision: Union[str, Precision] = Precision.FP32,
              suffix: str = ".onnx") -> List[Tuple[int, int]]:
        """The sizes of ``model``'s artifacts of that batch, precision and suffix, sorted."""
        return sorted({a.size for a in self.find(model, batch=batch, precision=precision, suffix=suffix)})

    def batches(self, model: str, size: Tuple[int, int], precision: Union[str, Precision],
                suffix: str = ".onnx") -> List[int]:
        """The static batches of ``model``'s artifacts of that size, precision and suffix, sorted."""
        return sorted({a.batch for a in self.find(model, size=size, precision=precision, suffix=suffix)})
