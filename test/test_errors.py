"""One error root: every exception class defined in trt_segmentation derives from errors.SegmentationError (and
keeps its builtin base), and every command turns it (a user's error) into one ``error:`` line; any other exception
(a bug) keeps its traceback."""

from __future__ import annotations

import ast
import builtins
import subprocess
import sys
from pathlib import Path

import pytest

from trt_segmentation import cli
from trt_segmentation.errors import InputError, MissingFile, SegmentationError

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trt_segmentation"
BUILTIN_EXCEPTIONS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


def _classes() -> dict[str, tuple[str, list[str]]]:
    """class name -> (file, base names) of every class in the package (read from the source: no module is
    imported, so modules that need TensorRT or rclpy count too)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "?"
                         for b in node.bases]
                assert node.name not in found or node.name.startswith("_"), f"two classes named {node.name}"
                found[node.name] = (str(path.relative_to(ROOT)), bases)
    return found


def _ancestors(name: str, classes: dict[str, tuple[str, list[str]]]) -> set[str]:
    out: set[str] = set()
    todo = [name]
    while todo:
        for base in classes.get(todo.pop(), ("", []))[1]:
            if base not in out:
                out.add(base)
                todo.append(base)
    return out


def test_every_package_exception_derives_from_the_root() -> None:
    classes = _classes()
    exceptions = {n: classes[n][0] for n in classes
                  if n != "SegmentationError" and _ancestors(n, classes) & (BUILTIN_EXCEPTIONS | {"SegmentationError"})}
    assert len(exceptions) >= 20, sorted(exceptions)  # the walk really finds them
    stray = [f"{path}: {name}" for name, path in exceptions.items()
             if "SegmentationError" not in _ancestors(name, classes)]
    assert not stray, "exceptions outside the root:\n" + "\n".join(stray)


def test_the_builtin_bases_stay() -> None:
    from trt_segmentation.engine.metadata import MetadataError
    from trt_segmentation.node.startup import ModelFileError
    from trt_segmentation.runtime.backend import BackendError
    from trt_segmentation.runtime.tensorrt_backend import EngineMismatch

    assert issubclass(MetadataError, ValueError) and issubclass(MetadataError, SegmentationError)
    assert issubclass(BackendError, RuntimeError) and issubclass(EngineMismatch, SegmentationError)
    assert issubclass(ModelFileError, FileNotFoundError) and issubclass(ModelFileError, SegmentationError)


def test_command_wrapper_prints_one_line_and_exit_code_2(capsys) -> None:  # noqa: ANN001
    def failing(exc: BaseException):  # noqa: ANN202
        @cli.command
        def main(argv: list[str] | None = None) -> int:
            raise exc
        return main

    assert failing(SegmentationError("bad thing"))([]) == 2
    assert capsys.readouterr().err == "error: bad thing\n"
    assert failing(MissingFile(2, "No such file or directory", "x.onnx"))([]) == 2
    assert capsys.readouterr().err == "error: file not found: x.onnx\n"
    assert failing(InputError("size must be positive"))([]) == 2
    assert capsys.readouterr().err == "error: size must be positive\n"
    for bug in (ValueError("a bug's value"), FileNotFoundError(2, "No such file or directory", "x"), KeyError("k")):
        with pytest.raises(type(bug)):  # not ours: propagates, so Python prints the traceback
            failing(bug)([])
        assert capsys.readouterr().err == ""


def test_a_bug_in_a_command_prints_its_traceback_and_a_non_zero_code() -> None:
    code = ("import sys\nfrom trt_segmentation import cli\n"
            "@cli.command\ndef main(argv=None):\n    return int('not a number')\n"
            "sys.exit(main([]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr and "ValueError: invalid literal" in out.stderr


def test_a_real_command_reports_a_user_input_error_in_one_line(tmp_path: Path) -> None:
    onnx = tmp_path / "x_64x64_fp32.onnx"
    onnx.write_bytes(b"not an onnx file")
    out = subprocess.run([sys.executable, "-m", "trt_segmentation.commands.build_engine", "--onnx", str(onnx),
                          "--precision", "fp32", "--out-dir", str(tmp_path / "out")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {onnx} is not a readable ONNX file"), out.stderr


def test_every_command_main_is_wrapped() -> None:
    """Each tool's main goes through cli.command (its __wrapped__ is set), so no tool prints a traceback for a
    package error (the lightweight check: the module's source names the decorator on main)."""
    unwrapped = []
    for tool in cli.TOOLS:
        source = (PACKAGE / "commands" / f"{tool}.py").read_text()
        if "@cli.command\ndef main(" not in source:
            unwrapped.append(tool)
    assert unwrapped == [], unwrapped


def test_a_real_command_reports_a_package_error_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x_64x64_fp32.onnx"
    bad.write_bytes(b"not an onnx file")
    out = subprocess.run([sys.executable, "-m", "trt_segmentation.commands.build_on_target", "--engine-dir",
                          str(tmp_path), "--model", "nothing", "--size", "64x64"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
