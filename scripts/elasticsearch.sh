#!/usr/bin/env bash
# A local single-node Elasticsearch for tests and development: start | stop | status.
#
#   scripts/elasticsearch.sh start    # fetch (once), extract (once), start, wait for health
#   scripts/elasticsearch.sh status   # exit 0 healthy, 3 not running, 1 running but not healthy
#   scripts/elasticsearch.sh stop     # stop and wait
#
# The distribution is the minimal "integ-test-zip" from Maven Central (the one Elastic's own
# integration tests use); the zip stays cached in ~/.m2, so a second machine setup fetches nothing.
# Settings (environment):
#   PIYAO_ES_VERSION  default 9.2.8 (9.3.x and 9.5.x are not on Maven Central; see docs/elasticsearch.md)
#   PIYAO_ES_PORT     default 9200 (HTTP, 127.0.0.1 only; transport uses port+100)
#   PIYAO_ES_HOME     default $HOME/.cache/piyao/elasticsearch-<ver>
#                     (as root: /var/cache/piyao/elasticsearch-<ver>, since /root is not readable
#                     by the unprivileged user that Elasticsearch must run as)
#   PIYAO_ES_DIR      default <repo>/var/elasticsearch: config, data, logs and pid file
#   PIYAO_ES_HEAP     default 1g
#   ES_JAVA_HOME      a Java 21+ runtime; default: the newest 21+ found in /usr/lib/jvm or on PATH
# Elasticsearch refuses to run as root: as root this script runs it as the system user piyao-es
# (created if missing); otherwise as the calling user.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VER="${PIYAO_ES_VERSION:-9.2.8}"
PORT="${PIYAO_ES_PORT:-9200}"
HEAP="${PIYAO_ES_HEAP:-1g}"
ES_USER=piyao-es
if [ "$(id -u)" = 0 ]; then
    HOME_DEFAULT="/var/cache/piyao/elasticsearch-$VER"
else
    HOME_DEFAULT="$HOME/.cache/piyao/elasticsearch-$VER"
fi
ES_HOME="${PIYAO_ES_HOME:-$HOME_DEFAULT}"
DIR="${PIYAO_ES_DIR:-$REPO/var/elasticsearch}"
PIDFILE="$DIR/run/es.pid"
URL="http://127.0.0.1:$PORT"
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$VER:zip"
ZIP="${M2_REPO:-$HOME/.m2/repository}/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$VER/elasticsearch-$VER.zip"

die() { echo "elasticsearch: error: $*" >&2; exit 1; }
say() { echo "elasticsearch: $*"; }

# Health, or nothing when no node answers (the root endpoint answers 405 in the minimal build).
health() { curl -fsS --max-time "${1:-2}" "$URL/_cluster/health${2:-}" 2>/dev/null || python3 - "$URL/_cluster/health${2:-}" "${1:-2}" <<'EOF' 2>/dev/null
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2])).read().decode())
EOF
}
healthy() { health 2 | grep -Eq '"status":"(green|yellow)"'; }
our_pid() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"; }

java_major() {  # major version of a java binary, 0 when unusable
    "$1" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.[0-9]+)?.*/\1/p' | grep -E '^[0-9]+$' || echo 0
}

find_java() {
    local cand best="" best_major=0 m
    if [ -n "${ES_JAVA_HOME:-}" ]; then
        m=$(java_major "$ES_JAVA_HOME/bin/java")
        [ "$m" -ge 21 ] || die "ES_JAVA_HOME=$ES_JAVA_HOME is not a Java 21+ runtime (found major version $m)"
        echo "$ES_JAVA_HOME"; return
    fi
    for cand in /usr/lib/jvm/* "${JAVA_HOME:-}" "$(dirname "$(dirname "$(readlink -f "$(command -v java || echo /nonexistent)")")")"; do
        [ -n "$cand" ] && [ -x "$cand/bin/java" ] || continue
        m=$(java_major "$cand/bin/java")
        if [ "$m" -ge 21 ] && [ "$m" -gt "$best_major" ]; then best="$cand"; best_major=$m; fi
    done
    [ -n "$best" ] || die "Elasticsearch $VER needs Java 21+ and none was found (set ES_JAVA_HOME; e.g. apt-get install temurin-25-jdk from Adoptium, or openjdk-21-jdk)"
    echo "$best"
}

fetch() {
    [ -s "$ZIP" ] && return
    if ! command -v mvn >/dev/null; then
        [ "$(id -u)" = 0 ] || die "mvn is missing; install Maven (apt-get install maven) or run as root"
        say "installing maven (apt-get)"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven; } >/dev/null 2>&1 \
            || die "apt-get install maven failed"
    fi
    say "downloading $ARTIFACT from Maven Central"
    local log; log=$(mktemp)
    if ! mvn -B -q -U org.apache.maven.plugins:maven-dependency-plugin:3.6.1:get -Dartifact="$ARTIFACT" -Dtransitive=false >"$log" 2>&1 \
        || [ ! -s "$ZIP" ]; then
        local why; why=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -m1 -oE "(Couldn't download artifact|Could not (find|transfer) artifact).{0,200}" | sed -E 's/ (during a previous|This failure).*//'); rm -f "$log"
        die "download of $ARTIFACT refused or failed (${why:-no zip at $ZIP}); try another PIYAO_ES_VERSION (9.2.8, 9.2.4, 9.1.5 are on Maven Central)"
    fi
    rm -f "$log"
}

extract() {
    [ -x "$ES_HOME/bin/elasticsearch" ] && return
    fetch
    say "extracting into $ES_HOME"
    local parent tmp; parent=$(dirname "$ES_HOME"); mkdir -p "$parent"
    tmp=$(mktemp -d "$parent/.extract.XXXXXX")
    # Python's zipfile drops the exec bits; restore them from the zip's Unix modes.
    python3 - "$ZIP" "$tmp" <<'EOF' || { rm -rf "$tmp"; die "cannot extract $ZIP"; }
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(path, mode)
EOF
    chmod -R a+rX "$tmp"; chmod a+x "$tmp/elasticsearch-$VER/bin/"*
    rm -rf "$ES_HOME"; mv "$tmp/elasticsearch-$VER" "$ES_HOME"; rmdir "$tmp"
}

start() {
    if our_pid >/dev/null; then
        if healthy; then say "already running at $URL (pid $(our_pid))"; exit 0; fi
        die "pid $(our_pid) from $PIDFILE is running but $URL is not healthy; see $DIR/logs"
    fi
    healthy && die "another Elasticsearch already answers at $URL (not started by this script from $DIR); stop it or set PIYAO_ES_PORT"
    local t0 java as=() owner
    t0=$(date +%s.%N)
    java=$(find_java)
    extract
    mkdir -p "$DIR/data" "$DIR/logs" "$DIR/run"
    # A private copy of the config: the node writes its keystore there; the home stays read-only.
    [ -f "$DIR/config/jvm.options" ] || { rm -rf "$DIR/config"; cp -R "$ES_HOME/config" "$DIR/config"; }
    if [ "$(id -u)" = 0 ]; then
        id -u "$ES_USER" >/dev/null 2>&1 \
            || useradd --system --no-create-home --shell /usr/sbin/nologin "$ES_USER" \
            || die "cannot create the system user $ES_USER"
        chown -R "$ES_USER:" "$DIR"
        as=(runuser -u "$ES_USER" --)
        "${as[@]}" test -x "$ES_HOME/bin/elasticsearch" \
            || die "user $ES_USER cannot reach $ES_HOME (a parent folder is not traversable); set PIYAO_ES_HOME"
        "${as[@]}" test -w "$DIR/data" \
            || die "user $ES_USER cannot write $DIR (a parent folder is not traversable); set PIYAO_ES_DIR"
    fi
    rm -f "$PIDFILE"
    say "starting Elasticsearch $VER (java $(java_major "$java/bin/java"), heap $HEAP) on $URL"
    if ! "${as[@]}" env ES_JAVA_HOME="$java" ES_PATH_CONF="$DIR/config" ES_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP" \
        "$ES_HOME/bin/elasticsearch" -d -p "$PIDFILE" \
        -E cluster.name=piyao-dev -E node.name=piyao-dev \
        -E discovery.type=single-node -E network.host=127.0.0.1 \
        -E http.port="$PORT" -E transport.port="$((PORT + 100))" \
        -E xpack.security.enabled=false -E cluster.routing.allocation.disk.threshold_enabled=false \
        -E node.store.allow_mmap=false -E path.data="$DIR/data" -E path.logs="$DIR/logs" \
        >"$DIR/run/start.out" 2>&1; then
        die "the node did not start: $(cat "$DIR/run/start.out" "$DIR/logs/piyao-dev.log" 2>/dev/null | grep -m1 -E '^ERROR|Exception' | cut -c1-300) (see $DIR/run/start.out and $DIR/logs)"
    fi
    local i
    for i in $(seq 120); do
        if health 5 '?wait_for_status=yellow&timeout=1s' | grep -Eq '"status":"(green|yellow)"'; then
            say "up at $URL (pid $(cat "$PIDFILE"), started in $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)") s)"
            return
        fi
        our_pid >/dev/null || [ "$i" -lt 5 ] || die "the node exited during start; see $DIR/logs/piyao-dev.log"
        sleep 1
    done
    die "not healthy after 120 s; see $DIR/logs/piyao-dev.log"
}

stop() {
    local pid
    if ! pid=$(our_pid); then say "not running"; rm -f "$PIDFILE"; return; fi
    kill "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || { say "stopped (pid $pid)"; rm -f "$PIDFILE"; return; }; sleep 1; done
    kill -9 "$pid" 2>/dev/null || true
    say "killed (pid $pid did not stop within 60 s)"; rm -f "$PIDFILE"
}

status() {
    local pid
    if ! pid=$(our_pid); then say "not running"; exit 3; fi
    if healthy; then say "healthy at $URL (pid $pid): $(health 2)"; exit 0; fi
    say "running (pid $pid) but not healthy at $URL"; exit 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
