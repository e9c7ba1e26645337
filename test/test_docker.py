"""docker/: the vehicle and workstation images (issue 33) cannot be built here (no Docker daemon, no arm64, no GPU),
so they are linted: each Dockerfile parses (a small parser: known instructions, continuations, JSON forms, every
RUN through ``bash -n``), every file it copies or names exists in the tree as named and is kept by its
``.dockerignore``, every variable it reads is declared, and the variables it and the entrypoint set are the ones the
tree reads (the Fast DDS profile variable as the launch file picks it)."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

import pytest

from harness.launch_emulation import launch_constants

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
ENTRYPOINT = DOCKER / "entrypoint.sh"
INSTRUCTIONS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "ENTRYPOINT", "CMD", "SHELL", "LABEL", "USER",
                "EXPOSE", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "ONBUILD"}
JSON_ONLY = {"SHELL"}
JSON_OR_SHELL = {"RUN", "CMD", "ENTRYPOINT"}
#: what colcon needs of the tree to build and install the package (setup.py's packages and data_files)
PACKAGE_FILES = {"package.xml", "setup.py", "setup.cfg", "resource", "launch", "config", "trt_segmentation"}
SHARE = "/ws/install/trt_segmentation/share/trt_segmentation/"  # the colcon install of setup.py's data_files
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
INHERITED = {"PATH"}  # set by every base image


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(path: Path) -> List[Instruction]:
    """The instructions of a Dockerfile: continuation lines joined (comment lines inside one dropped, as Docker
    does), keywords checked against Docker's instruction set; AssertionError naming the line otherwise."""
    found: List[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not pending and not stripped):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        pending = ""
        assert keyword in INSTRUCTIONS, f"{path.name}:{start}: unknown instruction {keyword!r}"
        assert args.strip(), f"{path.name}:{start}: {keyword} without arguments"
        found.append(Instruction(start, keyword, args.strip()))
    assert not pending, f"{path.name}: ends inside a line continuation"
    return found


def copy_sources(instruction: Instruction) -> List[str]:
    """The build-context sources of a COPY/ADD (none for ``--from`` stages); AssertionError without a destination."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    assert len(paths) >= 2, f"line {instruction.line}: {instruction.keyword} needs a source and a destination"
    return [] if any(f.startswith("--from=") for f in flags) else paths[:-1]


def kept_by(ignore: Path, path: str) -> bool:
    """Whether ``path`` (relative to the context) reaches the build under this .dockerignore (last match wins; a
    pattern that matches a folder matches what is inside it; ``!`` re-includes)."""
    kept = True
    for line in ignore.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            kept = negated
    return kept


def declared(instructions: List[Instruction]) -> Set[str]:
    names: Set[str] = set()
    for ins in instructions:
        if ins.keyword == "ARG":
            names.add(ins.args.split("=")[0])
        elif ins.keyword == "ENV":
            names.update(pair.split("=")[0] for pair in shlex.split(ins.args))
    return names


def tree_text() -> str:
    """The tree's code, scripts, configuration and tests, outside docker/ (where a variable is read or set)."""
    parts = []
    for folder in ("trt_segmentation", "launch", "scripts", "config", "harness", "tools", "test"):
        parts += [p.read_text(errors="replace") for p in sorted((REPO / folder).rglob("*"))
                  if p.is_file() and p.suffix in (".py", ".sh", ".xml", ".yaml") and p.name != "test_docker.py"]
    return "\n".join(parts)


def test_there_are_a_vehicle_and_a_workstation_image() -> None:
    assert [p.name for p in DOCKERFILES] == ["jetson.Dockerfile", "workstation.Dockerfile"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_dockerfile_parses(path: Path) -> None:
    instructions = parse(path)
    first = next(i for i in instructions if i.keyword != "ARG")
    assert first.keyword == "FROM", f"{path.name}:{first.line}: only ARG may come before the first FROM"
    for ins in instructions:
        if ins.keyword in JSON_ONLY or (ins.keyword in JSON_OR_SHELL and ins.args.startswith("[")):
            value = json.loads(ins.args)
            assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), ins
        elif ins.keyword == "RUN":
            check = subprocess.run(["bash", "-n", "-c", ins.args], capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, f"{path.name}:{ins.line}: {check.stderr}"
        elif ins.keyword == "ENV":
            assert all("=" in pair for pair in shlex.split(ins.args)), f"{path.name}:{ins.line}: ENV KEY=VALUE"
        elif ins.keyword in ("COPY", "ADD"):
            copy_sources(ins)
    assert [i.args for i in instructions if i.keyword == "ENTRYPOINT"] == ['["/entrypoint.sh"]']


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_every_file_it_names_exists_as_named_and_reaches_the_build(path: Path) -> None:
    instructions = parse(path)
    ignore = path.with_name(path.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.name} is missing: the whole repository (venvs too) would be the context"
    sources = [s for i in instructions if i.keyword in ("COPY", "ADD") for s in copy_sources(i)]
    assert PACKAGE_FILES <= set(sources), f"colcon needs {sorted(PACKAGE_FILES - set(sources))} in the image"
    for source in sources:
        assert (REPO / source).exists(), f"{path.name}: COPY {source}: no such file in the tree"
        assert kept_by(ignore, source), f"{path.name}: COPY {source}: excluded by {ignore.name}"
    text = path.read_text() + ENTRYPOINT.read_text()
    for installed in re.findall(re.escape(SHARE) + r"([\w./-]+)", text):
        assert (REPO / installed).is_file(), f"{SHARE}{installed}: setup.py installs no {installed}"
    for named in re.findall(r"(?<![\w/])((?:requirements|docker|config|launch)/[\w.-]+)", text):
        assert (REPO / named).is_file(), f"{path.name}: {named} is no file of the tree"


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_every_variable_it_reads_is_declared_and_what_it_sets_is_read_by_the_tree(path: Path) -> None:
    instructions = parse(path)
    names = declared(instructions)
    for ins in instructions:
        for name in VARIABLE.findall(ins.args):
            assert name in names | INHERITED, f"{path.name}:{ins.line}: ${name} is neither an ARG nor an ENV here"
    tree = tree_text()
    env = {pair.split("=")[0] for i in instructions if i.keyword == "ENV" for pair in shlex.split(i.args)}
    for name in env:
        assert re.search(rf"\b{name}\b", tree), f"{path.name}: ENV {name} is read nowhere in the tree"


def test_the_entrypoint_runs_in_bash_and_sets_the_profile_variable_the_launch_file_picks() -> None:
    check = subprocess.run(["bash", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    text = ENTRYPOINT.read_text()
    constants: Dict[str, object] = launch_constants()
    exported = set(re.findall(r"export (\w+)=", text))
    assert exported == set(constants["PROFILE_ENV"])  # type: ignore[arg-type]
    (fast_dds_2,) = re.findall(r"^\s*([a-z|]+)\) export FASTRTPS_DEFAULT_PROFILES_FILE", text, re.M)
    assert tuple(fast_dds_2.split("|")) == constants["FAST_DDS_2_DISTROS"]
    assert constants["TRANSPORT_PROFILE"] == "fastdds_shm.xml" and f"{SHARE}config/fastdds_shm.xml" in text
    assigned = {n for pair in re.findall(r"(?:^|\s)(?:for (\w+) in|(\w+)=)", text) for n in pair if n}
    env = set().union(*(declared(parse(p)) for p in DOCKERFILES))
    for name in set(VARIABLE.findall(text)) - assigned:
        assert name in env | exported, f"entrypoint.sh reads ${name}, which no image sets"


def test_docs_vehicle_md_shows_how_to_run_them() -> None:
    text = (REPO / "docs" / "vehicle.md").read_text()
    assert "\n## Container\n" in text
    section = text.split("\n## Container\n", 1)[1].split("\n## ", 1)[0]
    for needed in ("docker/jetson.Dockerfile", "docker/workstation.Dockerfile", "--runtime nvidia", "--ipc=host",
                   "--shm-size", "fastdds_shm.xml", "What was verified where"):
        assert needed in section, f"docs/vehicle.md, Container: {needed} is not mentioned"
