#!/usr/bin/env bash
# The README's main job: set up .venv, then replay generated street scenes through the segmentation node
# (ONNX Runtime backend, bundled demo checkpoint) and write pictures and a latency summary to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
exec .venv/bin/python tools/demo.py "$@"
