#!/usr/bin/env bash
# The main leg: ./.venv (Python 3.11, ROS 2 Kilted wheels, torch CPU, ModelOpt, TensorRT-RTX), the whole suite on
# the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
exec .venv/bin/python -m pytest -q "$@"
