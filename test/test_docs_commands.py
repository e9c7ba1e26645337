"""The shell commands of README.md and docs/*.md work when copied: each parses as shell, passes no unquoted ``~``
(the shell would put the home folder there), names options its tool's --help lists and launch arguments the
launch file declares; the node command runs as written: with a model it subscribes to the remapped camera topic,
without one (or with a broken one) it says "cannot start" and exits 1."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from node_harness import listener
from tiny_model import write_tiny_model

from harness.launch_emulation import launch_constants
from trt_segmentation.artifacts import Precision
from trt_segmentation.cli import TOOLS

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def shell_blocks() -> list[tuple[str, str]]:
    """(where, text) of every ```bash block."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
            found.append((f"{path.relative_to(REPO)}:{text[: block.start()].count(chr(10)) + 2}", block.group(1)))
    return found


def shell_commands() -> list[tuple[str, str]]:
    """(where, command) for every line of the ```bash blocks: continuation lines joined, comment lines left out."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"```bash\n(.*?)```", text, re.S):
            first = text[: block.start()].count("\n") + 2
            lines = block.group(1).replace("\\\n", "\x00").splitlines()
            row = first
            for line in lines:
                command = line.replace("\x00", " ").strip()
                if command and not command.startswith("#"):
                    found.append((f"{path.relative_to(REPO)}:{row}", command))
                row += 1 + line.count("\x00")
    return found


COMMANDS = shell_commands()


def words(command: str) -> list[str]:
    return shlex.split(command, comments=True)


def tool_calls() -> list[tuple[str, str, list[str]]]:
    """(where, tools/X.py, its arguments) for each command that runs one of the repository's tools: as
    ``python tools/X.py``, as the installed ``trt_seg_X`` or as ``ros2 run trt_segmentation trt_seg_X``."""
    calls = []
    for where, command in COMMANDS:
        argv = words(command)
        for i, word in enumerate(argv):
            if re.fullmatch(r"tools/\w+\.py", word) and (i == 0 or argv[i - 1] in ("python", "python3")):
                calls.append((where, word, argv[i + 1:]))
            installed = re.fullmatch(r"trt_seg_(\w+)", word)
            if installed and (i == 0 or argv[max(0, i - 3):i] == ["ros2", "run", "trt_segmentation"]):
                assert installed.group(1) in TOOLS, f"{where}: {word} is no installed tool ({', '.join(TOOLS)})"
                calls.append((where, f"tools/{installed.group(1)}.py", argv[i + 1:]))
    return calls


@lru_cache(maxsize=None)
def tool_help(tool: str) -> str:
    out = subprocess.run([sys.executable, str(REPO / tool), "--help"], capture_output=True, text=True, timeout=300,
                         cwd=REPO)
    assert out.returncode == 0, f"{tool} --help failed:\n{out.stderr}"
    return out.stdout


def test_the_docs_have_commands() -> None:
    assert len(shell_blocks()) > 10 and len(COMMANDS) > 30 and len(tool_calls()) > 20


@pytest.mark.parametrize("where,block", shell_blocks(), ids=[w for w, _ in shell_blocks()])
def test_block_parses_as_shell_with_no_unquoted_tilde(where: str, block: str) -> None:
    check = subprocess.run(["bash", "-n", "-c", block], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"{where}: {check.stderr}"
    lexer = shlex.shlex(block, posix=False, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    for token in lexer:
        assert not token.startswith("~"), f"{where}: {token} is expanded by the shell to the home folder; quote it"


@pytest.mark.parametrize("where,tool,args", tool_calls(), ids=[f"{w}:{t}" for w, t, _ in tool_calls()])
def test_tool_command_uses_options_its_help_lists(where: str, tool: str, args: list[str]) -> None:
    assert (REPO / tool).is_file(), f"{where}: {tool} does not exist"
    text = tool_help(tool)
    for option in (a.split("=")[0] for a in args if a.startswith("--")):
        assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), f"{where}: {tool} has no option {option}"


def test_tools_called_without_python_are_executable() -> None:
    for where, command in COMMANDS:
        first = words(command)[0] if words(command) else ""
        if first.startswith("tools/"):
            assert os.access(REPO / first, os.X_OK), f"{where}: {first} is not executable; write python {first}"


def test_launch_commands_use_declared_arguments() -> None:
    c = launch_constants()
    declared = set(c["PARAMETER_ARGUMENTS"]) | set(c["OTHER_ARGUMENTS"])
    seen = 0
    for where, command in COMMANDS:
        argv = words(command)
        if argv[:2] == ["ros2", "launch"]:
            assert argv[2:4] == ["trt_segmentation", "segmentation.launch.py"], where
            for arg in argv[4:]:
                assert arg.split(":=")[0] in declared, f"{where}: {arg} is no argument of the launch file"
            seen += 1
    assert seen >= 3


# ------------------------------------------------------------------------------------------ the node command
def node_command() -> str:
    (command,) = [c for w, c in COMMANDS if w.startswith("docs/node.md") and "-m trt_segmentation.node" in c]
    return command


def run_dir(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder to run the documented command in as a user would from the repository (config/ beside it) and the
    environment: `python` is this interpreter, HOME a folder of its own (where an unquoted ~ would point)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(REPO / "config", work / "config")
    (tmp_path / "home").mkdir()
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for name in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(name, None)
    return work, env


def test_documented_node_command_subscribes_to_the_remapped_camera_topic(tmp_path) -> None:
    work, env = run_dir(tmp_path)
    write_tiny_model(work / "artifacts" / "swiftnet_ss_rn18_64x128_fp32.onnx", 64, 128)
    log = open(tmp_path / "node.log", "wb")
    proc = subprocess.Popen(["bash", "-c", node_command()], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with listener() as lis:
            def subscribed() -> bool:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / "node.log").read_text())
                # io_mode process (the default): the subscription belongs to the camera's I/O process
                names = lis.node.get_node_names_and_namespaces()
                return ("segmentation", "/") in names and ("segmentation_io_image", "/") in names and \
                    "/camera/image_raw" in dict(
                        lis.node.get_subscriber_names_and_types_by_node("segmentation_io_image", "/"))
            lis.wait_for(subscribed, 60, "the node's subscription to /camera/image_raw")
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    text = (tmp_path / "node.log").read_text()
    assert "deprecated" not in text or "PROFILES_FILE" not in text, text


@pytest.mark.parametrize("model", ["missing", "broken"])
def test_documented_node_command_without_a_usable_model_says_cannot_start(tmp_path, model: str) -> None:
    work, env = run_dir(tmp_path)
    if model == "broken":
        (work / "artifacts").mkdir()
        (work / "artifacts" / "swiftnet_ss_rn18_64x128_fp32.onnx").write_bytes(b"not an onnx file")
    out = subprocess.run(["bash", "-c", node_command()], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot start" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def robot_tool_calls() -> list[tuple[str, str, list[str]]]:
    """The tool calls of README's "On the robot" section, in the order a user types them."""
    text = (REPO / "README.md").read_text()
    start = text.index("## On the robot")
    end = text.index("\n## ", start + 1)
    first, last = text[:start].count("\n") + 1, text[:end].count("\n") + 1
    return [(where, tool, args) for where, tool, args in tool_calls()
            if where.startswith("README.md:") and first <= int(where.split(":")[1]) <= last]


def test_on_the_robot_commands_run_here_until_tensorrt_is_needed(tmp_path) -> None:  # noqa: ANN001
    """Each Jetson command of README's "On the robot" runs here on a folder of variants (a tiny graph at the
    documented size, fp32 and fp16, batch 1 and 3) as far as this machine allows: the build finds its variants and
    stops where TensorRT is needed, saying so; the check runs ONNX Runtime and reports NEEDS-TENSORRT (issue 18)."""
    from trt_segmentation.precision import make_variant

    calls = [c for c in robot_tool_calls() if c[1] in ("tools/build_on_target.py", "tools/check_on_target.py")]
    assert [c[1] for c in calls].count("tools/build_on_target.py") >= 3, calls
    assert [c[1] for c in calls].count("tools/check_on_target.py") >= 2, calls
    engines = tmp_path / "engines"
    for batch in (1, 3):
        name = f"swiftnet_ss_rn18_512x1024{'_b3' if batch == 3 else ''}"
        fp32 = write_tiny_model(engines / f"{name}_fp32.onnx", 512, 1024, batch=batch)
        if batch == 1:
            make_variant(fp32, Precision.FP16, engines / f"{name}_fp16.onnx")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for where, tool, args in calls:
        fewer = ["--image-count", "2"] if tool == "tools/check_on_target.py" else []  # the documented 8 take minutes
        proc = subprocess.run([sys.executable, str(REPO / tool), *args, *fewer], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        if tool == "tools/build_on_target.py":
            assert proc.returncode == 1, f"{where}: {proc.stdout}{proc.stderr}"
            assert "[1/" in proc.stdout and "real TensorRT is not installed here" in proc.stderr, where
        else:
            assert proc.returncode == 2, f"{where}: {proc.stdout}{proc.stderr}"
            assert re.search(r"^fp16 +\| NEEDS-TENSORRT", proc.stdout, re.M) and "result: INCOMPLETE" in proc.stdout, where
