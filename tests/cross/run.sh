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

# C: the library (into target/c-install, rebuilt when a C ABI or core source is newer), then
# the participant.
C_PREFIX=$ROOT/target/c-install
LIB=$C_PREFIX/lib/libevent_bus.so
if [ ! -e "$LIB" ] || [ -n "$(find core include Cargo.toml -newer "$LIB" \( -name '*.rs' -o -name '*.toml' -o -name '*.h' \) -print -quit)" ]; then
  log "building the C library into $C_PREFIX"
  bash scripts/build-c.sh --prefix="$C_PREFIX" >/dev/null
fi
BIN=$ROOT/target/cross-participant
if [ ! -x "$BIN" ] || [ tests/cross/participant.c -nt "$BIN" ] || [ "$LIB" -nt "$BIN" ]; then
  log "compiling tests/cross/participant.c"
  ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror tests/cross/participant.c -o "$BIN" \
    $(PKG_CONFIG_PATH="$C_PREFIX/lib/pkgconfig" pkg-config --cflags --libs event_bus) \
    -Wl,-rpath,"$C_PREFIX/lib" -lpthread
fi
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
