"""The four parts of a SwiftNet frame (seed 000's split) and which ONNX node / TensorRT layer belongs to which.

``encoder`` (input cast + normalisation, the pyramid's image pyramid, the ResNet), ``context`` (spatial pyramid
pooling of single-scale models; the 1x1 bottlenecks and per-resolution sums of pyramid models: their "pyramid
fusion"), ``upsampling`` (the upsampling modules and the logits BN-ReLU-1x1 at 1/4 resolution), ``resize_argmax``
(the final bilinear resize of the logits, ArgMax, the casts to uint8).

TensorRT names its layers after the ONNX nodes they come from (the exporter's scopes: ``/backbone/layer1/...``);
a fused layer joins them (``A + B``, ``PWN(A, B)``, ``{ForeignNode[A...B]}``). :func:`group_layer_times` sums
a per-layer profile (TensorRT's IProfiler or the engine inspector's JSON) into the parts; a layer whose
members span parts is reported under ``mixed`` with the parts it spans. No torch, no onnx: the on-target check
(Python 3.8, Jetson) uses it.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional, Tuple

PARTS = ("encoder", "context", "upsampling", "resize_argmax")
PART_TITLES = {
    "encoder": "encoder (incl. input cast/normalise)",
    "context": "SPP / pyramid fusion",
    "upsampling": "upsampling path (+ logits 1x1)",
    "resize_argmax": "final resize + ArgMax",
}
MIXED = "mixed"
OTHER = "other"

_ENCODER = re.compile(r"^/(model/)?backbone/(conv1|bn1|relu|maxpool|layer\d|Resize|Constant|img_)")
# projections: the folded pyramid's per-use copies of its 1x1 bottlenecks (models/fold.py, the export default)
_CONTEXT = re.compile(r"^/(model/)?backbone/(spp|upsample_bottlenecks|projections|Add)")
_UPSAMPLING = re.compile(r"^/(model/)?(backbone/(upsample[./]|upsample_blends)|logits/)")
# top-level nodes of the export wrapper: the input side (cast, channel order, transpose, normalisation) ...
_INPUT = re.compile(r"^/(model/)?(Cast|Gather|Transpose|Sub|Div)$")
# ... and the output side (resize of the logits with its size arithmetic, ArgMax, the casts after it)
_OUTPUT = re.compile(r"^/(model/)?(Resize|Shape|Slice|Concat|Constant|ArgMax|Cast_\d+)(_\d+)?$")
_MEMBER = re.compile(r"/[A-Za-z0-9_./]+")


def part_of_node(name: str) -> Optional[str]:
    """The part an ONNX node name belongs to, or None for a name this split does not know. TensorRT's constant
    layers carry initializer names (``model.backbone.spp...weight``): read as the node scope they belong to."""
    if name.startswith("model."):
        name = "/" + name.replace(".", "/")
    if _ENCODER.match(name) or _INPUT.match(name):
        return "encoder"
    if _CONTEXT.match(name):
        return "context"
    if _UPSAMPLING.match(name):
        return "upsampling"
    if _OUTPUT.match(name):
        return "resize_argmax"
    return None


def parts_of_layer(layer: str) -> List[str]:
    """The parts of the ONNX nodes a TensorRT layer name mentions, in the order they appear (no repeats)."""
    found: List[str] = []
    # a Myelin layer names its first and last node: {ForeignNode[/a/Conv.../b/Resize]}
    members = [layer] if layer.startswith("model.") else _MEMBER.findall(layer.replace("...", " "))
    for member in members:
        part = part_of_node(member)
        if part is not None and part not in found:
            found.append(part)
    return found


def part_of_layer(layer: str) -> str:
    """One part, ``mixed`` (a fused layer over several parts) or ``other`` (reformats, copies without a node)."""
    found = parts_of_layer(layer)
    if not found:
        return OTHER
    return found[0] if len(found) == 1 else MIXED


def group_layer_times(layers: Iterable[Tuple[str, float]]) -> Dict[str, float]:
    """Sum per-layer times (ms) into the parts, plus ``mixed`` and ``other`` where there are such layers."""
    totals: Dict[str, float] = {part: 0.0 for part in PARTS}
    for name, ms in layers:
        key = part_of_layer(name)
        totals[key] = totals.get(key, 0.0) + float(ms)
    return totals


def layer_profiler(trt: Any) -> Any:
    """A TensorRT ``IProfiler`` (``trt``: the ``tensorrt`` module, or TensorRT-RTX's bindings) that sums each
    layer's reported time over the runs it sees: ``context.profiler = p``; run; ``group_layer_times(p.layers())``
    (divide by the number of runs for a per-frame figure)."""

    class LayerProfiler(trt.IProfiler):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times: Dict[str, float] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times[layer_name] = self.times.get(layer_name, 0.0) + float(ms)

        def layers(self) -> List[Tuple[str, float]]:
            return list(self.times.items())

    return LayerProfiler()


def format_parts(totals: Dict[str, float], title: str = "per-part time") -> str:
    """A small markdown table: each part's time and share of the sum."""
    whole = sum(totals.values()) or 1.0
    lines = ["### " + title, "", "| part | ms | share |", "|---|---:|---:|"]
    for key, ms in totals.items():
        if key in (MIXED, OTHER) and ms == 0.0:
            continue
        lines.append("| {} | {:.3f} | {:.0%} |".format(PART_TITLES.get(key, key), ms, ms / whole))
    return "\n".join(lines)


__all__ = ["MIXED", "OTHER", "PARTS", "PART_TITLES", "format_parts", "group_layer_times", "layer_profiler",
           "part_of_layer", "part_of_node", "parts_of_layer"]
