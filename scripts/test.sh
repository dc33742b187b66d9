#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
# One BLAS/OpenMP thread per process: tests start servers and workers beside pytest,
# and several torch processes spinning two threads each on two cores slow down 5-10x.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest "$@"
