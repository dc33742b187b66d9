#!/usr/bin/env bash
# Set up and run the whole test suite. Extra arguments go to pytest.
# Starts a throwaway PostgreSQL (installing Debian's postgresql if needed, as root) so
# the API and worker suites run against SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
# The ray extra too, so that the Ray executor's tests run (about 250 MB, 20 s).
scripts/setup.sh dev,ray
# One BLAS/OpenMP thread per process: tests start servers and workers beside pytest,
# and several torch processes spinning two threads each on two cores slow down 5-10x.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# The browser tests drive Debian's Chromium through Playwright (never `playwright
# install`). As root, install it when missing; otherwise they fail in CI or skip locally.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && apt-get install -y -q chromium >/dev/null
fi
if [ -z "${AUXSEL_TEST_POSTGRES_URL:-}" ] && [ "${AUXSEL_TEST_SKIP_POSTGRES:-0}" != 1 ]; then
  pgdir=$(mktemp -d /tmp/auxsel-pg.XXXXXX)
  trap 'scripts/postgres.sh stop "$pgdir"' EXIT
  AUXSEL_TEST_POSTGRES_URL=$(scripts/postgres.sh start "$pgdir" "${AUXSEL_TEST_POSTGRES_PORT:-55432}")
  export AUXSEL_TEST_POSTGRES_URL AUXSEL_TEST_POSTGRES_DIR="$pgdir"
fi
.venv/bin/python -m pytest "$@"
