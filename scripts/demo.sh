#!/usr/bin/env bash
# The cross-language demo (README's first command): the photo pipeline across Node, Python, C.
#
#   Node "API service"  --photo.uploaded-->  Python worker  --photo.processing.*-->  Node + C notifier
#
# Uses Redis at REDIS_URL or 127.0.0.1:6379; without one it starts a private redis-server on a
# free port. Builds what it needs on first run (Node addon, Python package, C library).
#
#   DEMO_REDIS=cluster scripts/demo.sh   # the same pipeline on a private Redis Cluster (3 masters
#                                        # + 3 replicas, scripts/redis-topology.sh), stopped at the end
#   scripts/demo.sh --kill-worker        # SIGKILL the Python worker after its first photo and start
#                                        # it again: photo.uploaded is durable (a stream and a
#                                        # consumer group), so every photo is still processed
#
# When the `event-bus` command line is built (EVENT_BUS_CLI, else target/{release,debug}/event-bus,
# else one on PATH), `event-bus tail 'photo.*'` runs beside the pipeline and its lines are shown
# prefixed with `[cli]`. It only watches: the demo's exit status is the pipeline's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

KILL_WORKER=0
for arg in "$@"; do
  case $arg in
    --kill-worker) KILL_WORKER=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) log "unknown argument '$arg' (see --help)"; exit 2 ;;
  esac
done

PIDS=()
REDIS_PRIVATE_PID=""
CLUSTER_DIR=""
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ -n "$REDIS_PRIVATE_PID" ]; then kill "$REDIS_PRIVATE_PID" 2>/dev/null || true; fi
  if [ -n "$CLUSTER_DIR" ]; then
    bash scripts/redis-topology.sh stop "$CLUSTER_DIR" >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- Redis -------------------------------------------------------------------------------
case ${DEMO_REDIS:-single} in
  single)
    ensure_redis --private
    WHERE="Redis at $REDIS_URL"
    ;;
  cluster)
    CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/event-bus-demo-cluster-XXXXXX")
    log "starting a private Redis Cluster (3 masters + 3 replicas) in $CLUSTER_DIR"
    bash scripts/redis-topology.sh start cluster "$CLUSTER_DIR" >/dev/null
    # Every service gets the cluster's nodes as seeds (REDIS_CLUSTER_NODES, host:port,...).
    export REDIS_CLUSTER_NODES
    REDIS_CLUSTER_NODES=$(sed -n 's/^REDIS_CLUSTER_NODES=//p' "$CLUSTER_DIR/env")
    WHERE="the Redis Cluster at $REDIS_CLUSTER_NODES"
    ;;
  *) log "DEMO_REDIS is single (default) or cluster, not '$DEMO_REDIS'"; exit 2 ;;
esac
log "using $WHERE"

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
if [ "$KILL_WORKER" = 1 ]; then
  # More photos, spaced out, and slower work: the kill lands while photos are still coming.
  export DEMO_PHOTOS=${DEMO_PHOTOS:-6} DEMO_PUBLISH_GAP_MS=${DEMO_PUBLISH_GAP_MS:-400}
  export DEMO_WORK_MS=${DEMO_WORK_MS:-150}
fi
export DEMO_PHOTOS=${DEMO_PHOTOS:-3}
OUT=$(mktemp -d)
WORKER_PID=""
start_worker() {
  "$VENV/bin/python" examples/demo/worker.py >>"$OUT/worker.log" 2>&1 &
  WORKER_PID=$!
  PIDS+=("$WORKER_PID")
}
# Wait until FILE holds at least N lines matching TEXT (10 s at most).
wait_for_lines() {
  local file=$1 text=$2 n=$3
  for _ in $(seq 1 200); do
    [ "$(grep -c -- "$text" "$file" 2>/dev/null)" -ge "$n" ] && return 0
    sleep 0.05
  done
  return 1
}
log "starting the C notifier and the Python worker"
"$NOTIFIER" >"$OUT/notifier.log" 2>&1 & PIDS+=($!)
start_worker
: >>"$OUT/worker.log"
tail -q -n +1 -f "$OUT/notifier.log" "$OUT/worker.log" 2>/dev/null & PIDS+=($!)
wait_for_lines "$OUT/notifier.log" ready 1 || true
wait_for_lines "$OUT/worker.log" ready 1 || true
# The CLI beside the pipeline, if it is built (nothing is built for it here).
CLI_BIN=${EVENT_BUS_CLI:-}
if [ -z "$CLI_BIN" ]; then
  for c in "${CARGO_TARGET_DIR:-$ROOT/target}/release/event-bus" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/event-bus"; do
    [ -x "$c" ] && { CLI_BIN=$c; break; }
  done
  [ -n "$CLI_BIN" ] || CLI_BIN=$(command -v event-bus 2>/dev/null || true)
fi
if [ -n "$CLI_BIN" ]; then
  CLI_SERVICE="demo-cli-$$"
  if [ -n "$CLUSTER_DIR" ]; then cli_where=(--cluster "$REDIS_CLUSTER_NODES"); else cli_where=(--url "$REDIS_URL"); fi
  : >"$OUT/cli.log"
  log "starting $CLI_BIN tail 'photo.*' (lines prefixed [cli])"
  # $! is the CLI itself (the prefixing sed ends when it does).
  "$CLI_BIN" "${cli_where[@]}" --service "$CLI_SERVICE" tail 'photo.*' \
    > >(sed -u 's/^/[cli] /' >"$OUT/cli.log") 2>&1 & PIDS+=($!)
  tail -q -n +1 -f "$OUT/cli.log" 2>/dev/null & PIDS+=($!)
  # On one server, wait until its pattern subscription is there (5 s at most): CLIENT LIST
  # shows the subscriber link as <service>:sub with psub=1.
  if [ -z "$CLUSTER_DIR" ] && command -v redis-cli >/dev/null 2>&1; then
    redis_host_port "$REDIS_URL"
    for _ in $(seq 1 100); do
      redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" CLIENT LIST 2>/dev/null |
        grep -q "name=$CLI_SERVICE:sub .*psub=1" && break
      sleep 0.05
    done
  fi
else
  log "event-bus CLI not built (cargo build -p event-bus-cli): running without its tail"
fi
log "starting the Node API service"
if [ "$KILL_WORKER" = 0 ]; then
  if node examples/demo/api-service.js; then status=0; else status=$?; fi
else
  node examples/demo/api-service.js & api=$!
  PIDS+=("$api")
  wait_for_lines "$OUT/worker.log" "processed photo-1" 1 || true
  kill -9 "$WORKER_PID" 2>/dev/null || true
  log "SIGKILLed the Python worker (pid $WORKER_PID): photos published from now on wait in photo.uploaded's stream"
  sleep 2
  log "starting the Python worker again, under the same consumer name"
  start_worker
  if wait "$api"; then status=0; else status=$?; fi
fi
# Give the worker and notifier a moment to print their stats after demo.shutdown.
for _ in $(seq 1 50); do
  grep -q stats "$OUT/notifier.log" && grep -q stats "$OUT/worker.log" && break
  sleep 0.1
done
sleep 0.2
if [ -n "${CLI_BIN:-}" ]; then
  seen=$(grep -c '^\[cli\] [0-9]' "$OUT/cli.log" 2>/dev/null) || true
  log "the CLI's tail saw ${seen:-0} photo event(s)"
fi
if [ "$status" -eq 0 ]; then log "demo finished: Node -> Python -> C and back, through $WHERE"; fi
exit $status
