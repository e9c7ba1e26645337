"""Start the segmentation node exactly as launch/segmentation.launch.py would, where `ros2 launch` is absent.

`launch`/`launch_ros` are not pip-installable, so tests and the demo read the launch file's constants (parsed
with ``ast``, never executed) and build the same command line: node name, namespace, parameters file, the
non-empty launch arguments as parameter overrides (the cameras list as a string list), the image remappings (each
camera's too) and the Fast DDS transport profile variable of the distribution ($ROS_DISTRO). Works from a source
checkout (launch/ and config/ beside the package).
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = SOURCE_ROOT / "launch" / "segmentation.launch.py"
CONFIG_DIR = SOURCE_ROOT / "config"


def launch_constants(launch_file: Path = LAUNCH_FILE) -> dict[str, Any]:
    """The module-level literal constants of the launch file."""
    tree = ast.parse(launch_file.read_text())
    constants: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def launch_function(name: str, launch_file: Path = LAUNCH_FILE) -> Any:
    """A top-level function of the launch file that needs only its constants and builtins (e.g.
    ``profile_variables``), compiled from its source so the emulation runs the launch file's own code."""
    tree = ast.parse(launch_file.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict[str, Any] = dict(launch_constants(launch_file))
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(launch_file), "exec"), namespace)
    return namespace[name]


def profile_env_names(distro: str | None = None) -> list[str]:
    """The Fast DDS profile variables the launch file sets for ``distro`` (default: $ROS_DISTRO)."""
    return list(launch_function("profile_variables")(os.environ.get("ROS_DISTRO", "") if distro is None else distro))


def launch_command(arguments: dict[str, str] | None = None, *, profile: bool = True,
                   params_file: Path | None = None, extra: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the node process the launch file starts for ``arguments`` (launch arguments).

    ``extra`` adds ``-p name:=value`` overrides for parameters without a launch argument (what a user's
    params_file would hold); ``profile=False`` leaves the transport profile out (to show what it fixes).
    """
    c = launch_constants()
    arguments = dict(arguments or {})
    unknown = set(arguments) - set(c["PARAMETER_ARGUMENTS"]) - set(c["OTHER_ARGUMENTS"])
    if unknown:
        raise ValueError(f"not launch arguments: {sorted(unknown)}")
    values = {name: default for name, (default, _) in c["OTHER_ARGUMENTS"].items()}
    values.update(arguments)
    argv = [sys.executable, "-m", "trt_segmentation.node", "--ros-args", "-r", f"__node:={c['NODE_NAME']}"]
    if values["namespace"]:
        argv += ["-r", f"__ns:=/{values['namespace'].strip('/')}"]
    params_path = str(params_file or values["params_file"] or CONFIG_DIR / c["PARAMS_FILE"])
    argv += ["--params-file", params_path]
    cameras = launch_function("camera_list")(arguments.get("cameras", ""))
    remap_cameras = cameras or launch_function("params_file_cameras")(params_path)  # as the launch file's _setup
    for name in c["PARAMETER_ARGUMENTS"]:
        if arguments.get(name, "") != "":
            value = f"[{','.join(cameras)}]" if name == "cameras" else arguments[name]  # a string list for rcl
            argv += ["-p", f"{name}:={value}"]
    for name, value in (extra or {}).items():
        argv += ["-p", f"{name}:={value}"]
    topic = values["image_topic"]
    remap = c["IMAGE_REMAP_FROM"]
    argv += ["-r", f"{remap}:={topic}", "-r", f"{remap}/compressed:={topic}/compressed"]
    for source, target in launch_function("camera_remappings")(remap_cameras, values["camera_topic"]):
        argv += ["-r", f"{source}:={target}"]
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    for name in c["PROFILE_ENV"]:
        env.pop(name, None)
    if profile:
        env.update(transport_profile_env())
    return argv, env


def transport_profile_env() -> dict[str, str]:
    """The variables that give another process (camera driver, bag player) the node's transport profile."""
    c = launch_constants()
    return {name: str(CONFIG_DIR / c["TRANSPORT_PROFILE"]) for name in profile_env_names()}


def process_rss_mb(pid: int) -> float | None:
    """A process's resident memory in MB (VmRSS), None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class NodeProcess:
    """The node in a subprocess; stdout+stderr captured to a file; stopped with SIGINT, then killed."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        # a process group of its own: stop() and a test's teardown (test/process_guard.py) end the group; the node's
        # camera I/O processes have sessions of their own and end with the node (PR_SET_PDEATHSIG)
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=SOURCE_ROOT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        """The node's live child processes (io_mode process: its camera I/O processes; a dead one not yet reaped
        is left out), from /proc/<pid>/stat."""
        pids: list[int] = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if fields[0] != "Z" and int(fields[1]) == self.pid:
                        pids.append(int(entry.name))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def rss_mb(self) -> float:
        """Resident memory of the node process and its I/O processes in MB (a shared-memory ring page counts once
        per process that touched it); NaN once the node has ended."""
        total = process_rss_mb(self.pid)
        if total is None:
            return float("nan")
        return total + sum(mb for mb in map(process_rss_mb, self.child_pids()) if mb is not None)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # its group: whatever else it started there too
                except OSError:
                    self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
