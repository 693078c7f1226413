#!/usr/bin/env bash
# The C suite: builds and installs the C library into a scratch prefix, checks that the
# committed header is what cbindgen generates, that every exported eb_* function is referenced
# by the symbols test, compiles the tests (-Wall -Wextra -Werror, as C and as C++) and the
# example through pkg-config, and runs the tests under valgrind (zero errors, zero leaks).
# The room tests (tests/c/test_rooms.c) start the Socket.IO test hub
# (tests/fixtures/socketio-hub/hub.js) with node; its node_modules are installed if missing.
# The durable tests (tests/c/test_durable.c, test_durable_rows.c) use the same Redis (streams of
# unique types); test_durable_rows.c also starts a private redis-server with AOF that it
# SIGKILLs and restarts (redis-server and redis-cli needed).
# The cluster tests (tests/c/test_cluster.c) start a private Redis Cluster and a Sentinel setup
# with scripts/redis-topology.sh (redis-server and redis-cli needed) and stop them at exit.
#
#   scripts/test-c.sh                # needs Redis at REDIS_URL or 127.0.0.1:6379 (started if none)
#   VALGRIND=0 scripts/test-c.sh     # without valgrind (faster)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

BUILD=$ROOT/tests/c/build
PREFIX=$BUILD/prefix
CC=${CC:-cc}
CXX=${CXX:-c++}
WARN="-Wall -Wextra -Werror -g -O1"
passed=0
failed=0

step() {
  local name=$1; shift
  if "$@"; then
    passed=$((passed + 1)); echo "ok   - $name"
  else
    failed=$((failed + 1)); echo "FAIL - $name"
  fi
}

command -v valgrind >/dev/null || [ "${VALGRIND:-1}" = 0 ] || apt_install valgrind
command -v pkg-config >/dev/null || apt_install pkg-config
ensure_redis || exit 1
if ! command -v node >/dev/null; then
  echo "node is required for the room tests (Socket.IO hub)"; echo "0 passed, 1 failed"; exit 1
fi
HUB_DIR=tests/fixtures/socketio-hub
if [ ! -d "$HUB_DIR/node_modules/socket.io" ]; then
  log "installing the Socket.IO test hub's dependencies (npm ci --prefix $HUB_DIR)"
  npm ci --prefix "$HUB_DIR" --no-audit --no-fund >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
export EB_HUB_SCRIPT=$ROOT/$HUB_DIR/hub.js

mkdir -p "$BUILD"
export EB_HUB_LOG=$BUILD/hub.log # the test hubs' stderr
: >"$EB_HUB_LOG"
log "building and installing the C library into $PREFIX"
# Symbols kept (the release profile strips them) so that valgrind names the frames that
# tests/c/valgrind.supp matches.
export CARGO_PROFILE_RELEASE_STRIP=none
build_out=$(bash scripts/build-c.sh --prefix="$PREFIX") || { echo "0 passed, 1 failed"; exit 1; }
GENERATED=$(printf '%s\n' "$build_out" | sed -n 's/^GENERATED_HEADER=//p')
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
RPATH="-Wl,-rpath,$PREFIX/lib"

header_is_current() {
  if ! cmp -s "$GENERATED" include/event_bus.h; then
    echo "    include/event_bus.h is stale; regenerate with scripts/build-c.sh --update-header:" >&2
    diff -u include/event_bus.h "$GENERATED" | head -40 >&2
    return 1
  fi
}

soname_is_set() {
  readelf -d "$PREFIX/lib/libevent_bus.so" | grep -q 'SONAME.*\[libevent_bus\.so\.[0-9]*\]'
}

compile() {
  rm -f "$BUILD"/test_capi "$BUILD"/test_capi_cpp "$BUILD"/test_rooms* "$BUILD"/test_symbols* \
        "$BUILD"/test_cluster* "$BUILD"/test_durable* "$BUILD"/notifier
  $CC -std=c11 $WARN -D_GNU_SOURCE tests/c/test_capi.c -o "$BUILD/test_capi" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CXX -std=c++17 $WARN -x c++ tests/c/test_capi.c -o "$BUILD/test_capi_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CC -std=c11 $WARN -D_GNU_SOURCE tests/c/test_rooms.c -o "$BUILD/test_rooms" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CXX -std=c++17 $WARN -D_GNU_SOURCE -x c++ tests/c/test_rooms.c -o "$BUILD/test_rooms_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CC -std=c11 $WARN -D_GNU_SOURCE tests/c/test_cluster.c -o "$BUILD/test_cluster" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CXX -std=c++17 $WARN -D_GNU_SOURCE -x c++ tests/c/test_cluster.c -o "$BUILD/test_cluster_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CC -std=c11 $WARN -D_GNU_SOURCE tests/c/test_durable.c -o "$BUILD/test_durable" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CXX -std=c++17 $WARN -D_GNU_SOURCE -x c++ tests/c/test_durable.c -o "$BUILD/test_durable_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CC -std=c11 $WARN -D_GNU_SOURCE tests/c/test_durable_rows.c -o "$BUILD/test_durable_rows" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CXX -std=c++17 $WARN -D_GNU_SOURCE -x c++ tests/c/test_durable_rows.c -o "$BUILD/test_durable_rows_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH -lpthread &&
  $CC -std=c11 $WARN tests/c/test_symbols.c -o "$BUILD/test_symbols" \
      $(pkg-config --cflags --libs event_bus) $RPATH &&
  $CXX -std=c++17 $WARN -x c++ tests/c/test_symbols.c -o "$BUILD/test_symbols_cpp" \
      $(pkg-config --cflags --libs event_bus) $RPATH &&
  $CC -std=c11 $WARN tests/c/test_symbols.c -o "$BUILD/test_symbols_static" \
      $(pkg-config --cflags --libs event_bus-static) &&
  $CC -std=c11 $WARN -D_GNU_SOURCE examples/c/notifier.c -o "$BUILD/notifier" \
      $(pkg-config --cflags --libs event_bus) $RPATH
}

# Every eb_* function the library exports is in the symbols test, and the reverse.
exports_match() {
  local exported referenced
  exported=$(nm -D --defined-only "$PREFIX/lib/libevent_bus.so" | awk '$2 == "T" && $3 ~ /^eb_/ {print $3}' | sort)
  referenced=$("$BUILD/test_symbols" --list | sort)
  if [ "$exported" != "$referenced" ]; then
    echo "    exported vs referenced differ:" >&2
    diff <(echo "$exported") <(echo "$referenced") >&2
    return 1
  fi
  "$BUILD/test_symbols" && "$BUILD/test_symbols_cpp" >/dev/null && "$BUILD/test_symbols_static" >/dev/null
}

VG=(valgrind --quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,possible
    --errors-for-leak-kinds=definite,possible --track-origins=yes
    --suppressions="$ROOT/tests/c/valgrind.supp")
run_tests() {
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_capi"
  else
    "${VG[@]}" "$BUILD/test_capi"
  fi
}

run_tests_cpp() {
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_capi_cpp" | tail -1
  else
    "${VG[@]}" "$BUILD/test_capi_cpp" | tail -1
  fi
}

# The room tests against the Socket.IO test hub (a node child per test; valgrind does not
# trace it: --trace-children=no is its default).
run_rooms() {
  local rc
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_rooms"; rc=$?
  else
    "${VG[@]}" "$BUILD/test_rooms"; rc=$?
  fi
  [ $rc = 0 ] || { echo "    last lines of $EB_HUB_LOG:" >&2; tail -20 "$EB_HUB_LOG" >&2; }
  return $rc
}

run_rooms_cpp() {
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_rooms_cpp" | tail -1
  else
    "${VG[@]}" "$BUILD/test_rooms_cpp" | tail -1
  fi
}

# The cluster and Sentinel tests (private topologies from scripts/redis-topology.sh; the
# program stops them at exit). Run once, as C: the C++ build is compiled only.
run_cluster() {
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_cluster"
  else
    "${VG[@]}" "$BUILD/test_cluster"
  fi
}

# Durable delivery (consumer groups, dead letters). Run once, as C: the C++ build is compiled only.
run_durable() {
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_durable"
  else
    "${VG[@]}" "$BUILD/test_durable"
  fi
}

# The durable rows (a member away, two groups, plain subscribers, a SIGKILLed member child, Redis
# SIGKILLed and restarted with AOF on a private redis-server, trimming). The member child is the
# same program re-executed; valgrind does not trace it. Run once, as C.
run_durable_rows() {
  command -v redis-server >/dev/null || apt_install redis-server redis-tools || return 1
  if [ "${VALGRIND:-1}" = 0 ]; then
    "$BUILD/test_durable_rows"
  else
    "${VG[@]}" "$BUILD/test_durable_rows"
  fi
}

# The example receives an event published by a raw Redis client (the wire format, no library).
example_runs() {
  command -v redis-cli >/dev/null || { echo "    (redis-cli missing: example only compiled)"; return 0; }
  local ch="photo.processing.completed" out pid
  out=$(mktemp)
  EB_NOTIFIER_MAX_EVENTS=1 "$BUILD/notifier" >"$out" 2>&1 &
  pid=$!
  local payload='{"id":"5f0c2a9e-1111-4c1d-9a2b-0123456789ab","type":"photo.processing.completed","data":{"photoId":"c-example","url":"https://x/y.jpg"},"metadata":{"source":"test-c.sh","timestamp":"'$(date -u +%Y-%m-%dT%H:%M:%S.000Z)'","traceId":"t","version":"1.0.0"}}'
  redis_host_port
  for _ in $(seq 1 100); do
    grep -q "listening" "$out" && break
    sleep 0.1
  done
  redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" PUBLISH "$ch" "$payload" >/dev/null
  for _ in $(seq 1 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  if kill -0 $pid 2>/dev/null; then kill $pid; wait $pid; cat "$out" >&2; rm -f "$out"; return 1; fi
  wait $pid; local rc=$?
  grep -q "c-example" "$out" || rc=1
  [ $rc = 0 ] || cat "$out" >&2
  rm -f "$out"
  return $rc
}

step "header matches cbindgen output" header_is_current
step "SONAME set" soname_is_set
step "compile tests and example (-Wall -Wextra -Werror, C and C++, shared and static)" compile
step "every exported eb_* symbol referenced" exports_match
step "C tests$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_tests
step "C tests compiled as C++$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_tests_cpp
step "C room tests (Socket.IO hub)$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_rooms
step "C room tests compiled as C++$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_rooms_cpp
step "C cluster and Sentinel tests$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_cluster
step "C durable delivery tests$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_durable
step "C durable delivery rows (away, groups, plain, SIGKILLed member, AOF restart, trimming)$([ "${VALGRIND:-1}" = 0 ] || echo " under valgrind")" run_durable_rows
step "example receives an event" example_runs
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
