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

PIDS=()
REDIS_PRIVATE_PID=""
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -n "$REDIS_PRIVATE_PID" ]; then kill "$REDIS_PRIVATE_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- Redis -------------------------------------------------------------------------------
ensure_redis --private
log "using Redis at $REDIS_URL"

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
ensure_c_lib
NOTIFIER=$ROOT/target/demo-notifier
build_c_program "$NOTIFIER" examples/c/notifier.c

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
