#!/usr/bin/env bash
# The one test command (README "Run every test"): installs what is missing, builds every face,
# and runs every suite against a real Redis (REDIS_URL or 127.0.0.1:6379, started if none).
#
#   scripts/test-all.sh            # everything
#   SUITES="core node" scripts/test-all.sh   # a subset: lint core cli node python c cross dist soak
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

SUITES=${SUITES:-"lint core cli node python c cross dist soak"}
export CARGO_TERM_COLOR=never
passed=0; failed=0; failed_names=""

run_suite() {
  local name=$1; shift
  log "suite: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); log "suite $name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failed_names="$failed_names $name"; log "suite $name: FAILED ($((SECONDS - start)) s)"
  fi
}

ensure_tools() {
  command -v cargo >/dev/null || { log "cargo is required (https://rustup.rs)"; return 1; }
  command -v node >/dev/null || { log "node >= 18 is required"; return 1; }
  command -v valgrind >/dev/null || apt_install valgrind
  command -v pkg-config >/dev/null || apt_install pkg-config
  command -v make >/dev/null || apt_install make   # jemalloc (Node and Python faces) builds with make
  command -v openssl >/dev/null || apt_install openssl   # core/tests/tls.rs makes a throwaway CA with it
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  ensure_redis
}

# The Socket.IO test hub (tests/fixtures/socketio-hub, npm socket.io) that the core, node,
# python and c suites start for their rooms tests.
ensure_hub() {
  [ -d tests/fixtures/socketio-hub/node_modules/socket.io ] ||
    npm ci --prefix tests/fixtures/socketio-hub --no-audit --no-fund >/dev/null
}

suite_lint() {
  cargo fmt --all -- --check && cargo clippy --workspace --all-targets -q -- -D warnings &&
    cargo check -p event-bus-core --no-default-features -q
}

suite_core() {
  cargo test -p event-bus-core
}

# The `event-bus` binary against the shared Redis (cli/tests/cli.rs) and against a cluster, a
# Sentinel setup, a TLS-only and a password-protected server it starts (cli/tests/topology.rs).
suite_cli() {
  cargo test -p event-bus-cli
}

suite_node() {
  npm install --no-audit --no-fund && npm test &&
  node --test tests/fixtures/socketio-hub/smoke.test.js
}

VENV=${VENV:-$ROOT/.venv}
suite_python() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || return 1
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null &&
  "$VENV/bin/pip" install -q pytest pytest-asyncio mypy redis prometheus_client &&
  "$VENV/bin/pip" install -q --force-reinstall --no-deps . &&
  (cd bindings-python && "$VENV/bin/python" -m pytest -q tests) &&
  "$VENV/bin/python" -m mypy --strict bindings-python/tests/typecheck_worker.py &&
  # The .pyi stubs against the installed module (outside the checkout, so the import is the
  # installed package).
  (cd "${TMPDIR:-/tmp}" && "$VENV/bin/python" -m mypy.stubtest event_bus)
}

suite_c() {
  bash scripts/test-c.sh
}

suite_cross() {
  PYTHON="$VENV/bin/python" bash tests/cross/run.sh
}

# The artifacts users install without Rust, for this machine (linux x86_64, glibc): built the way
# scripts/build-dist.sh builds every platform's (zig, glibc 2.17), then the npm tarballs and the
# wheel installed into a fresh directory and venv with no Rust on PATH, the C tarball used
# through pkg-config, and a publish/subscribe round trip with each (scripts/check-dist.sh).
# The other three Linux targets take about 25 more minutes: `scripts/build-dist.sh` builds and
# checks all four.
suite_dist() {
  TARGETS=x86_64-unknown-linux-gnu DIST_DIR=target/dist-out bash scripts/build-dist.sh
}

# The soak's ledger checker on hand-made ledgers, then a one-minute soak (faults, a Redis
# SIGKILL, the ledger proved; docs/reliability.md) on the artifacts the suites above built.
suite_soak() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || return 1
  "$VENV/bin/pip" install -q pytest &&
  "$VENV/bin/python" -m pytest -q tests/soak/test_check.py &&
  VENV=$VENV bash scripts/soak.sh 1
}

ensure_tools && ensure_hub || { echo "setup: 0 passed, 1 failed"; exit 1; }
for s in $SUITES; do
  run_suite "$s" "suite_$s"
done
echo
[ -n "$failed_names" ] && log "failed suites:$failed_names"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
