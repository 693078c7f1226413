#!/usr/bin/env bash
# Durable-delivery benchmark: persistent publish and durable (consumer group) delivery through
# the Node face, against plain pub/sub through the same face and ioredis doing XADD/XREADGROUP
# by hand, on the Redis at REDIS_URL (default 127.0.0.1:6379, started if none). Writes
# bench/results/durable.md and durable.json.
#
#   bench/durable.sh
#   BENCH_ROUNDS=5 BENCH_SCALE=2 bench/durable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_redis
# Release addon (npm install builds it; an unchanged rebuild takes a second) and ioredis.
npm install --no-audit --no-fund >/dev/null
mkdir -p bench/results
node bench/node/durable.js --json bench/results/durable.json | tee bench/results/durable.md
