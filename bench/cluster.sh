#!/usr/bin/env bash
# Cluster benchmark: classic against sharded pub/sub on a private local Redis Cluster
# (3 masters + 3 replicas from scripts/redis-topology.sh, stopped at the end), through the
# Node face: end-to-end events/s and the servers' CPU per 100k events (INFO cpu before and
# after, on every node). Writes bench/results/cluster.md and cluster.json.
#
#   bench/cluster.sh
#   BENCH_ROUNDS=5 BENCH_EVENTS=100000 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
command -v redis-server >/dev/null || apt_install redis-server redis-tools
# Release addon (npm install builds it; an unchanged rebuild takes a second).
npm install --no-audit --no-fund >/dev/null
DIR=$(mktemp -d "${TMPDIR:-/tmp}/event-bus-bench-cluster-XXXXXX")
trap 'bash scripts/redis-topology.sh stop "$DIR" >/dev/null 2>&1; rm -rf "$DIR"' EXIT
trap 'exit 1' INT TERM
log "starting a local Redis Cluster in $DIR"
bash scripts/redis-topology.sh start cluster "$DIR" >/dev/null
set -a
. "$DIR/env"
set +a
mkdir -p bench/results
node bench/node/cluster.js --json bench/results/cluster.json | tee bench/results/cluster.md
