"""A torch-free stand-in for an exported SwiftNet: a small ONNX graph written with ``onnx.helper`` that keeps the
export contract (trt_segmentation/export.py): uint8 NHWC RGB ``image`` in, uint8 ``labels`` (argmax over 19
classes) out, the :class:`ModelContract` JSON in ``metadata_props``, and the in-graph preprocessing the export
puts there (cast, NHWC -> NCHW, ``(x - mean) / std``). The body is a few seeded 3x3 convolutions, so neighbouring
pixels matter and the labels vary across an image.

The test legs without torch (scripts/test_jazzy.sh) start the node on this file; the main leg uses real exports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from trt_segmentation.onnx_metadata import METADATA_KEY, ModelContract

MEAN = (123.675, 116.28, 103.53)  # the ImageNet statistics SwiftNet normalises with, in 0..255 units
STD = (58.395, 57.12, 57.375)
NUM_CLASSES = 19
WIDTH, DEPTH = 64, 4


def tiny_model(height: int, width: int, seed: int = 0, model: str = "swiftnet_ss_rn18",
               batch: int = 1) -> onnx.ModelProto:
    """The graph for a static ``batch`` x ``height`` x ``width`` input; every weight a function of ``seed`` (the
    same weights for every ``batch``, so a batch-N file's rows equal the batch-1 file's frames)."""
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(np.array(MEAN, np.float32).reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array(STD, np.float32).reshape(1, 3, 1, 1), "std"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["image_f"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["x0"]),
    ]
    # 3x3 convolutions of WIDTH channels at full resolution: 64 x 4 takes 75 ms at 256x512 through ONNX Runtime on 2
    # cores here, the order of SwiftNet-RN18's time at that size, so the node tests that depend on inference taking
    # time (overload, drops) see a similar load
    channels = [3] + [WIDTH] * DEPTH + [NUM_CLASSES]
    for i, (cin, cout) in enumerate(zip(channels, channels[1:])):
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        initializers += [numpy_helper.from_array(w, f"conv{i}_w"), numpy_helper.from_array(b, f"conv{i}_b")]
        last = i == len(channels) - 2
        out = "logits" if last else f"c{i}"
        nodes.append(helper.make_node("Conv", [f"x{i}", f"conv{i}_w", f"conv{i}_b"], [out], pads=[1, 1, 1, 1],
                                      name="/logits/conv/Conv" if last else f"/body/conv{i}/Conv"))
        if not last:
            nodes.append(helper.make_node("Relu", [out], [f"x{i + 1}"]))
    nodes += [
        helper.make_node("ArgMax", ["logits"], ["argmax"], axis=1, keepdims=0),
        helper.make_node("Cast", ["argmax"], ["labels"], to=TensorProto.UINT8),
    ]
    graph = helper.make_graph(
        nodes, "tiny_segmentation",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [batch, height, width, 3])],
        [helper.make_tensor_value_info("labels", TensorProto.UINT8, [batch, height, width])],
        initializers)
    # IR 8 / opset 17: what the real export writes, readable by every ONNX Runtime the legs install
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="trt_segmentation-tests")
    contract = ModelContract(model=model, num_classes=NUM_CLASSES, height=height, width=width,
                             input_format="uint8_rgb", output="labels_uint8", input_name="image",
                             output_name="labels", mean=MEAN, std=STD, extra={"test_model": "tiny"}, batch=batch)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.checker.check_model(proto)
    return proto


def write_tiny_model(path: Path, height: int, width: int, seed: int = 0, batch: int = 1) -> Path:
    """:func:`tiny_model` saved to ``path`` (parent folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(tiny_model(height, width, seed, batch=batch), str(path))
    return path
