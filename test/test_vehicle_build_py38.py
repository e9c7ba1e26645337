"""The on-target build on the vehicle's Python (3.8 leg: numpy, onnx, onnxruntime; no torch, no TensorRT): the
Q/DQ scales of a variant become TensorRT's calibration table bit for bit, and trt_seg_build_on_target runs up to
the point where TensorRT is needed, says so, and imports no torch on the way (issue 18). The int8 variant here is
a Q/DQ graph written with onnx.helper (the build tools that make real ones do not run on 3.8)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import onnx
from onnx import numpy_helper

from trt_segmentation.engine.calibration_table import activation_scales, parse_table, table_text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import tiny_model  # noqa: E402
from vehicle_standin import int8_of  # noqa: E402


def test_qdq_scales_become_the_table_bit_for_bit_on_this_python(tmp_path: Path) -> None:
    fp32 = tiny_model(32, 64)
    onnx.save(fp32, str(tmp_path / "swiftnet_ss_rn18_32x64_fp32.onnx"))
    int8 = int8_of(fp32)
    onnx.save(int8, str(tmp_path / "swiftnet_ss_rn18_32x64_int8.onnx"))
    init = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    expected = {n.input[0]: init[n.input[1]] for n in int8.graph.node if n.op_type == "QuantizeLinear"}
    scales = parse_table(table_text(activation_scales(tmp_path / "swiftnet_ss_rn18_32x64_int8.onnx",
                                                      tmp_path / "swiftnet_ss_rn18_32x64_fp32.onnx")))
    assert sorted(scales) == sorted(expected) and len(scales) == 5
    assert all(struct.pack("!f", scales[k]) == struct.pack("!f", float(v)) for k, v in expected.items())


def test_the_build_command_runs_until_tensorrt_is_needed_without_torch(tmp_path: Path) -> None:
    onnx.save(tiny_model(32, 64), str(tmp_path / "swiftnet_ss_rn18_32x64_fp32.onnx"))
    code = ("import sys, runpy\n"
            "sys.argv = ['tools/build_on_target.py', '--engine-dir', sys.argv[1]]\n"
            "runpy.run_path('tools/build_on_target.py', run_name='__main__')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "real TensorRT is not installed here" in proc.stderr and "[1/1] fp32: building" in proc.stdout
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("torch", "modelopt", "rclpy")} and \
        "onnxruntime.quantization" not in imported
