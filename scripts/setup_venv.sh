#!/usr/bin/env bash
# Create (or update) ./.venv with the pinned dependencies and the package itself. Idempotent and quick when
# nothing changed. Needs Python 3.11 (the PyPI ROS 2 Kilted wheels are built for CPython 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PY=$candidate; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "error: Python 3.11 is needed (the ROS 2 wheels on PyPI are cp311). Install it (e.g. apt-get install python3.11 python3.11-venv) or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements/dev.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing pinned dependencies into .venv (about 2 minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -r requirements/dev.txt 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v '^WARNING: Location' || true
  # TensorRT type stubs go to a folder of their own: installed into site-packages they would make an empty
  # `import tensorrt` succeed. mypy reads them through MYPYPATH=.venv/typecheck-stubs.
  .venv/bin/python -m pip install -q --no-deps --target .venv/typecheck-stubs --upgrade tensorrt-stubs==10.13.0.35.1 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c 'import torch, onnxruntime, rclpy, tensorrt_rtx_libs' # fail here, clearly, if an install broke
  echo "$want" > "$stamp"
fi
