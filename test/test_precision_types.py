"""Precision is one closed type: every member round-trips through file names, the engine sidecar, the node parameter,
the tools' choices, the launch file and the parameters file; its fields replace string parsing; precision/ imports
neither the runtime nor the node (lazily or not)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from trt_segmentation.artifacts import (
    ENGINE_SET,
    CalibrationMethod,
    Precision,
    Target,
    artifact_path,
    artifact_stem,
    names,
)

REPO = Path(__file__).resolve().parents[1]
NAME_RE = re.compile(r"^(?P<model>.+)_(?P<h>\d+)x(?P<w>\d+)_(?P<precision>[a-z0-9-]+)\.(onnx|engine|json)$")


def test_members_and_their_fields() -> None:
    assert names() == ("fp32", "fp16", "int8", "int8-max", "int8-percentile", "int8-kl2048", "mixed", "int8-cpu")
    assert {p: p.calibration for p in Precision} == {
        Precision.FP32: None, Precision.FP16: None, Precision.INT8: CalibrationMethod.ENTROPY,
        Precision.INT8_MAX: CalibrationMethod.MAX, Precision.INT8_PERCENTILE: CalibrationMethod.PERCENTILE,
        Precision.INT8_KL2048: CalibrationMethod.KL2048,
        Precision.MIXED: CalibrationMethod.ENTROPY, Precision.INT8_CPU: CalibrationMethod.MINMAX}
    assert [p for p in Precision if not p.tensorrt] == [Precision.INT8_CPU]
    assert Precision.INT8_CPU.target is Target.ONNXRUNTIME_CPU and Precision.MIXED.target is Target.TENSORRT
    assert [p for p in Precision if p.uses_fp16] == [Precision.FP16, Precision.MIXED]
    assert ENGINE_SET == (Precision.FP32, Precision.FP16, Precision.INT8, Precision.MIXED)
    assert [p for p in Precision if p.implicit_ok] == list(ENGINE_SET)


@pytest.mark.parametrize("precision", list(Precision))
def test_every_member_round_trips_through_its_name_and_file_names(precision: Precision, tmp_path: Path) -> None:
    assert Precision.parse(precision.value) is precision and Precision.parse(precision) is precision
    assert str(precision) == f"{precision}" == precision.value and precision == precision.value
    for suffix in (".onnx", ".engine", ".json"):
        path = artifact_path(tmp_path, "swiftnet_ss_rn18", 512, 1024, precision, suffix)
        match = NAME_RE.match(path.name)
        assert match and Precision.parse(match["precision"]) is precision
        assert (match["model"], int(match["h"]), int(match["w"])) == ("swiftnet_ss_rn18", 512, 1024)
    assert artifact_stem("m", 1, 2, precision.value) == artifact_stem("m", 1, 2, precision)


def test_the_default_method_has_one_file_name_and_bad_names_list_the_choices() -> None:
    assert Precision.parse("int8-entropy") is Precision.INT8 and Precision.parse(" INT8-CPU ") is Precision.INT8_CPU
    assert artifact_stem("m", 1, 2, "int8-entropy") == "m_1x2_int8"
    for bad in ("int9", "int8-kl", "fp16-max", "int8-cpu-max", ""):
        with pytest.raises(ValueError, match="choose one of fp32, fp16, int8, int8-max, int8-percentile, "
                                             "int8-kl2048, mixed, int8-cpu"):
            Precision.parse(bad)


@pytest.mark.parametrize("precision", [p for p in Precision if p.tensorrt])
def test_the_sidecar_round_trips_every_tensorrt_member(precision: Precision, tmp_path: Path) -> None:
    from trt_segmentation.engine.metadata import EngineMetadata, check_compatible, read_metadata, write_metadata

    engine = artifact_path(tmp_path, "m", 8, 16, precision, ".engine")
    write_metadata(engine, EngineMetadata(model="m", height=8, width=16, precision=precision, tensorrt_version="10.3.0",
                                          builder="tensorrt", typing="strong", gpu_name="Orin", compute_capability="8.7",
                                          onnx_sha256="0" * 64))
    meta = read_metadata(engine)
    assert type(meta.precision) is str and Precision.parse(meta.precision) is precision
    assert check_compatible(meta, precision=precision) == []
    assert check_compatible(meta, precision=precision.value) == []


def test_the_node_parameter_takes_every_member_and_nothing_else() -> None:
    from trt_segmentation.node.params import PARAMETERS, params_from_dict

    spec = next(p for p in PARAMETERS if p.name == "precision")
    assert spec.choices == names()
    for precision in Precision:
        assert Precision.parse(params_from_dict({"precision": precision.value}).precision) is precision
    with pytest.raises(ValueError, match="choose one of"):
        params_from_dict({"precision": "int8-entropy2"})


def test_the_launch_file_and_the_parameters_file_name_every_member() -> None:
    launch = ast.parse((REPO / "launch" / "segmentation.launch.py").read_text())
    arguments = next(ast.literal_eval(n.value) for n in launch.body if isinstance(n, ast.Assign)
                     and getattr(n.targets[0], "id", "") == "PARAMETER_ARGUMENTS")
    described = set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", arguments["precision"]))
    yaml_lines = (REPO / "config" / "segmentation.yaml").read_text().splitlines()
    at = next(i for i, line in enumerate(yaml_lines) if line.strip().startswith("precision:"))
    comment = " ".join(line.strip(" #") for line in yaml_lines[at - 4 : at])
    choices = re.search(r"\(([a-z0-9 |-]+)\)\s*$", comment)
    assert choices and tuple(c.strip() for c in choices.group(1).split("|")) == names()
    assert set(names()) <= described


def _precision_choices(tool: str) -> set:
    """The ``--precision`` choices of a tool's argparse parser (the code lives in trt_segmentation/commands/)."""
    module = importlib.import_module(f"trt_segmentation.commands.{tool}")
    (action,) = [a for a in module.build_parser()._actions if "--precision" in a.option_strings]
    return set(action.choices)


def test_the_tools_offer_every_member() -> None:
    assert _precision_choices("build_engine") == set(names()) | {"int8-entropy", "all"}
    assert _precision_choices("calibrate") == set(names()) | {"int8-entropy"}
    assert _precision_choices("evaluate") == set(names()) | {"int8-entropy"}


def test_precision_imports_neither_runtime_nor_node() -> None:
    for path in sorted((REPO / "trt_segmentation" / "precision").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = "." * node.level + (node.module or "")
                assert not re.match(r"^(\.\.|trt_segmentation\.)(runtime|node|node_params)\b", target), (path, target)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith(("trt_segmentation.runtime", "trt_segmentation.node")), path
