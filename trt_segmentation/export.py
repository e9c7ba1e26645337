"""PyTorch SwiftNet -> static-shape ONNX, with camera-byte preprocessing and argmax optionally in the graph.

``uint8_rgb``/``uint8_bgr`` inputs take the camera buffers as they arrive (N, H, W, 3) uint8 (N = the static
batch, 1 for one camera, one frame per camera in multi-camera mode): the graph casts,
reorders channels, normalises and transposes, so no per-pixel work is left to Python. ``labels_*`` outputs put
ArgMax in the graph so only H*W bytes leave the GPU. ``labels_uint8`` is ArgMax -> Cast(float32) -> Cast(uint8):
one graph that every claimed TensorRT parses (8.5's Cast importer casts to UINT8 only from FP32/FP16, 8.6's
ICastLayer converts UINT8 from and to float types only; a direct ArgMax(INT32) -> UINT8 cast fails on both).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from .artifacts import InputFormat
from .errors import SegmentationError
from .models.swiftnet import SwiftNet, check_input_size
from .onnx_metadata import INPUT_FORMATS, METADATA_KEY, OUTPUT_KINDS, ModelContract

MIN_OPSET = 17


class ExportError(ValueError, SegmentationError):
    """The export was asked for something unsupported (size, option)."""


@dataclass(frozen=True)
class ExportOptions:
    height: int
    width: int
    input_format: InputFormat = InputFormat.UINT8_RGB
    output: str = "labels_uint8"
    opset: int = 17
    batch: int = 1  # static: frames per run (one per camera in multi-camera mode)
    fold_batchnorm: bool = True  # exact (models/fold.py): decoder BNs folded into convs; False: the plain graph
    argmax_before_resize: bool = False  # approximate: ArgMax at 1/4 resolution, labels resized nearest

    def validate(self) -> None:
        if self.batch < 1:
            raise ExportError(f"batch must be at least 1, got {self.batch}")
        try:
            object.__setattr__(self, "input_format", InputFormat.parse(self.input_format))
        except ValueError:
            raise ExportError(f"unknown input format {self.input_format!r}; choose one of {', '.join(INPUT_FORMATS)}"
                              ) from None
        if self.output not in OUTPUT_KINDS:
            raise ExportError(f"unknown output {self.output!r}; choose one of {', '.join(OUTPUT_KINDS)}")
        if self.argmax_before_resize and self.output == "logits":
            raise ExportError("argmax_before_resize gives labels; it needs a labels_* output, not logits")
        if self.opset < MIN_OPSET:
            raise ExportError(f"opset {self.opset} is too old; use {MIN_OPSET} or newer")


class ExportWrapper(nn.Module):
    """Puts preprocessing and argmax around the model; a fixed input size makes every resize constant."""

    def __init__(self, model: SwiftNet, options: ExportOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options
        self.channel_index = torch.tensor([2, 1, 0], dtype=torch.int64)  # BGR -> RGB, a graph constant

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not self.options.input_format.camera:
            x = image
        else:
            # cast before the transpose: TensorRT refuses a uint8 Transpose
            x = image.to(torch.float32)
            if self.options.input_format is InputFormat.UINT8_BGR:
                x = torch.index_select(x, 3, self.channel_index)
            x = self.model.normalise(x.permute(0, 3, 1, 2))
        if self.options.argmax_before_resize:
            labels = labels_resized_nearest(self.model, x)
        else:
            logits = self.model.forward_normalised(x)
            if self.options.output == "logits":
                return logits
            labels = torch.argmax(logits, dim=1)
        if self.options.output == "labels_int32":
            return labels.to(torch.int32)
        # through float32: the class index (< 256) is exact in float32, and TensorRT 8.5/8.6 cast to UINT8 from
        # float types only (see the module docstring)
        return labels.to(torch.float32).to(torch.uint8)


def labels_resized_nearest(model: SwiftNet, x: torch.Tensor) -> torch.Tensor:
    """ArgMax of the 1/4-resolution logits, resized nearest to the input size (float class indices, N x H x W):
    the bilinear resize of all logits channels to full size is skipped; labels differ along class borders."""
    quarter = torch.argmax(model.logits(model.backbone(x)), dim=1, keepdim=True).to(torch.float32)
    size = (int(x.shape[2]), int(x.shape[3]))
    return torch.nn.functional.interpolate(quarter, size=size, mode="nearest")[:, 0]


def example_input(options: ExportOptions) -> torch.Tensor:
    if options.input_format == "float_normalised":
        return torch.zeros(options.batch, 3, options.height, options.width, dtype=torch.float32)
    return torch.zeros(options.batch, options.height, options.width, 3, dtype=torch.uint8)


def contract_for(model: SwiftNet, options: ExportOptions) -> ModelContract:
    mean = tuple(float(v) for v in model.mean.flatten())
    std = tuple(float(v) for v in model.std.flatten())
    return ModelContract(
        model=model.arch.name,
        num_classes=model.arch.num_classes,
        height=options.height,
        width=options.width,
        input_format=options.input_format,
        output=options.output,
        input_name="image",
        output_name="logits" if options.output == "logits" else "labels",
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
        batch=options.batch,
        # the fold is recorded either way (files written before it was the default have no key: plain)
        extra={"fold_batchnorm": str(options.fold_batchnorm).lower(),
               **({"argmax_before_resize": "true"} if options.argmax_before_resize else {})},
    )


def export_model(model: SwiftNet, options: ExportOptions) -> onnx.ModelProto:
    """Trace ``model`` at a static size into an ONNX ModelProto carrying its :class:`ModelContract`."""
    options.validate()
    try:
        check_input_size(model.arch, options.height, options.width)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    model = model.eval()
    if options.fold_batchnorm:
        from .models.fold import fold_batchnorms

        model = fold_batchnorms(model)
    wrapper = ExportWrapper(model, options).eval()
    contract = contract_for(model, options)
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices say nothing actionable here
        torch.onnx.export(
            wrapper,
            (example_input(options),),
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to file-like objects too
            input_names=[contract.input_name],
            output_names=[contract.output_name],
            opset_version=options.opset,
            dynamo=False,  # legacy exporter: scoped node names (/model/backbone/layer1/...) that precision/ selects by
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    set_contract(proto, contract)
    onnx.checker.check_model(proto)
    return proto


def set_contract(proto: onnx.ModelProto, contract: ModelContract) -> None:
    """Write (or replace) the contract in the model's metadata_props."""
    for prop in list(proto.metadata_props):
        if prop.key == METADATA_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = contract.to_json()


def contract_of(proto: onnx.ModelProto) -> ModelContract:
    """The contract an exported graph in memory carries (onnx_metadata.read_contract reads it from a file)."""
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelContract.from_json(prop.value)
    raise ExportError("this ONNX file was not exported by trt_segmentation (no contract in its metadata)")


def export_onnx(model: SwiftNet, path: str | Path, options: ExportOptions) -> ModelContract:
    """Export to ``path`` (parent folders are created) and return the contract written into it."""
    proto = export_model(model, options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    return contract_of(proto)
