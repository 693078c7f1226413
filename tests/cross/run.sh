#!/usr/bin/env bash
# Cross-language test: builds what the participants need, runs tests/cross/run.py (events
# across the faces through one Redis), then the conformance table
# (tests/cross/conformance/conformance.py: the same bad and edge inputs through every face).
#
#   tests/cross/run.sh                          # all faces: node python c raw
#   CROSS_FACES="c node raw" tests/cross/run.sh # a subset (said in the output, never implied)
#   PYTHON=/path/to/python tests/cross/run.sh   # default .venv/bin/python (needs event_bus, redis)
#   CROSS_CLUSTER=0 tests/cross/run.sh          # skip the Redis Cluster round
#
# Then, when node, python and c are all among the faces, the durable round (run.py with
# CROSS_DURABLE=1: Node publishes persistent events, a Node, a Python and a C consumer group
# each get every one once), and the same protocol on a private Redis
# Cluster (scripts/redis-topology.sh, stopped on exit): a Node publisher, Python and C
# subscribers (Node receives too), classic cluster pub/sub; each event once at each.
#
# Needs Redis at REDIS_URL or 127.0.0.1:6379 (started if none). A face that is asked for but
# whose conformance runner file is missing fails the run ("raw", the unchanged TS service, has
# no conformance runner: its inputs are not the library's).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh

export CROSS_FACES=${CROSS_FACES:-node python c raw}
has_face() { case " $CROSS_FACES " in *" $1 "*) return 0 ;; esac; return 1; }
CONF=tests/cross/conformance
for f in node:run_node.js python:run_python.py c:run_c.c; do
  if has_face "${f%%:*}" && [ ! -f "$CONF/${f#*:}" ]; then
    echo "tests/cross/run.sh: face ${f%%:*} asked for but $CONF/${f#*:} is missing" >&2
    exit 1
  fi
done
log "faces: $CROSS_FACES"
ensure_redis

# C: the library (into target/c-install, rebuilt when stale), the participant and the
# conformance runner.
if has_face c; then
  ensure_c_lib
  export CROSS_C_BIN=$ROOT/target/cross-participant
  build_c_program "$CROSS_C_BIN" tests/cross/participant.c
  build_c_program "$ROOT/target/conformance-c" "$CONF/run_c.c"
fi

# Node: the package with its native addon.
if has_face node && ! node -e "require('./')" >/dev/null 2>&1; then
  log "building the Node package (npm install)"
  npm install --no-audit --no-fund
fi

# Python: event_bus (the Python face) and redis (the raw TS stand-in uses redis-py); run.py and
# the conformance driver need only the standard library.
export PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
need=""
has_face python && need="event_bus"
has_face raw && need="${need:+$need, }redis"
if [ -n "$need" ] && ! "$PYTHON" -c "import $need" >/dev/null 2>&1; then
  echo "tests/cross/run.sh: $PYTHON lacks $need (pip install . redis into it)" >&2
  exit 1
fi
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)

conf=()
has_face node && conf+=(--node "node $CONF/run_node.js")
has_face python && conf+=(--python "$(printf '%q' "$PYTHON") $CONF/run_python.py")
has_face c && conf+=(--c "$(printf '%q' "$ROOT/target/conformance-c")")

set +e
"$PYTHON" tests/cross/run.py
cross=$?
if [ ${#conf[@]} -gt 0 ]; then
  log "conformance table"
  "$PYTHON" "$CONF/conformance.py" "${conf[@]}"
  conformance=$?
else
  log "conformance table: no face of CROSS_FACES has a runner"
  conformance=1
fi
durable=0
if has_face node && has_face python && has_face c; then
  log "durable cross-language (Node publishes persistent; a Node, a Python and a C consumer group)"
  CROSS_FACES="node python c" CROSS_PUBLISHERS=node CROSS_DURABLE=1 \
    CROSS_LABEL="durable cross-language" "$PYTHON" tests/cross/run.py
  durable=$?
fi
cluster=0
if [ "${CROSS_CLUSTER:-1}" != 0 ] && has_face node && has_face python && has_face c; then
  log "cross-language on a Redis Cluster (Node publishes; Python and C subscribe)"
  CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/event-bus-cross-cluster-XXXXXX")
  trap 'bash scripts/redis-topology.sh stop "$CLUSTER_DIR" >/dev/null 2>&1; rm -rf "$CLUSTER_DIR"' EXIT
  trap 'exit 1' INT TERM
  if bash scripts/redis-topology.sh start cluster "$CLUSTER_DIR" >/dev/null; then
    seed=$(sed -n 's/^REDIS_CLUSTER_MASTERS=\([^,]*\).*/\1/p' "$CLUSTER_DIR/env")
    # REDIS_URL names a closed port: a participant that ignored CROSS_REDIS would fail, not pass.
    REDIS_URL=redis://127.0.0.1:1 CROSS_FACES="node python c" CROSS_PUBLISHERS=node \
      CROSS_LABEL="cross-language on a Redis Cluster" \
      CROSS_REDIS="{\"cluster\":[\"redis://$seed\"]}" "$PYTHON" tests/cross/run.py
    cluster=$?
  else
    echo "FAIL could not start the cluster"; cluster=1
  fi
fi
[ $cross = 0 ] && [ $conformance = 0 ] && [ $durable = 0 ] && [ $cluster = 0 ]
