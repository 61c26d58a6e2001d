#!/usr/bin/env bash
# Debian's Chromium and a CJK font for the browser tests (tests/web/browser/): install | status.
#
#   scripts/chromium.sh install   # apt-get install chromium fonts-wqy-microhei (once, as root)
#   scripts/chromium.sh status    # prints the version; exit 3 when missing
#
# Playwright drives this Chromium (executable_path), never a browser it downloads itself: these machines
# reach Debian's mirror but not Playwright's CDN. The font makes Chinese text render in screenshots.
# Settings (environment): PIYAO_CHROMIUM  the browser binary (default /usr/bin/chromium)
set -euo pipefail

BIN="${PIYAO_CHROMIUM:-/usr/bin/chromium}"
die() { echo "chromium: error: $*" >&2; exit 1; }
say() { echo "chromium: $*"; }
present() { [ -x "$BIN" ] && fc-list 2>/dev/null | grep -qi "wqy\|noto sans cjk"; }

install() {
    if present; then
        say "present: $("$BIN" --version 2>/dev/null | head -1)"
        return
    fi
    [ "$(id -u)" = 0 ] || die "$BIN or a CJK font is missing; run as root: apt-get install chromium fonts-wqy-microhei"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends chromium fonts-wqy-microhei >/dev/null
    fi
    present || die "installed, but $BIN or the font is still missing"
    say "installed: $("$BIN" --version 2>/dev/null | head -1)"
}

case "${1:-}" in
    install) install ;;
    status) if present; then "$BIN" --version; else echo "chromium: not installed"; exit 3; fi ;;
    *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac
