"""The tools as a ROS user finds them: installed as trt_seg_<tool> console scripts by pip (bin/) and, through
setup.cfg's install_scripts, by an ament-style ``setup.py install`` (lib/trt_segmentation/, where ``ros2 run``
looks); every tools/*.py shell is executable; the commands import without their heavy dependencies; one flag per
concept (old spellings still read), one missing-file message, hints that name the command as it runs there."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trt_segmentation import cli

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "onnx", "onnxruntime", "modelopt", "rclpy", "rosbags", "tensorrt", "tensorrt_rtx_bindings",
         "pycuda", "PIL", "yaml")
SOURCE_ONLY = ("benchmark_node", "soak_node")  # shells over the source-only harness/, not installed
NOT_CHECKED = ("demo",)  # owned elsewhere; made executable by its owner


def test_setup_py_installs_exactly_the_tools_cli_lists() -> None:
    tree = ast.parse((REPO / "setup.py").read_text())
    (listed,) = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "TOOLS" for t in n.targets)]
    for node in tree.body:  # TOOLS += (...) lines that follow it
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == "TOOLS":
            listed = tuple(listed) + tuple(ast.literal_eval(node.value))
    assert tuple(listed) == cli.TOOLS
    shells = {p.stem for p in (REPO / "tools").glob("*.py")}
    assert shells == set(cli.TOOLS) | set(SOURCE_ONLY) | set(NOT_CHECKED)


@pytest.mark.parametrize("tool", [*cli.TOOLS, *SOURCE_ONLY])
def test_every_tool_shell_is_executable(tool: str) -> None:
    path = REPO / "tools" / f"{tool}.py"
    assert os.access(path, os.X_OK), f"{path} is not executable"
    assert path.read_text().startswith("#!/usr/bin/env python3\n")
    if tool in cli.TOOLS:  # a thin shell: the code lives in the package
        assert f"from trt_segmentation.commands.{tool} import main" in path.read_text()
        assert len(path.read_text().splitlines()) < 15


def test_commands_import_without_heavy_dependencies() -> None:
    code = (
        "import importlib, sys\n"
        f"for tool in {cli.TOOLS!r}:\n"
        "    assert callable(importlib.import_module('trt_segmentation.commands.' + tool).main)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------------------------------------------- installing
@pytest.fixture(scope="module")
def source_copy(tmp_path_factory) -> Path:
    """The package's tracked files (and the new, not yet tracked commands/) in a folder of their own, so that the
    installs below build there and leave nothing in the working tree."""
    src = tmp_path_factory.mktemp("source")
    listed = subprocess.run(["git", "ls-files", "setup.py", "setup.cfg", "package.xml", "resource", "launch",
                             "config", "trt_segmentation"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    files = set(listed) | {str(p.relative_to(REPO)) for p in (REPO / "trt_segmentation").rglob("*.py")}
    for name in sorted(files):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    return src


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def _checkout_install() -> str:
    """Where a fresh interpreter of this environment, started outside the repository, imports the package from."""
    return subprocess.run([sys.executable, "-c", "import trt_segmentation; print(trt_segmentation.__file__)"],
                          cwd="/", env=_env(Path("/nonexistent")), capture_output=True, text=True, timeout=60,
                          check=True).stdout.strip()


def _site(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def test_pip_install_puts_the_console_scripts_on_path(source_copy: Path, tmp_path: Path) -> None:
    before = _checkout_install()
    prefix = tmp_path / "target"
    # --target, not --prefix: pip's --prefix first uninstalls the copy this environment has (the checkout's editable
    # install, which every other test relies on); --target implies --ignore-installed and leaves it alone
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(prefix), "."], cwd=source_copy, capture_output=True, text=True, timeout=300, check=True)
    installed = sorted(p.name for p in (prefix / "bin").iterdir())
    assert installed == sorted(["segmentation_node", *(cli.script_name(t) for t in cli.TOOLS)])
    env = _env(prefix, PATH=f"{prefix / 'bin'}{os.pathsep}{os.environ['PATH']}")
    work = tmp_path / "elsewhere"  # not the repository: no tools/ folder in sight
    work.mkdir()
    for tool in cli.TOOLS:
        out = subprocess.run([cli.script_name(tool), "--help"], cwd=work, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"{tool}: {out.stderr}"
        assert out.stdout.startswith(f"usage: {cli.script_name(tool)} "), out.stdout[:200]
    hint = subprocess.run([sys.executable, "-c", "from trt_segmentation import cli; import trt_segmentation as t; "
                           "print(t.__file__); print(cli.tool_command('build_engine', '--onnx', 'a b.onnx'))"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert hint[0].startswith(str(prefix))  # the installed copy, not the checkout
    assert hint[1] == "trt_seg_build_engine --onnx 'a b.onnx'"
    assert _checkout_install() == before  # this environment's own install untouched


def test_ament_style_install_puts_them_where_ros2_run_looks(source_copy: Path, tmp_path: Path) -> None:
    """colcon's ament_python build runs ``setup.py ... install --prefix``; setup.cfg's install_scripts sends the
    scripts to <prefix>/lib/trt_segmentation/, which is where ``ros2 run`` looks (ament index -> prefix ->
    lib/<package>/<executable>)."""
    prefix = tmp_path / "install"
    (tmp_path / "egg").mkdir()
    subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path / "egg"), "build",
                    "--build-base", str(tmp_path / "build"), "install", "--prefix", str(prefix),
                    "--record", str(tmp_path / "record.txt"), "--single-version-externally-managed"],
                   cwd=source_copy, capture_output=True, text=True, timeout=300, check=True)
    lib = prefix / "lib" / "trt_segmentation"
    assert sorted(p.name for p in lib.iterdir()) == sorted(["segmentation_node",
                                                            *(cli.script_name(t) for t in cli.TOOLS)])
    assert not (prefix / "bin").exists()
    assert _checkout_install() == str(REPO / "trt_segmentation" / "__init__.py")
    env = _env(_site(prefix), AMENT_PREFIX_PATH=str(prefix))
    lookup = ("from ament_index_python.packages import get_package_prefix; import os, sys; "
              "d = os.path.join(get_package_prefix('trt_segmentation'), 'lib', 'trt_segmentation'); "
              "print(' '.join(sorted(f for f in os.listdir(d) if os.access(os.path.join(d, f), os.X_OK))))")
    found = subprocess.run([sys.executable, "-c", lookup], env=env, capture_output=True, text=True, timeout=60,
                           check=True).stdout.split()
    assert set(found) >= {cli.script_name(t) for t in cli.TOOLS}
    for tool in ("model_info", "check_on_target", "play_rosbag"):
        out = subprocess.run([str(lib / cli.script_name(tool)), "--help"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"{tool}: {out.stderr}"
    hint = subprocess.run([sys.executable, "-c", "from trt_segmentation import cli; "
                           "print(cli.tool_command('build_engine'))"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60, check=True).stdout.strip()
    assert hint == "ros2 run trt_segmentation trt_seg_build_engine"


def test_in_the_source_checkout_hints_name_the_shell() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AMENT_PREFIX_PATH"}
    out = subprocess.run([sys.executable, "-c", "from trt_segmentation import cli; "
                          "print(cli.tool_command('train', '--resume', 'runs/x'))"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out == "python tools/train.py --resume runs/x"


# --------------------------------------------------------------------------------------------- conventions
@pytest.mark.parametrize("tool", cli.TOOLS)
def test_every_help_exits_0_and_uses_the_shared_flags(tool: str) -> None:
    out = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"ros2 run trt_segmentation {cli.script_name(tool)}" in out.stdout
    for old in ("--precisions", "--data-root", "--out-dir", "--models"):  # only as old spellings in the epilog
        assert f"\n  {old} " not in out.stdout, f"{tool} still offers {old}"
    for old, new in cli.RENAMED.get(tool, {}).items():
        assert f"{old} (now {new})" in out.stdout


def test_old_spellings_are_read_as_the_new_flags() -> None:
    from trt_segmentation.commands import benchmark, calibrate, check_on_target, export_onnx, train

    args = cli.parse_args(calibrate.build_parser(), ["--onnx", "m.onnx", "--precision", "int8", "--count", "8",
                                                     "--out-dir=out", "--calibration-batch", "4"], "calibrate")
    assert (args.calibration_count, args.out, args.calibration_batch) == (8, Path("out"), 4)
    args = cli.parse_args(benchmark.build_parser(), ["--onnx-dir", "a", "--precisions", "fp32", "int8", "--models",
                                                     "m1", "--model", "m2"], "benchmark")
    assert (args.precision, args.model) == (["fp32", "int8"], ["m1", "m2"])
    assert cli.parse_args(train.build_parser(), ["--data-root", "d"], "train").data == Path("d")
    args = cli.parse_args(export_onnx.build_parser(), ["--random-weights", "--input", "uint8_bgr"], "export_onnx")
    assert args.input_format == "uint8_bgr"
    assert cli.parse_args(export_onnx.build_parser(), ["--random-weights", "--input=float_normalised"],
                          "export_onnx").input_format == "float_normalised"
    args = cli.parse_args(check_on_target.build_parser(), ["--images", "3", "--images-dir", "d"], "check_on_target")
    assert (args.image_count, args.images_dir) == (3, Path("d"))


def test_one_flag_one_meaning_across_tools() -> None:
    """The input format is --input-format wherever it is chosen; --images is a folder wherever it exists (the
    on-target check's count of test images is --image-count); --calibration is the shared group's flag."""
    from trt_segmentation.commands import build_engine, check_on_target, evaluate, export_onnx, make_rosbag

    def options(parser):  # noqa: ANN001, ANN202
        return {flag: action for action in parser._actions for flag in action.option_strings}

    for module in (export_onnx, build_engine):
        found = options(module.build_parser())
        assert "--input-format" in found and "--input" not in found, module.__name__
    for module in (evaluate, make_rosbag):
        assert options(module.build_parser())["--images"].type is Path, module.__name__
    target = options(check_on_target.build_parser())
    assert "--images" not in target and target["--image-count"].default == 8
    assert target["--images-dir"].type is Path
    assert target["--calibration"].metavar == options(build_engine.build_parser())["--calibration"].metavar


@pytest.mark.parametrize("tool,argv,what", [
    ("export_onnx", ["--checkpoint", "{m}/nope.pt"], "checkpoint"),
    ("build_engine", ["--checkpoint", "{m}/nope.pt", "--size", "64x128"], "checkpoint"),
    ("model_info", ["--checkpoint", "{m}/nope.pt"], "checkpoint"),
    ("evaluate", ["--checkpoint", "{m}/nope.pt", "--data", "{m}"], "checkpoint"),
    ("train", ["--data", "{m}", "--init", "{m}/nope.pt"], "checkpoint"),
    ("calibrate", ["--onnx", "{m}/nope.onnx", "--precision", "fp16"], "ONNX file"),
    ("build_engine", ["--onnx", "{m}/nope.onnx"], "ONNX file"),
    ("make_rosbag", ["{m}/bag", "--images", "{m}/nowhere"], "image folder"),
])
def test_a_missing_file_reads_the_same_everywhere(tmp_path: Path, tool: str, argv: list[str], what: str) -> None:
    argv = [a.format(m=tmp_path) for a in argv]
    out = subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), *argv], capture_output=True, text=True,
                         timeout=120)
    missing = next(a for a in argv if "nope" in a or "nowhere" in a)
    assert (out.returncode, out.stderr) == (2, f"error: {what} not found: {missing}\n")
