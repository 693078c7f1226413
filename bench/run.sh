#!/usr/bin/env bash
# Benchmark command (README): builds the release artifacts it needs, then runs bench/run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_redis
command -v redis-benchmark >/dev/null || apt_install redis-tools
log "building release artifacts (Rust bench driver, Node addon, Python package, C library)"
cargo build --release -q -p event-bus-core --example bench
node -e "require('./')" >/dev/null 2>&1 || npm install --no-audit --no-fund
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import event_bus, redis' 2>/dev/null || .venv/bin/pip install -q . redis
exec python3 bench/run.py "$@"
