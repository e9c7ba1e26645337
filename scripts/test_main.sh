#!/usr/bin/env bash
# The main leg: ./.venv (Python 3.11, ROS 2 Kilted wheels, torch CPU, ModelOpt, TensorRT-RTX), the whole suite on
# the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
echo "==> ruff $(.venv/bin/ruff --version | cut -d' ' -f2): the rules in ruff.toml"
.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest -q "$@"
