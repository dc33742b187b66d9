#!/usr/bin/env bash
# Set up and run the demo job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/auxsel demo "$@"
