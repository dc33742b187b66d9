#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on 127.0.0.1 for the tests.
#   scripts/postgres.sh start DIR PORT   -> prints the database URL
#   scripts/postgres.sh stop DIR
#   scripts/postgres.sh restart DIR          (fast restart, for fault tests)
#   scripts/postgres.sh outage DIR SECONDS   (down for SECONDS, then up again)
# Installs Debian's postgresql with apt-get when the server binaries are missing (root).
set -euo pipefail
cmd="$1"; dir="$2"
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "$cmd" in
  start)
    port="$3"
    if [ -z "$(pgbin)" ] || [ ! -x "$(pgbin)/initdb" ]; then
      if [ "$(id -u)" != 0 ]; then
        echo "PostgreSQL server binaries are missing; install Debian's postgresql" >&2
        exit 1
      fi
      apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    fi
    bin="$(pgbin)"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    echo "-k /tmp -h 127.0.0.1 -p $port -F -c max_connections=200" > "$dir/options"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/log" -w -o "$(cat "$dir/options")" \
      start >/dev/null
    "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres auxsel_test
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/auxsel_test"
    ;;
  stop)
    bin="$(pgbin)"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  restart)
    bin="$(pgbin)"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w restart >/dev/null
    ;;
  outage)
    bin="$(pgbin)"
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    sleep "$3"
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/log" -w -o "$(cat "$dir/options")" \
      start >/dev/null
    ;;
esac
