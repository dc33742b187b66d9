#!/usr/bin/env bash
# Runs the process and browser suites pass after pass while busy-loop processes keep
# every core loaded, stopping at the first failure: the check that no test depends on
# how fast the machine is (issue 19). Usage:
#   scripts/loaded-passes.sh [PASSES] [LOG]     (defaults: 10, ./loaded-passes.log)
# Each pass is `scripts/test.sh tests/browser tests/worker` (SQLite and a throwaway
# PostgreSQL on AUXSEL_TEST_POSTGRES_PORT, default 55432); its output goes to
# LOG.passN and one line per pass to LOG. Set AUXSEL_BURNERS to change the number of
# busy loops (default: one per core). Only processes this script started are ended.
set -uo pipefail
cd "$(dirname "$0")/.."
passes="${1:-10}"
log="${2:-loaded-passes.log}"
burners="${AUXSEL_BURNERS:-$(nproc)}"

# The keeper owns the busy loops: it restarts one that died (OOM killer, a stray signal),
# so the load holds for the whole run, and ends them all when it is ended.
(
  burn=()
  trap 'kill "${burn[@]}" 2>/dev/null; exit 0' TERM
  for i in $(seq 1 "$burners"); do python3 -c "while True: pass" & burn[i]=$!; done
  while sleep 5; do
    for i in "${!burn[@]}"; do
      kill -0 "${burn[i]}" 2>/dev/null || { python3 -c "while True: pass" & burn[i]=$!; }
    done
  done
) &
keeper=$!
trap 'kill "$keeper" 2>/dev/null; wait "$keeper"' EXIT

echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $burners burners," \
  "start $(date -Is)" >> "$log"
for i in $(seq 1 "$passes"); do
  start=$(date +%s)
  scripts/test.sh tests/browser tests/worker -q -p no:cacheprovider > "$log.pass$i" 2>&1
  rc=$?
  echo "pass $i rc=$rc secs=$(( $(date +%s) - start )) load=$(cut -d' ' -f1-3 /proc/loadavg)" \
    "$(tail -1 "$log.pass$i")" >> "$log"
  [ "$rc" -ne 0 ] && exit "$rc"
done
