#!/usr/bin/env bash
# Create .venv (if missing) and install auxsel into it. Usage: scripts/setup.sh [extras]
#   scripts/setup.sh        the service and engine
#   scripts/setup.sh dev    plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
# torch is bounded in pyproject.toml (<2.14) so that pip takes a local CPU wheel where
# one is available (see README, "Installing torch"), never an unbounded CUDA build.
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install -q -e ".[$extras]"
else
  .venv/bin/python -m pip install -q -e .
fi
