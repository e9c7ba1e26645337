"""The segmentation node's ROS parameters: one table with defaults, descriptions and ranges, parsed into
:class:`NodeParams`.

``PARAMETERS`` is the single source for the node's declarations (``ros2 param describe`` shows the
descriptions and ranges), for config/segmentation.yaml and for the launch-file test. Which file they select is
startup.resolve_model_file. Imports rclpy only inside ``declare_parameters``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..artifacts import NODE_BACKENDS, BackendKind, ClosedSet, Precision, check_camera_name, names
from ..errors import InputError
from ..image_codec import DEFAULT_MAX_PIXELS
from .frames import DEFAULT_STAMP_TOLERANCE_NS
from .qos import RELIABILITIES

DEFAULT_BACKEND = BackendKind.TENSORRT
#: the node's backends, the default first (the order ``ros2 param describe`` and the parameters file list them)
BACKEND_CHOICES = tuple(k.value for k in sorted(NODE_BACKENDS, key=lambda k: k is not DEFAULT_BACKEND))
RELIABILITY_CHOICES = RELIABILITIES


class InputType(ClosedSet):
    """What the node subscribes to: sensor_msgs/Image (raw) or sensor_msgs/CompressedImage (jpeg/png)."""

    RAW = "raw"
    COMPRESSED = "compressed"


class IoMode(ClosedSet):
    """Where each camera's take runs: an I/O process of its own (process) or the node's process (inprocess)."""

    PROCESS = "process"
    INPROCESS = "inprocess"


INPUT_TYPES = tuple(t.value for t in InputType)
IO_MODES = tuple(m.value for m in IoMode)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    step: float | None = None
    runtime: bool = False  # changeable with `ros2 param set` on a running node (ros_node applies it)


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("backend", DEFAULT_BACKEND.value, "Inference backend: tensorrt (Jetson/GPU), onnxruntime (any machine, "
              "CUDA provider if present), torch (CUDA, PyTorch checkpoint; for tests)", BACKEND_CHOICES),
    ParamSpec("precision", Precision.FP16.value, "Precision variant; picks <model>_<H>x<W>_<precision>.engine (or "
              ".onnx for onnxruntime) in engine_dir. int8 = entropy-calibrated; int8-max/int8-percentile name the "
              "other calibration methods; int8-cpu = ONNX Runtime's CPU INT8 (backend onnxruntime only, the fastest "
              "on x86 CPUs)", names()),
    ParamSpec("model", "swiftnet_ss_rn18", "Model name, the first part of the engine/ONNX file name"),
    ParamSpec("engine_dir", "artifacts", "Folder holding the .engine/.json/.onnx files"),
    ParamSpec("engine_height", 0, "Engine input height; 0 = find the single <model>_<H>x<W>_<precision> file "
              "in engine_dir", low=0, high=8192, step=1),
    ParamSpec("engine_width", 0, "Engine input width; 0 = find it like engine_height", low=0, high=8192, step=1),
    ParamSpec("engine_path", "", "Explicit .engine (tensorrt) or .pt checkpoint (torch); overrides the "
              "engine_dir/model/precision naming"),
    ParamSpec("onnx_path", "", "Explicit .onnx for the onnxruntime backend; overrides the naming"),
    ParamSpec("build_engine_if_missing", False, "tensorrt: when the engine file is missing, build it from the "
              "precision's ONNX variant next to it (progress in the log) before subscribing; an existing but "
              "incompatible engine is refused with the rebuild command unless rebuild_engine is true"),
    ParamSpec("rebuild_engine", False, "tensorrt: rebuild an engine that does not fit this machine (another "
              "TensorRT, GPU or Jetson module, a changed ONNX) from the ONNX variants beside it, with the reason in the "
              "log; false: refuse it with the reason and the command"),
    ParamSpec("build_workspace_mib", -1, "tensorrt: builder workspace limit in MiB for the engines the node builds "
              "(build_engine_if_missing, rebuild_engine); -1: the machine's default (1024 on a Jetson, whose GPU memory "
              "is the system's RAM; TensorRT's own elsewhere); 0: no limit", low=-1, high=1 << 20, step=1),
    ParamSpec("inflight_slots", 2, "tensorrt/torch: frames in flight on the GPU (each slot has its own CUDA "
              "stream and buffers); 2 overlaps conversion of frame N+1 with inference of frame N",
              low=1, high=4, step=1),
    ParamSpec("ort_threads", 0, "onnxruntime: intra-op threads (0 = ONNX Runtime's default)", low=0, high=64, step=1),
    ParamSpec("input_type", "raw", "raw: subscribe to sensor_msgs/Image on ~/image; compressed: "
              "sensor_msgs/CompressedImage (jpeg/png) on ~/image/compressed", INPUT_TYPES),
    ParamSpec("io_mode", "process", "process: each camera's subscription, take and check run in an I/O process of "
              "its own that hands frames over through a shared-memory ring (the take of a large frame holds that "
              "process's interpreter lock, not the inference process's; on a GPU 0.97x the transport's rate vs 0.60x "
              "inprocess: docs/benchmarks.md); inprocess: all in the node's process (debugging, no /dev/shm)",
              IO_MODES),
    ParamSpec("cameras", [], "Multi-camera mode: camera names, e.g. [front, left, right]; each gets ~/<name>/image "
              "(or ~/<name>/image/compressed) in and ~/<name>/labels (color, overlay) out, and all run as one batch "
              "through a batch-N model (<model>_<H>x<W>_b<N>_<precision>, N = number of cameras). Empty = one "
              "camera on ~/image"),
    ParamSpec("batch_timeout_ms", 30.0, "Multi-camera mode: run a batch once every camera has a new frame or this "
              "many milliseconds after the oldest waiting frame arrived; cameras without a new frame are left out "
              "of that batch", low=0.0, high=10000.0, step=0.0),
    ParamSpec("max_input_pixels", DEFAULT_MAX_PIXELS, "Largest frame accepted, in pixels (height x width), checked "
              "on the size a message claims before it is converted or decoded; larger frames are refused as bad "
              "input", low=1, high=1 << 31, step=1),
    ParamSpec("qos_reliability", "best_effort", "Image subscription reliability; must be compatible with the "
              "camera publisher (a reliable subscription does not match a best-effort publisher)",
              RELIABILITY_CHOICES),
    ParamSpec("qos_depth", 1, "Image subscription history depth (keep last N); the node always processes the "
              "newest frame and counts the others as dropped", low=1, high=100, step=1),
    ParamSpec("publish_color", False, "Also publish ~/color (rgb8 Cityscapes colour mask)", runtime=True),
    ParamSpec("publish_overlay", False, "Also publish ~/overlay (rgb8 input blended with the colour mask)", runtime=True),
    ParamSpec("publish_labels_compressed", False, "Also publish ~/labels/compressed (sensor_msgs/CompressedImage, "
              "format 'mono8; png compressed', the labels' header; encoded only while it has a subscriber): "
              "lossless labels for recording", runtime=True),
    ParamSpec("publish_camera_info", False, "Republish the camera's sensor_msgs/CameraInfo (the camera_info topic "
              "beside its image topic, image_transport's convention) on ~/camera_info with each label image's header "
              "and size, for consumers that pair image and info; nothing is published while the camera sends none"),
    ParamSpec("overlay_alpha", 0.5, "Weight of the colour mask in ~/overlay", low=0.0, high=1.0, step=0.0, runtime=True),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages", low=0.05, high=60.0, step=0.0, runtime=True),
    ParamSpec("latency_window", 300, "Frames in the rolling latency/percentile window", low=10, high=100000, step=1),
    ParamSpec("warn_latency_ms", 250.0, "WARN when the end-to-end age p95 (publish time minus header stamp) "
              "exceeds this", low=0.0, high=100000.0, step=0.0, runtime=True),
    ParamSpec("warn_drop_ratio", 0.5, "WARN when more than this fraction of received frames was dropped "
              "(over the node's lifetime)", low=0.0, high=1.0, step=0.0, runtime=True),
    ParamSpec("warn_no_frames_s", 5.0, "WARN when no frame arrived for this many seconds", low=0.1, high=3600.0,
              step=0.0, runtime=True),
    ParamSpec("stamp_tolerance_s", DEFAULT_STAMP_TOLERANCE_NS / 1e9, "A header stamp further than this from the node's clock when the frame "
              "arrives is another clock's (a recorded drive replayed without --clock / use_sim_time): the frame is "
              "processed, but latency_transport_* and latency_age_* leave it out and the stamps key says so",
              low=0.0, high=1e9, step=0.0, runtime=True),
    ParamSpec("log_throttle_s", 5.0, "Minimum seconds between repeated error logs about bad input", low=0.0,
              high=3600.0, step=0.0, runtime=True),
)

PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
#: the parameters ``ros2 param set`` changes on a running node; every other one is read at start-up only
RUNTIME_PARAMETERS = tuple(p.name for p in PARAMETERS if p.runtime)


def refusal(name: str) -> str:
    """Why ``name`` cannot be changed on a running node ("" when it can)."""
    if name in RUNTIME_PARAMETERS:
        return ""
    return (f"parameter {name} is read at start-up only: restart the node to change it (changeable at runtime: "
            f"{', '.join(RUNTIME_PARAMETERS)})")


@dataclass(frozen=True)
class NodeParams:
    """The parameters as types: made by :func:`params_from_dict` or :func:`declare_parameters` (the edges), which
    check the choices and ranges of the values as given and parse the closed sets (backend, precision) once."""

    backend: BackendKind
    precision: Precision
    model: str
    engine_dir: str
    engine_height: int
    engine_width: int
    engine_path: str
    onnx_path: str
    build_engine_if_missing: bool
    rebuild_engine: bool
    build_workspace_mib: int
    inflight_slots: int
    ort_threads: int
    input_type: InputType
    io_mode: IoMode
    cameras: tuple[str, ...]
    batch_timeout_ms: float
    max_input_pixels: int
    qos_reliability: str
    qos_depth: int
    publish_color: bool
    publish_overlay: bool
    publish_labels_compressed: bool
    publish_camera_info: bool
    overlay_alpha: float
    diagnostics_period: float
    latency_window: int
    warn_latency_ms: float
    warn_drop_ratio: float
    warn_no_frames_s: float
    stamp_tolerance_s: float
    log_throttle_s: float

    def __post_init__(self) -> None:
        if isinstance(self.cameras, (str, bytes)):  # tuple('front') would be five one-letter cameras
            raise InputError(f"parameter cameras must be a list of names, e.g. [{self.cameras!r}], got the string "
                             f"{self.cameras!r}")
        object.__setattr__(self, "cameras", tuple(str(name) for name in self.cameras))  # a list from ROS or YAML

    @property
    def batch(self) -> int:
        """Frames per run of the model: one per camera (1 in single-camera mode)."""
        return max(1, len(self.cameras))

    def validated(self) -> NodeParams:
        """Check the camera names (the choices and ranges are checked by :func:`typed_params` before parsing)."""
        for name in self.cameras:
            try:
                check_camera_name(name)
            except ValueError as exc:
                raise InputError(f"parameter cameras: {exc}, since it becomes the topic ~/<name>/image") from None
        if len(set(self.cameras)) != len(self.cameras):
            raise InputError(f"parameter cameras names a camera twice: {list(self.cameras)}")
        return self


def typed_params(values: dict[str, Any]) -> NodeParams:
    """The edge: every parameter's value as ROS or a dict gives it, checked against the choices and ranges of
    ``PARAMETERS``, then the closed sets (backend, precision, input type, io mode) parsed into their types; the
    camera names checked."""
    for spec in PARAMETERS:
        value = values[spec.name]
        if spec.choices and value not in spec.choices:
            raise InputError(f"parameter {spec.name}={value!r}: choose one of {', '.join(spec.choices)}")
        if spec.low is not None and not spec.low <= value <= spec.high:
            raise InputError(f"parameter {spec.name}={value!r} is outside [{spec.low}, {spec.high}]")
    typed = dict(values, backend=BackendKind.parse(values["backend"]), precision=Precision.parse(values["precision"]),
                 input_type=InputType.parse(values["input_type"]), io_mode=IoMode.parse(values["io_mode"]))
    return NodeParams(**typed).validated()


def params_from_dict(values: dict[str, Any]) -> NodeParams:
    """Defaults overridden by ``values`` (unknown keys are an error), validated."""
    unknown = sorted(set(values) - set(PARAMETER_NAMES))
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAMETER_NAMES)}")
    return typed_params({p.name: values.get(p.name, p.default) for p in PARAMETERS})


def declare_parameters(node: Any) -> NodeParams:
    """Declare every parameter on an rclpy node (descriptions and ranges) and return the values it got. None is
    declared read-only: rclpy would refuse a read-only one before the node's callback could say why, so the
    start-up ones are refused by ros_node's parameter callback with :func:`refusal`'s reason."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
    from rclpy.parameter import Parameter

    for spec in PARAMETERS:
        text = spec.description + (f" ({' | '.join(spec.choices)})" if spec.choices else "")
        text += "; changeable at runtime" if spec.runtime else "; read at start-up (a change needs a restart)"
        descriptor = ParameterDescriptor(name=spec.name, description=text)
        if spec.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(spec.choices)
        if spec.low is not None and not isinstance(spec.default, bool):
            if isinstance(spec.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high or 0),
                                                         step=int(spec.step or 1))]
            else:
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                                      to_value=float(spec.high or 0.0),
                                                                      step=float(spec.step or 0.0))]
        # an empty list has no element type, so rclpy would declare [] as a byte array and then refuse a string
        # list from the command line: string lists are declared by type, and unset reads as empty
        default = Parameter.Type.STRING_ARRAY if isinstance(spec.default, list) else spec.default
        try:
            node.declare_parameter(spec.name, default, descriptor)
        except Exception as exc:  # rclpy's InvalidParameterValue/TypeException: out of range or wrong type
            raise InputError(f"parameter {spec.name}: {exc}") from exc
    return typed_params({f.name: _value(node, f.name) for f in fields(NodeParams)})


def _value(node: Any, name: str) -> Any:
    from rclpy.exceptions import ParameterUninitializedException

    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:  # a string list left unset (or `[]` in the YAML): empty
        return []




__all__ = [
    "BACKEND_CHOICES",
    "DEFAULT_BACKEND",
    "NodeParams",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "ParamSpec",
    "RELIABILITY_CHOICES",
    "RUNTIME_PARAMETERS",
    "declare_parameters",
    "params_from_dict",
    "refusal",
    "typed_params",
]
