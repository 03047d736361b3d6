#!/usr/bin/env bash
# /docs in a real browser, as a new user meets it (issue 5).
#
#   bash tests/browser/run.sh <path-to-whatsapp-memory-binary>
#
# Starts the binary in development with no API_KEYS on a fresh SQLite database, reads the key
# it prints, and with headless Chromium (Debian's, driven by playwright-core) authorises in
# Swagger UI and executes every operation of the served spec (see docs.mjs). Prints one line
# an operation and `browser: N passed, N failed`; exits non-zero if any failed.
#
# playwright-core is pinned (package-lock.json) and installed once into
# ${XDG_CACHE_HOME:-~/.cache}/whatsapp-memory-browser; it downloads no browser of its own.
# Settings: BROWSER_CHROMIUM (default /usr/bin/chromium, else `chromium` on PATH),
# BROWSER_SCREENSHOT (where the final screenshot goes), BROWSER_KEEP=1 keeps the scratch folder.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: bash tests/browser/run.sh <path-to-whatsapp-memory-binary>" >&2; exit 2; }
[ -x "$1" ] && [ -f "$1" ] || { echo "browser: FAILED: $1 is not an executable file" >&2; exit 2; }
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/whatsapp-memory-browser

die() { echo "browser: FAILED: $*" >&2; exit 1; }
now() { date +%s; }

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/whatsapp-memory-browser.XXXXXX")
cleanup() {
  local status=$?
  if [ "$status" -eq 0 ] && [ "${BROWSER_KEEP:-0}" != 1 ]; then
    rm -rf "$SCRATCH"
  else
    echo "browser: server log and screenshot kept in $SCRATCH" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools ------------------------------------------------------------------------------
t0=$(now)
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  die "Node.js 20 or newer is needed, found $(node --version)"
CHROMIUM=${BROWSER_CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
  if [ -x /usr/bin/chromium ]; then CHROMIUM=/usr/bin/chromium; else CHROMIUM=$(command -v chromium || true); fi
fi
[ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ] ||
  die "Chromium is needed: apt-get install chromium (or set BROWSER_CHROMIUM to a Chromium binary)"

mkdir -p "$CACHE"
NODE_KEY=$(cat "$HERE/package-lock.json" <(node -p 'process.versions.node.split(".")[0]') | sha256sum | cut -c1-16)
NODE_DIR=$CACHE/node-$NODE_KEY
how=cached
{
  flock 9
  if [ ! -f "$NODE_DIR/.complete" ]; then
    rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR"
    cp "$HERE/package.json" "$HERE/package-lock.json" "$NODE_DIR/"
    if ! npm ci --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error >"$SCRATCH/npm.log" 2>&1; then
      tail -n 40 "$SCRATCH/npm.log" >&2
      die "installing playwright-core into $NODE_DIR"
    fi
    touch "$NODE_DIR/.complete"
    how=installed
  fi
  # Older pinned sets are dead weight once the current one is in.
  for old in "$CACHE"/node-*; do
    [ "$old" = "$NODE_DIR" ] || [ ! -e "$old" ] || rm -rf "$old"
  done
} 9>"$CACHE/.lock"
echo "browser: tools: ready, playwright-core $how, $("$CHROMIUM" --version 2>/dev/null | head -n1) ($(( $(now) - t0 ))s)"

# ---- the session ------------------------------------------------------------------------
# docs.mjs imports playwright-core from the cached install, next to a copy of itself.
cp "$HERE/docs.mjs" "$SCRATCH/docs.mjs"
ln -s "$NODE_DIR/node_modules" "$SCRATCH/node_modules"
BROWSER_CHROMIUM=$CHROMIUM node "$SCRATCH/docs.mjs" "$BIN" "$SCRATCH"
