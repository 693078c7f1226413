#!/usr/bin/env bash
# Cross-language test: builds what the participants need, then runs tests/cross/run.py.
#
#   tests/cross/run.sh                          # all faces: node python c raw
#   CROSS_FACES="c node raw" tests/cross/run.sh
#   PYTHON=/path/to/python tests/cross/run.sh   # default .venv/bin/python (needs event_bus, redis)
#
# Needs Redis at REDIS_URL or 127.0.0.1:6379 (started if none and redis-server exists).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. scripts/lib.sh
ensure_redis

# C: the library (into target/c-install, rebuilt when stale), then the participant.
ensure_c_lib
BIN=$ROOT/target/cross-participant
build_c_program "$BIN" tests/cross/participant.c
export CROSS_C_BIN=$BIN

# Node: the package with its native addon.
if ! node -e "require('./')" >/dev/null 2>&1; then
  log "building the Node package (npm install)"
  npm install --no-audit --no-fund
fi

# Python: event_bus and redis (the raw TS stand-in uses redis-py).
export PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
if ! "$PYTHON" -c 'import event_bus, redis' >/dev/null 2>&1; then
  echo "tests/cross/run.sh: $PYTHON lacks event_bus or redis (pip install . redis into it)" >&2
  exit 1
fi

set +e
"$PYTHON" tests/cross/run.py
exit $?
