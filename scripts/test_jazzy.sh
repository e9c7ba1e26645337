#!/usr/bin/env bash
# The Jazzy leg: ROS 2 Jazzy's rclpy (PyPI wheels) on Python 3.10 in ./.venv-jazzy, runtime dependencies only (no
# torch, no ModelOpt), running the node, bag and launch-parameter tests, so that an rclpy API that only newer
# distributions have fails CI. Extra arguments go to pytest (instead of the default test files).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/legs.sh
venv=.venv-jazzy
stamp=$venv/.requirements.sha256
want=$(cat requirements/jazzy-lock.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -x $venv/bin/python ]; then
  py=$(jazzy_python)
  echo "==> creating $venv with $py"
  "$py" -m venv $venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing the locked Jazzy dependencies into $venv"
  quiet $venv/bin/python -m pip install -q --upgrade pip
  quiet $venv/bin/python -m pip install -q -r requirements/jazzy-lock.txt
  quiet $venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  $venv/bin/python -c '
import importlib.util, rclpy, onnxruntime
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("modelopt") is None, "torch/modelopt leaked into the Jazzy venv"'
  echo "$want" > "$stamp"
fi
source scripts/env.sh
export ROS_DISTRO=jazzy  # as a sourced Jazzy install sets it: the launch file picks the Fast DDS 2 profile variable
if [ $# -eq 0 ]; then
  set -- test/test_node_*.py test/test_bags.py test/test_play_rosbag*.py test/test_launch_params.py test/test_launch_check.py test/test_profile_env.py
fi
exec $venv/bin/python -m pytest -q "$@"
