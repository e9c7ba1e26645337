"""The command-line conventions of every tool (no heavy imports; runs on Python 3.8, as the on-target check does).

* One flag per concept, added by one function each: ``--precision`` (one or more), ``--size``, ``--model``,
  ``--checkpoint``, ``--data``, ``--out``, ``--engine-dir``, ``--batch`` and the calibration group
  (``--calibration``, ``--calibration-count``, ``--calibration-batch``).
* One message for a missing input file (:func:`require_file`): ``error: <what> not found: <path>``, exit code 2
  like argparse's usage errors.
* One wrapper (:func:`command`) around every tool's ``main``: a package error (errors.SegmentationError: a user's
  error) becomes the one line ``error: <message>`` and exit code 2; any other exception is a bug and keeps its
  traceback (exit code 1).
* :func:`tool_command` names a tool the way it runs where the user is: ``ros2 run trt_segmentation trt_seg_<tool>``
  after ``colcon build``, ``python tools/<tool>.py`` in a source checkout, ``trt_seg_<tool>`` after pip.
* Old spellings of renamed flags (``--precisions``, ``--count``, ``--out-dir``, ...) are still read
  (:func:`parse_args`) and listed in each tool's --help, so that scripts written for them keep working.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar, cast

from .artifacts import CALIBRATION_COUNT, ENGINE_SET, names
from .errors import COMMAND_ERRORS

PACKAGE = "trt_segmentation"
SCRIPT_PREFIX = "trt_seg_"
#: the tools installed as ``trt_seg_<name>`` (code in trt_segmentation/commands/<name>.py)
TOOLS = ("build_engine", "export_onnx", "calibrate", "evaluate", "train", "model_info", "make_rosbag",
         "play_rosbag", "make_street_scenes", "benchmark", "check_on_target", "build_on_target", "prune")
#: ``--precision`` choices: every variant, plus int8-entropy (another name of int8)
PRECISION_CHOICES = names() + ("int8-entropy",)


# ------------------------------------------------------------------------------------------------ value types
def parse_size(text: str) -> Tuple[int, int]:
    """'1024x2048' -> (1024, 2048); argparse type with a message a newcomer understands."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x1024 (HEIGHTxWIDTH), got {text!r}") from None
    if height < 8 or width < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, got {text!r}")
    return height, width


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ------------------------------------------------------------------------------------------ shared arguments
def add_precision(parser: argparse._ActionsContainer, *, default: Optional[Sequence[str]] = None,
                  required: bool = False, allow_all: bool = False, what: str = "precision variants") -> None:
    """``--precision P [P ...]``: one or more variant names (``all`` = the launch switch's set if allowed)."""
    choices = PRECISION_CHOICES + (("all",) if allow_all else ())
    text = f"{what}: one or more of {' '.join(names())} (int8 = entropy-calibrated, int8-cpu = ONNX Runtime CPU)"
    if allow_all:
        text += f", or 'all' (= {' '.join(names(ENGINE_SET))})"
    if default is not None:
        text += f"; default {' '.join(default)}"
    parser.add_argument("--precision", nargs="+", choices=choices, metavar="P", required=required,
                        default=list(default) if default is not None else None, help=text)


def add_size(parser: argparse._ActionsContainer, *, default: Optional[Tuple[int, int]] = None,
             help: str = "network input size HEIGHTxWIDTH, e.g. 512x1024") -> None:  # noqa: A002
    if default is not None:
        help += f" (default {default[0]}x{default[1]})"
    parser.add_argument("--size", type=parse_size, default=default, metavar="HxW", help=help)


def add_model(parser: argparse._ActionsContainer, *, default: Optional[str] = "swiftnet_ss_rn18", many: bool = False,
              help: str = "model name (first part of the file names)") -> None:  # noqa: A002
    """``--model NAME`` (``many``: one or more names)."""
    if default is not None:
        help += f" (default {default})"
    if many:  # "--model a b" and "--model a --model b" both give [a, b]; None when not given
        parser.add_argument("--model", nargs="+", action="extend", metavar="NAME", help=help)
    else:
        parser.add_argument("--model", default=default, metavar="NAME", help=help)


def add_checkpoint(parser: argparse._ActionsContainer,
                   help: str = "PyTorch SwiftNet checkpoint (.pt, original SwiftNet key layout)") -> None:  # noqa: A002
    parser.add_argument("--checkpoint", type=Path, metavar="FILE", help=help)


def add_data(parser: argparse._ActionsContainer,
             help: str = "Cityscapes-layout dataset root (leftImg8bit/ + gtFine/)") -> None:  # noqa: A002
    parser.add_argument("--data", type=Path, metavar="ROOT", help=help)


def add_out(parser: argparse._ActionsContainer, *, default: Optional[str] = None,
            help: str = "output folder") -> None:  # noqa: A002
    if default is not None:
        help += f" (default {default})"
    parser.add_argument("--out", type=Path, default=Path(default) if default is not None else None, metavar="PATH",
                        help=help)


def add_engine_dir(parser: argparse._ActionsContainer, *, default: Optional[str] = None,
                   help: str = "folder of <model>_<H>x<W>_<precision>.onnx/.engine files") -> None:  # noqa: A002
    if default is not None:
        help += f" (default {default})"
    parser.add_argument("--engine-dir", type=Path, default=Path(default) if default is not None else None,
                        metavar="DIR", help=help)


def add_batch(parser: argparse._ActionsContainer) -> None:
    """``--batch N``: the network's static batch (frames per run, one per camera in multi-camera mode)."""
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N",
                        help="static batch: frames per run, e.g. one per camera (default 1; files of N > 1 are "
                             "named <model>_<H>x<W>_b<N>_<precision>)")


def add_calibration(parser: argparse._ActionsContainer, *, needed_for: str = "int8*, mixed and int8-cpu",
                    counts: bool = True) -> None:
    """``--calibration SOURCE``, and with ``counts`` ``--calibration-count N``, ``--calibration-batch B``."""
    parser.add_argument("--calibration", metavar="SOURCE",
                        help=f"calibration images for {needed_for}: DIR, cityscapes:ROOT[@split] or bag:PATH[@/topic]")
    if not counts:  # a tool that hands the source on to a builder that picks its own frames
        return
    parser.add_argument("--calibration-count", type=positive_int, default=CALIBRATION_COUNT, metavar="N",
                        help=f"use at most N calibration frames (default {CALIBRATION_COUNT})")
    parser.add_argument("--calibration-batch", type=positive_int, default=8, metavar="B",
                        help="calibration frames are used in whole batches of B; fewer than B frames is an error "
                             "(default 8)")


def expand_precisions(items: Iterable[str]) -> list:
    """``--precision`` values -> Precision members, in order, once each; ``all`` -> the launch switch's set."""
    from .artifacts import Precision

    out: List[Precision] = []
    for item in items:
        for p in (ENGINE_SET if item == "all" else (Precision.parse(item),)):
            if p not in out:
                out.append(p)
    return out


# --------------------------------------------------------------------------------------------- old spellings
#: old flag -> the flag it became, per tool (read silently; listed in each tool's --help epilog)
RENAMED: Dict[str, Dict[str, str]] = {
    "build_engine": {"--out-dir": "--out"},
    "export_onnx": {"--out-dir": "--out", "--input": "--input-format"},
    "calibrate": {"--count": "--calibration-count", "--out-dir": "--out"},
    "evaluate": {"--precisions": "--precision"},
    "benchmark": {"--precisions": "--precision", "--models": "--model"},
    "check_on_target": {"--precisions": "--precision", "--images": "--image-count"},
    "train": {"--data-root": "--data"},
}


def renamed_epilog(tool: str) -> Optional[str]:
    """The --help line that lists a tool's old flag spellings, or None."""
    renamed = RENAMED.get(tool)
    if not renamed:
        return None
    return "Old spellings, still read: " + ", ".join(f"{old} (now {new})" for old, new in renamed.items()) + "."


def parse_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]], tool: str) -> argparse.Namespace:
    """``parser.parse_args`` after translating the tool's old flag spellings to the current ones.

    Done on argv rather than as hidden argparse options: a suppressed option inside a required mutually exclusive
    group breaks argparse's usage line on older Pythons, and ``--out-dir=x`` forms are caught the same way. The
    old spellings are read silently (stderr stays the tool's own messages); --help lists them."""
    args = list(sys.argv[1:] if argv is None else argv)
    renamed = RENAMED.get(tool, {})
    out = []
    for i, word in enumerate(args):
        if word == "--":
            out += args[i:]
            break
        flag, eq, value = word.partition("=")
        out.append(renamed[flag] + eq + value if flag in renamed else word)
    return parser.parse_args(out)


def new_parser(tool: str, doc: Optional[str]) -> argparse.ArgumentParser:
    """The parser of ``trt_seg_<tool>``: its module docstring as description, old spellings in the epilog."""
    where = (f"Runs as {script_name(tool)} (pip install), ros2 run {PACKAGE} {script_name(tool)} (colcon build) or "
             f"tools/{tool}.py (source checkout).")
    epilog = "\n".join(filter(None, [where, renamed_epilog(tool)]))
    return argparse.ArgumentParser(prog=_prog(tool), description=doc, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def _prog(tool: str) -> str:
    base = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return base if base in (f"{tool}.py", SCRIPT_PREFIX + tool) else SCRIPT_PREFIX + tool


# ----------------------------------------------------------------------------------------------- missing files
def missing_file_message(what: str, path: object) -> str:
    return f"error: {what} not found: {path}"


def require_file(path: Optional[Path], what: str, *, folder: bool = False) -> None:
    """Exit with code 2 and ``error: <what> not found: <path>`` unless ``path`` (when given) exists."""
    if path is None:
        return
    ok = Path(path).is_dir() if folder else Path(path).is_file()
    if not ok:
        print(missing_file_message(what, path), file=sys.stderr)
        raise SystemExit(2)


def error(exc: BaseException, code: int = 2) -> int:
    """Print ``error: <message>`` for an exception (a FileNotFoundError as ``<file> not found: <path>``,
    never a raw ``[Errno 2]``) and return ``code``."""
    if isinstance(exc, FileNotFoundError) and exc.filename is not None and exc.errno is not None:
        print(missing_file_message("file", exc.filename), file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return code


Main = TypeVar("Main", bound=Callable[..., int])


def command(main: Main) -> Main:
    """Decorator of a tool's ``main(argv) -> exit code``: the errors of :data:`errors.COMMAND_ERRORS` (the
    package's own) raised anywhere inside become :func:`error`'s one line and exit code 2 (no traceback); any other
    exception propagates, so Python prints its traceback and exits with code 1."""
    @functools.wraps(main)
    def run(argv: Optional[Sequence[str]] = None) -> int:
        try:
            return main(argv)
        except COMMAND_ERRORS as exc:
            return error(exc)
    return cast(Main, run)


# ------------------------------------------------------------------------------------------ naming the tools
def script_name(tool: str) -> str:
    """'build_engine' -> 'trt_seg_build_engine' (the console script; also the ros2 run executable)."""
    return SCRIPT_PREFIX + tool


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _ament_script(tool: str) -> Optional[Path]:
    """The executable ``colcon build`` installed for ``ros2 run`` (lib/trt_segmentation/ of an ament prefix)."""
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidate = Path(prefix) / "lib" / PACKAGE / script_name(tool)
        if candidate.is_file():
            return candidate
    return None


def tool_argv(tool: str) -> List[str]:
    """How ``tool`` runs where this package was imported from, as argv:
    ``ros2 run trt_segmentation trt_seg_<tool>`` when a sourced ament prefix holds it (colcon build),
    else ``python tools/<tool>.py`` when this package sits in a source checkout, else ``trt_seg_<tool>`` (pip)."""
    if _ament_script(tool) is not None:
        return ["ros2", "run", PACKAGE, script_name(tool)]
    if (_package_root() / "tools" / f"{tool}.py").is_file() and (_package_root() / "setup.py").is_file():
        return ["python", f"tools/{tool}.py"]
    return [script_name(tool)]


def tool_command(tool: str, *args: str) -> str:
    """:func:`tool_argv` plus ``args`` as one shell-quoted line, e.g. for a hint in an error message."""
    return " ".join(shlex.quote(a) for a in [*tool_argv(tool), *args])
