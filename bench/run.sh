#!/usr/bin/env bash
# Benchmark command (README): builds the release artifacts it needs, then runs bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_redis
command -v redis-benchmark >/dev/null || apt_install redis-tools
log "building release artifacts (Rust bench driver, Node addon, Python package, C library)"
# The Rust driver (bench/rust, crate event-bus-bench) enables the core's `jemalloc` feature, as
# the Node and Python faces do.
cargo build --release -q -p event-bus-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
export BENCH_RUST_BIN=$target_dir/release/event-bus-bench
# Always rebuild the faces in release: a debug addon or a stale wheel left by a test run would
# otherwise be measured.
[ -d node_modules/ioredis ] || npm install --no-audit --no-fund --ignore-scripts
npm run -s build
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import redis' 2>/dev/null || .venv/bin/pip install -q redis
.venv/bin/pip install -q --force-reinstall --no-deps .
exec python3 bench/run.py "$@"
