#!/usr/bin/env bash
# Create (or update) ./.venv with the locked dependencies (requirements/lock.txt, resolved from requirements/dev.txt
# by scripts/lock_requirements.sh) and the package itself. Idempotent and quick when nothing changed. Needs
# Python 3.11 (the PyPI ROS 2 Kilted wheels are built for CPython 3.11); PYTHON=/path/to/python3.11 picks one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/legs.sh
PY=${PYTHON:-$(main_python)}
stamp=.venv/.requirements.sha256
want=$(cat requirements/lock.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing the locked dependencies into .venv (about 2 minutes the first time)"
  quiet .venv/bin/python -m pip install -q --upgrade pip
  quiet .venv/bin/python -m pip install -q -r requirements/lock.txt
  quiet .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  # TensorRT type stubs go to a folder of their own: installed into site-packages they would make an empty
  # `import tensorrt` succeed. mypy reads them through MYPYPATH=.venv/typecheck-stubs.
  quiet .venv/bin/python -m pip install -q --no-deps --target .venv/typecheck-stubs --upgrade tensorrt-stubs==10.13.0.35.1
  # fail here, clearly, if an install broke or a CUDA build of torch came instead of the CPU one
  .venv/bin/python -c '
import torch, onnxruntime, rclpy, tensorrt_rtx_libs
assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build; the CPU wheel (torch==2.13.0+cpu) is expected"'
  echo "$want" > "$stamp"
fi
