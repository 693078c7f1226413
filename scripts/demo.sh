#!/usr/bin/env bash
# The cross-language demo (README's first command): the photo pipeline across Node, Python, C.
#
#   Node "API service"  --photo.uploaded-->  Python worker  --photo.processing.*-->  Node + C notifier
#
# Uses Redis at REDIS_URL or 127.0.0.1:6379; without one it starts a private redis-server on a
# free port. Builds what it needs on first run (Node addon, Python package, C library).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

PRIVATE_REDIS_PID=""
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -n "$PRIVATE_REDIS_PID" ]; then kill "$PRIVATE_REDIS_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- Redis -------------------------------------------------------------------------------
url=${REDIS_URL:-redis://127.0.0.1:6379}
hp=${url#redis://}; hp=${hp#*@}; hp=${hp%%/*}; host=${hp%%:*}; port=${hp##*:}; [ "$port" = "$hp" ] && port=6379
if redis_up "$host" "$port"; then
  log "using Redis at $url"
elif command -v redis-server >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --logfile /dev/null &
  PRIVATE_REDIS_PID=$!
  for _ in $(seq 1 50); do redis_up 127.0.0.1 "$port" && break; sleep 0.1; done
  url="redis://127.0.0.1:$port"
  log "no Redis at $host:${hp##*:}; started a private redis-server at $url"
else
  echo "No Redis reachable at $url and no redis-server binary: install one (Debian: apt-get install redis-server) or set REDIS_URL." >&2
  exit 1
fi
export REDIS_URL=$url

# --- Build what is missing ---------------------------------------------------------------
if ! node -e "require('./')" >/dev/null 2>&1; then
  log "building the Node package (first run: a release build of the native addon, a few minutes)"
  npm install --no-audit --no-fund
fi
VENV=${VENV:-$ROOT/.venv}
if ! "$VENV/bin/python" -c 'import event_bus' >/dev/null 2>&1; then
  log "building the Python package into $VENV (first run: a few minutes)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install . 2>&1 | grep -E "Building|Successfully|error" || true
fi
C_PREFIX=$ROOT/target/c-install
NOTIFIER=$ROOT/target/demo-notifier
if [ ! -x "$NOTIFIER" ] || [ examples/demo/notifier.c -nt "$NOTIFIER" ]; then
  log "building the C library and the notifier"
  bash scripts/build-c.sh --prefix "$C_PREFIX" >/dev/null
  cc -O2 -Wall -o "$NOTIFIER" examples/demo/notifier.c \
    $(PKG_CONFIG_PATH="$C_PREFIX/lib/pkgconfig" pkg-config --cflags --libs event_bus) \
    -Wl,-rpath,"$C_PREFIX/lib"
fi

# --- Run ---------------------------------------------------------------------------------
export DEMO_RUN="demo-$$-$RANDOM"
export DEMO_PHOTOS=${DEMO_PHOTOS:-3}
OUT=$(mktemp -d)
log "starting the C notifier and the Python worker"
"$NOTIFIER" >"$OUT/notifier.log" 2>&1 & PIDS+=($!)
"$VENV/bin/python" examples/demo/worker.py >"$OUT/worker.log" 2>&1 & PIDS+=($!)
tail -q -n +1 -f "$OUT/notifier.log" "$OUT/worker.log" 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 100); do
  grep -q ready "$OUT/notifier.log" && grep -q ready "$OUT/worker.log" && break
  sleep 0.1
done
log "starting the Node API service"
node examples/demo/api-service.js
status=$?
# Give the worker and notifier a moment to print their stats after demo.shutdown.
for _ in $(seq 1 50); do
  grep -q stats "$OUT/notifier.log" && grep -q stats "$OUT/worker.log" && break
  sleep 0.1
done
sleep 0.2
if [ "$status" -eq 0 ]; then log "demo finished: Node -> Python -> C and back, through Redis at $REDIS_URL"; fi
exit $status
