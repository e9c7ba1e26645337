#!/usr/bin/env bash
# The Python 3.8 leg (JetPack 5: Jetson Xavier/Orin, Ubuntu 20.04, Python 3.8): everything that runs on the
# vehicle, imported and tested on 3.8 with numpy 1.24 and the last ONNX Runtime for 3.8, without rclpy, torch or
# TensorRT; then vermin's minimum-version check over the same modules, so 3.9+ syntax or APIs fail CI.
# Needs a python3.8 (pyenv: PYENV_VERSION=3.8.18, or PYTHON38=/path/to/python3.8). Venv: .venv-py38 (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PY38=${PYTHON38:-}
if [ -z "$PY38" ]; then
  for candidate in python3.8 "env PYENV_VERSION=3.8.18 python3.8"; do
    if $candidate -c 'import sys; sys.exit(sys.version_info[:2] != (3, 8))' 2>/dev/null; then PY38=$candidate; break; fi
  done
fi
if [ -z "$PY38" ]; then
  echo "error: Python 3.8 is needed (pyenv install 3.8.18, or set PYTHON38=/path/to/python3.8)" >&2
  exit 1
fi
venv=$root/.venv-py38
stamp=$venv/.requirements.sha256
want=$(cat requirements/py38.txt requirements/py38-lock.txt | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating .venv-py38 with $PY38"
  $PY38 -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing the pinned Python 3.8 set into .venv-py38"
  # from / : pip would otherwise read the repository's setup.cfg (ament's script folder) as its install scheme
  (cd / && "$venv/bin/python" -m pip install -q -r "$root/requirements/py38.txt" -c "$root/requirements/py38-lock.txt" \
     2>&1 | grep -v -e '^WARNING: Location' -e DEPRECATION || true)
  "$venv/bin/python" -c 'import numpy, onnxruntime, onnx, PIL, pytest, vermin'  # fail here if an install broke
  echo "$want" > "$stamp"
fi
# the vehicle's modules: the import closure of the node and of the vehicle commands, computed (vehicle_modules.py)
modules=$("$venv/bin/python" scripts/vehicle_modules.py)
mapfile -t vehicle <<< "$modules"
tests=(test/test_vehicle_runtime.py test/test_node_tensorrt_startup.py test/test_image_codec.py test/test_palette.py
       test/test_node_worker.py test/test_runtime_batch.py test/test_node_batch_worker.py test/test_node_frame_ring.py
       test/test_runtime_slot_failure.py)
tests+=(test/test_vehicle_build_py38.py)  # issue 18: the on-target build on Python 3.8, no torch/TensorRT
tests+=(test/test_node_teardown.py)  # the bounded ROS teardown of every node process
tests+=(test/test_node_ring_pinning.py)  # issue 31: frames uploaded straight from the page-locked rings
tests+=(test/test_build_engine_torch_free.py test/test_vehicle_modules.py)  # issue 32: torch-free build_engine, the closure
tests+=(test/test_vehicle_engine_checks.py test/test_vehicle_hints.py)  # issue 32: stale scales, DLA, hints
echo "==> vermin: minimum Python of the vehicle modules and their tests (target 3.8)"
"$venv/bin/python" -c 'import sys; from vermin.main import main; sys.argv[0] = "vermin"; sys.exit(main())' \
  -t=3.8- --violations --no-tips --no-parse-comments "${vehicle[@]}" scripts/vehicle_modules.py "${tests[@]}"
echo "==> pytest on $("$venv/bin/python" -V)"
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" \
  --deselect test/test_palette.py::test_table_matches_cityscapesscripts "$@"  # cityscapesscripts: build-time only
