"""ament_python build of trt_segmentation; also installs with plain pip on a machine without ROS."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "trt_segmentation"
# the command-line tools (trt_segmentation/commands/<tool>.py, tools/<tool>.py in a source checkout); listed here and
# in trt_segmentation/cli.py TOOLS (test_commands checks they agree): setup.py cannot import the package it builds
TOOLS = ("build_engine", "export_onnx", "calibrate", "evaluate", "train", "model_info", "make_rosbag",
         "play_rosbag", "make_street_scenes", "benchmark", "check_on_target", "build_on_target", "prune")

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*")),
    ],
    install_requires=["setuptools", "numpy"],
    zip_safe=True,
    maintainer="trt_segmentation maintainers",
    maintainer_email="maintainers@trt-segmentation.invalid",
    description="SwiftNet semantic segmentation: TensorRT engines and a ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.8",  # the vehicle side (runtime, node) runs on JetPack 5 (Python 3.8); the build tools need 3.10+
    # console scripts: bin/ with pip, lib/trt_segmentation/ (setup.cfg) with colcon, for `ros2 run trt_segmentation ...`
    entry_points={
        "console_scripts": [
            f"segmentation_node = {PACKAGE}.node:main",
            *(f"trt_seg_{tool} = {PACKAGE}.commands.{tool}:main" for tool in TOOLS),
        ],
    },
)
