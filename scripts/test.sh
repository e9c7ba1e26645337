#!/usr/bin/env bash
# The test command of the README and of CI: set up .venv, then run the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
source scripts/env.sh
exec .venv/bin/python -m pytest -q "$@"
