"""A folder of ONNX variants as the build machine writes it, made without torch (tiny_model.py plus Q/DQ written
with onnx.helper), and the vehicle's commands run on it in a subprocess whose ``import tensorrt`` finds the
recording stand-in for TensorRT 8.5-10.x (test/trt_standin/tensorrt). Runs on the Python 3.8 leg.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from trt_segmentation.onnx_metadata import METADATA_KEY

REPO = Path(__file__).resolve().parents[1]
STANDIN = Path(__file__).resolve().parent / "trt_standin"
MODEL, H, W = "swiftnet_ss_rn18", 32, 64
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import tiny_model  # noqa: E402


def int8_of(fp32: onnx.ModelProto, seed: int = 3) -> onnx.ModelProto:
    """Q/DQ in front of every Conv's activation input (int8 symmetric, seeded scales), as the int8 variant has."""
    model = onnx.ModelProto()
    model.CopyFrom(fp32)
    rng = np.random.default_rng(seed)
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            x = node.input[0]
            scale = np.float32(rng.uniform(0.001, 0.1))
            model.graph.initializer.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{x}_scale"),
                                            numpy_helper.from_array(np.array(0, np.int8), f"{x}_zp")])
            nodes += [helper.make_node("QuantizeLinear", [x, f"{x}_scale", f"{x}_zp"], [f"{x}_q"]),
                      helper.make_node("DequantizeLinear", [f"{x}_q", f"{x}_scale", f"{x}_zp"], [f"{x}_dq"])]
            node.input[0] = f"{x}_dq"
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _as_precision(model: onnx.ModelProto, precision: str, opset: Optional[int] = None) -> onnx.ModelProto:
    """``model`` with the contract's precision set (and the opset, for the mixed variant's 19)."""
    import json

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for entry in out.metadata_props:
        if entry.key == METADATA_KEY:
            contract = json.loads(entry.value)
            contract["precision"] = precision
            entry.value = json.dumps(contract)
    if opset is not None:
        for item in out.opset_import:
            if item.domain in ("", "ai.onnx"):
                item.version = opset
        out.ir_version = 9
    return out


def variant_folder(folder: Path, precisions: Sequence[str] = ("fp32", "fp16", "int8", "mixed"),
                   model: str = MODEL) -> Path:
    """``folder`` with ``<model>_32x64_<precision>.onnx`` for each of ``precisions``: fp32 the tiny model, fp16 the
    same graph (what the stand-in needs), int8-style variants Q/DQ at opset 17, mixed Q/DQ at opset 19 (the FP16
    Q/DQ of a real mixed variant need 19: TensorRT 8.5/8.6 build it the implicit way). ``model``: the name in the
    files and their contract (another than the default makes a hint that forgot ``--model`` look for other files)."""
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = tiny_model(H, W, model=model)
    for node in fp32.graph.node:  # the first convolutions named as the encoder's (the implicit mixed build's rule)
        if node.name.startswith("/body/conv") and node.name[len("/body/conv")] in "012":
            node.name = f"/backbone/layer{int(node.name[len('/body/conv')]) + 1}/Conv"
    for precision in precisions:
        if precision in ("fp32", "fp16"):
            variant = _as_precision(fp32, precision)
        elif precision == "mixed":
            variant = _as_precision(int8_of(fp32), precision, opset=19)
        else:
            variant = _as_precision(int8_of(fp32), precision)
        onnx.save(variant, str(onnx_path(folder, precision, model=model)))
    return folder


def onnx_path(folder: Path, precision: str, suffix: str = ".onnx", model: str = MODEL) -> Path:
    return folder / f"{model}_{H}x{W}_{precision}{suffix}"


def recalibrate(variant: Path, factor: float = 2.0) -> str:
    """Multiply the first activation Q scale of ``variant`` by ``factor`` (a re-calibration); its tensor name."""
    model = onnx.load(str(variant))
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    init = next(i for i in model.graph.initializer if i.name == node.input[1])
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(factor), init.name))
    onnx.save(model, str(variant))
    return node.input[0]


def run_standin(args: List[str], version: str = "8.5.2", dla_cores: int = 0, reject_table: bool = False,
                extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``python <args>`` from the repository root with the stand-in TensorRT ``version`` importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(STANDIN), str(REPO)]), TRT_STANDIN_VERSION=version,
               TRT_STANDIN_DLA_CORES=str(dla_cores))
    env.pop("TRT_STANDIN_REJECT_TABLE", None)
    if reject_table:
        env["TRT_STANDIN_REJECT_TABLE"] = "1"
    env.update(extra_env or {})
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
