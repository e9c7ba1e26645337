"""ONNX Runtime runs Q/DQ convolutions exactly on every x86 CPU.

On x86 CPUs without VNNI (AVX2; AVX-512 without VNNI) ONNX Runtime's fused U8S8 INT8 convolution sums pairs of
products in 16 bits, which saturate: with x = w = 127 and 4 input channels it returned 512 instead of 64516 on
such a machine. ``open_session`` sets ``session.x64quantprecision`` so the exact kernels run; on a CPU with VNNI
both paths are exact and this test passes either way, on an AVX2-only CPU it fails without the option.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trt_segmentation.onnx_metadata import METADATA_KEY, ModelContract
from trt_segmentation.runtime.onnxruntime_backend import X64_EXACT_INT8_KEY, open_session


def qdq_conv(channels: int, kernel: int) -> bytes:
    """x -> Q/DQ (int8, scale 1) -> Conv with int8 weights 127 (scale 1): ORT fuses it into an INT8 convolution."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    initializers = [
        numpy_helper.from_array(np.array(1.0, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(np.full((8, channels, kernel, kernel), 127, np.int8), "w_q"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["x_q"]),
        helper.make_node("DequantizeLinear", ["x_q", "scale", "zero"], ["x_dq"]),
        helper.make_node("DequantizeLinear", ["w_q", "scale", "zero"], ["w_dq"]),
        helper.make_node("Conv", ["x_dq", "w_dq"], ["y"], pads=[kernel // 2] * 4),
    ]
    model = helper.make_model(helper.make_graph(nodes, "qdq_conv", [x], [y], initializers), ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    contract = ModelContract("qdq_conv", 8, 6, 6, "float_normalised", "logits", "x", "y", (0.0, 0.0, 0.0),
                             (1.0, 1.0, 1.0), precision="int8")
    onnx.helper.set_model_props(model, {METADATA_KEY: contract.to_json()})
    return model.SerializeToString()


@pytest.mark.parametrize("channels,kernel", [(4, 1), (64, 1), (16, 3)])
def test_int8_convolution_sums_are_exact(channels: int, kernel: int) -> None:
    session, contract = open_session(qdq_conv(channels, kernel), threads=1, providers=["CPUExecutionProvider"])
    assert contract.precision == "int8"
    out = session.run(["y"], {"x": np.full((1, channels, 6, 6), 127, np.float32)})[0]
    centre = out[0, :, 3, 3]  # away from the zero padding: every tap sees 127 * 127
    np.testing.assert_array_equal(centre, np.full(8, 127 * 127 * channels * kernel * kernel, np.float32))


def test_every_session_asks_for_the_exact_kernels() -> None:
    """On a CPU with VNNI the test above passes without the option too; this one does not."""
    session, _ = open_session(qdq_conv(4, 1), threads=1, providers=["CPUExecutionProvider"])
    assert session.get_session_options().get_session_config_entry(X64_EXACT_INT8_KEY) == "1"
    assert X64_EXACT_INT8_KEY == "session.x64quantprecision"  # onnxruntime_session_options_config_keys.h
