"""package.xml declares every ROS package the installed code imports (issue 33): the imports of trt_segmentation/
and launch/ (function-local ones too), read with ast, against package.xml's dependencies. A ROS package here is
an import named as ROS names its Python packages (rclpy, launch, launch_ros, ament_index_python, *_msgs,
*_interfaces, ...); where the ROS wheels are installed, every import that a ``ros-*`` distribution provides must
be named so too, so the pattern cannot miss one."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Set

REPO = Path(__file__).resolve().parents[1]
INSTALLED = ("trt_segmentation", "launch")  # what colcon installs (harness/, tools/ and test/ are source only)
ROS_NAME = re.compile(r"^(rclpy|rosbag2_py|message_filters|launch(_ros|_testing|_testing_ros)?|ament_index_python"
                      r"|rosidl_\w+|tf2_\w+|\w+_(msgs|srvs|interfaces))$")
DEPENDS = ("depend", "exec_depend", "build_export_depend", "build_depend")


def top_level_imports() -> Dict[str, Set[str]]:
    """{top-level module: files importing it} over the installed code (absolute imports only)."""
    found: Dict[str, Set[str]] = {}
    for folder in INSTALLED:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(path.relative_to(REPO).as_posix())
    return found


def declared() -> Set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {(e.text or "").strip() for tag in DEPENDS for e in root.iter(tag)}


def test_every_imported_ros_package_is_declared_in_package_xml() -> None:
    imports = top_level_imports()
    ros = {name for name in imports if ROS_NAME.match(name)}
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "rcl_interfaces", "launch_ros"} <= ros  # the test sees them
    missing = {name: sorted(imports[name]) for name in ros - declared()}
    assert not missing, f"imported but not in package.xml: {missing}"


def test_the_ros_pattern_names_every_import_a_ros_wheel_provides() -> None:
    from importlib.metadata import packages_distributions  # Python 3.10+: the legs with the ROS wheels

    provided = packages_distributions()
    from_ros = {name for name in top_level_imports()
                if any(d.lower().startswith("ros-") or d.lower().startswith("ros_") for d in provided.get(name, []))}
    assert "rclpy" in from_ros, "no ROS wheels installed here"
    assert not {name for name in from_ros if not ROS_NAME.match(name)}
