#!/bin/sh
# auxsel container entrypoint. The first argument picks the role:
#   api         the HTTP API (no in-process worker), on $AUXSEL_HOST:$AUXSEL_PORT
#   worker      a worker; with AUXSEL_RAY_JOIN=head:6379 it first joins that Ray cluster
#               as a node with no CPUs (Ray drivers run on a cluster node) and uses it
#   migrate     apply the database migrations, then exit (run once before api/worker)
#   ray-head    a Ray head node (image built with EXTRAS=ray)
#   ray-worker  a Ray worker node joining $RAY_HEAD_ADDRESS (default ray-head:6379)
# Anything else runs as an auxsel subcommand (keys create --owner me, db current, ...)
# or, if it names a program, as that program.
set -eu

role="${1:-api}"
[ "$#" -gt 0 ] && shift

case "$role" in
  api)
    exec auxsel serve --no-worker --host "${AUXSEL_HOST:-0.0.0.0}" --port "${AUXSEL_PORT:-8000}" "$@"
    ;;
  worker)
    if [ -n "${AUXSEL_RAY_JOIN:-}" ]; then
      ray start --address="$AUXSEL_RAY_JOIN" --num-cpus=0 --num-gpus=0 --disable-usage-stats
      export AUXSEL_EXECUTOR=ray AUXSEL_RAY_ADDRESS="${AUXSEL_RAY_ADDRESS:-auto}"
    fi
    exec auxsel worker "$@"
    ;;
  migrate)
    exec auxsel db upgrade "$@"
    ;;
  ray-head)
    exec ray start --head --block --port="${RAY_PORT:-6379}" --disable-usage-stats "$@"
    ;;
  ray-worker)
    exec ray start --block --address="${RAY_HEAD_ADDRESS:-ray-head:6379}" --disable-usage-stats "$@"
    ;;
  *)
    if command -v "$role" >/dev/null 2>&1; then
      exec "$role" "$@"
    fi
    exec auxsel "$role" "$@"
    ;;
esac
