#!/usr/bin/env bash
# A private PostgreSQL cluster for tests and development: start | stop | status.
#
#   scripts/postgres.sh start    # install (once), initdb (once), start, create databases piyao and piyao_test
#   scripts/postgres.sh status   # exit 0 accepting connections, 3 not running
#   scripts/postgres.sh stop     # fast shutdown, waits
#
# THROWAWAY TEST/DEV CLUSTER: it listens on 127.0.0.1 only, trusts every loopback connection
# (no password), and runs with fsync off. Never put data you want to keep in it.
# Settings (environment):
#   PIYAO_PG_PORT  default 55432
#   PIYAO_PG_DIR   default <repo>/var/postgres (data/, postgres.log)
# The server runs as the OS user postgres when started by root (initdb refuses root), otherwise as
# the calling user. Server binaries: the newest /usr/lib/postgresql/*/bin; when none is installed,
# root installs Debian's `postgresql` package.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PIYAO_PG_PORT:-55432}"
DIR="${PIYAO_PG_DIR:-$REPO/var/postgres}"
DATA="$DIR/data"
LOG="$DIR/postgres.log"
DATABASES=(piyao piyao_test)

die() { echo "postgres: error: $*" >&2; exit 1; }
say() { echo "postgres: $*"; }

find_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && echo "$d"
}

BIN=$(find_bin || true)
as_owner() {  # run a server command as the cluster's owner
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres "$@"; }
running() { [ -n "$BIN" ] && [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

install() {
    [ -n "$BIN" ] && return
    [ "$(id -u)" = 0 ] || die "no PostgreSQL server binaries in /usr/lib/postgresql; install the postgresql package (apt-get install postgresql) or run as root"
    say "installing the postgresql package (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 \
        || die "apt-get install postgresql failed"
    BIN=$(find_bin) || die "postgresql installed but no server binaries found in /usr/lib/postgresql/*/bin"
}

init() {
    [ -f "$DATA/PG_VERSION" ] && return
    mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then
        id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$DIR"
        runuser -u postgres -- test -w "$DIR" || die "user postgres cannot write $DIR (a parent folder is not traversable); set PIYAO_PG_DIR"
    fi
    say "initdb $DATA"
    local out
    out=$(as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C 2>&1) \
        || die "initdb failed: $(echo "$out" | grep -m1 -iE 'error|fatal|could not')"
    # Loopback TCP only, no Unix socket (its path would depend on /var/run/postgresql); trust auth:
    # this is a throwaway cluster for tests and development (see the header).
    cat >"$DATA/pg_hba.conf" <<'EOF'
# THROWAWAY TEST/DEV CLUSTER (scripts/postgres.sh): every loopback connection is trusted.
host    all    all    127.0.0.1/32    trust
EOF
    cat >>"$DATA/postgresql.conf" <<EOF

# scripts/postgres.sh: throwaway test/dev cluster (loopback only, durability off for speed).
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
}

start() {
    install
    if running; then
        say "already running on 127.0.0.1:$PORT"
    else
        local t0 out; t0=$(date +%s.%N)
        init
        # The port in the config wins over PIYAO_PG_PORT changes later; pass it explicitly too.
        out=$(as_owner "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PORT" -w -t 60 start 2>&1) \
            || die "the server did not start: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
        say "started $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s"
    fi
    local db
    for db in "${DATABASES[@]}"; do
        if [ -z "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
            psql_ -d postgres -c "CREATE DATABASE $db" || die "cannot create database $db"
        fi
    done
    say "databases: ${DATABASES[*]}; tests use postgresql+psycopg://postgres@127.0.0.1:$PORT/piyao_test"
}

stop() {
    if ! running; then say "not running"; return; fi
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null || die "pg_ctl stop failed"
    say "stopped"
}

status() {
    if ! running; then say "not running"; exit 3; fi
    if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then say "accepting connections on 127.0.0.1:$PORT"; exit 0; fi
    say "running but not accepting connections on 127.0.0.1:$PORT"; exit 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
