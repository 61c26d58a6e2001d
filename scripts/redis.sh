#!/usr/bin/env bash
# A private Redis for tests and development (the scrapy-redis frontier of crawl.engine: redis): start | stop | status.
#
#   scripts/redis.sh start    # install Debian's redis-server (once, as root), start on 127.0.0.1:56379
#   scripts/redis.sh status   # exit 0 answering PING, 3 not running
#   scripts/redis.sh stop     # SHUTDOWN NOSAVE, waits
#
# THROWAWAY TEST/DEV SERVER: loopback only, no password, no persistence (no RDB, no AOF): a restart
# empties it. Never use it as the frontier of a production crawl (see docs/crawling.md).
# Settings (environment):
#   PIYAO_REDIS_PORT  default 56379
#   PIYAO_REDIS_DIR   default <repo>/var/redis (redis.log, redis.pid)
# Started by root, the server runs as the OS user redis (created if missing), otherwise as the caller.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PIYAO_REDIS_PORT:-56379}"
DIR="${PIYAO_REDIS_DIR:-$REPO/var/redis}"
LOG="$DIR/redis.log"
PIDFILE="$DIR/redis.pid"

die() { echo "redis: error: $*" >&2; exit 1; }
say() { echo "redis: $*"; }

cli() { redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }
answering() { command -v redis-cli >/dev/null 2>&1 && [ "$(cli PING 2>/dev/null)" = "PONG" ]; }

install() {
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return
    [ "$(id -u)" = 0 ] || die "redis-server is not installed; install the redis-server package (apt-get install redis-server) or run as root"
    say "installing the redis-server package (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server; } >/dev/null 2>&1 \
        || die "apt-get install redis-server failed"
    command -v redis-server >/dev/null 2>&1 || die "redis-server installed but not on PATH"
    # The package may start a system-wide server on 6379; ours is private and independent of it.
}

start() {
    install
    if answering; then say "already running on 127.0.0.1:$PORT"; return; fi
    mkdir -p "$DIR"
    local user=""
    if [ "$(id -u)" = 0 ]; then
        id -u redis >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin redis
        chown redis: "$DIR"
        runuser -u redis -- test -w "$DIR" || die "user redis cannot write $DIR (a parent folder is not traversable); set PIYAO_REDIS_DIR"
        user=redis
    fi
    local args=(--bind 127.0.0.1 --port "$PORT" --protected-mode yes --save "" --appendonly no
                --dir "$DIR" --logfile "$LOG" --pidfile "$PIDFILE" --daemonize yes)
    if [ -n "$user" ]; then runuser -u "$user" -- redis-server "${args[@]}"; else redis-server "${args[@]}"; fi
    local i
    for i in $(seq 1 100); do
        answering && { say "started $(redis-server --version | awk '{print $3}') on 127.0.0.1:$PORT (no persistence)"; \
            say "tests use redis://127.0.0.1:$PORT/0"; return; }
        sleep 0.1
    done
    die "the server did not answer within 10 s: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ' | cut -c1-300)"
}

stop() {
    if ! answering; then say "not running"; return; fi
    cli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    local i
    for i in $(seq 1 100); do answering || { say "stopped"; return; }; sleep 0.1; done
    die "the server did not stop"
}

status() {
    if answering; then say "answering on 127.0.0.1:$PORT"; exit 0; fi
    say "not running"; exit 3
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
