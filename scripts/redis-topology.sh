#!/usr/bin/env bash
# Start or stop a local Redis Cluster or Sentinel setup, for tests, the demo and trying things.
#
#   scripts/redis-topology.sh start cluster  DIR   3 masters + 3 replicas (cluster-node-timeout 1500)
#   scripts/redis-topology.sh start sentinel DIR   master + replica + 3 sentinels (quorum 2)
#   scripts/redis-topology.sh stop DIR             stop exactly the servers that start wrote down
#
# Everything lives in DIR (created if missing; one sub-directory per server with its config,
# log and data). Ports are free loopback ports below 55535 (a cluster node's bus port, port +
# 10000, is free too). `start` waits until the topology is ready (cluster state ok with every
# replica attached; sentinels agreeing on the master, its replica and each other), then writes
# DIR/env (shell syntax, `source` it) and prints it:
#   cluster:  REDIS_TOPOLOGY=cluster   REDIS_CLUSTER_NODES=127.0.0.1:p1,...  (masters first)
#             REDIS_CLUSTER_MASTERS=... REDIS_CLUSTER_REPLICAS=...
#   sentinel: REDIS_TOPOLOGY=sentinel  REDIS_SENTINEL_NAME=mymaster  REDIS_SENTINELS=127.0.0.1:s1,...
#             REDIS_MASTER=127.0.0.1:p  REDIS_REPLICA=127.0.0.1:p
# DIR/pids holds "pid port role" per server; `stop` signals only those pids (and only while
# they still run redis-server), TERM first, KILL after 5 s.
#
# Environment: REDIS_SERVER_BIN, REDIS_CLI_BIN (binaries), REDIS_SENTINEL_NAME (default
# mymaster), REDIS_TOPOLOGY_PORT (first port to try; default a random one).
set -euo pipefail

SERVER=${REDIS_SERVER_BIN:-redis-server}
CLI=${REDIS_CLI_BIN:-redis-cli}
NAME=${REDIS_SENTINEL_NAME:-mymaster}

die() { echo "redis-topology: $*" >&2; exit 1; }
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Is something listening on 127.0.0.1:$1?
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A random first port. 20000-22700 keeps a cluster node's bus port (+10000) below the usual
# ephemeral range (32768 and up), where an outgoing connection may hold it.
random_base() { echo $((20000 + RANDOM % 2700)); }

# N free ports (each with port+10000 free too when $2 = bus), consecutive.
free_ports() {
  local n=$1 bus=${2:-} base tries=0 p ok out
  base=${REDIS_TOPOLOGY_PORT:-$(random_base)}
  while :; do
    tries=$((tries + 1)); [ $tries -gt 200 ] && die "no free ports found"
    out=(); ok=1
    for ((p = base; p < base + n; p++)); do
      if [ $p -ge 55535 ] || listening $p || { [ -n "$bus" ] && listening $((p + 10000)); }; then
        ok=0; break
      fi
      out+=($p)
    done
    if [ $ok = 1 ]; then echo "${out[@]}"; return; fi
    base=$(random_base)
  done
}

cli() { local port=$1; shift; "$CLI" -h 127.0.0.1 -p "$port" "$@"; }

# Start one redis-server (daemonized) from DIR/$name/redis.conf; record its pid.
launch() {
  local dir=$1 name=$2 port=$3 role=$4; shift 4
  local d=$dir/$name
  "$SERVER" "$d/redis.conf" "$@" >/dev/null 2>&1 || die "$name did not start (see $d/redis.log)"
  local i
  for ((i = 0; i < 100; i++)); do
    if [ -s "$d/redis.pid" ] && cli "$port" ping 2>/dev/null | grep -q PONG; then
      echo "$(cat "$d/redis.pid") $port $role" >>"$dir/pids"
      return
    fi
    sleep 0.1
  done
  die "$name (port $port) does not answer (see $d/redis.log)"
}

common_conf() {
  local d=$1 port=$2
  mkdir -p "$d"
  cat >"$d/redis.conf" <<EOF
port $port
bind 127.0.0.1
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
dir $d
save ""
appendonly no
EOF
}

wait_for() { # seconds, description, command...
  local secs=$1 what=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "timed out after ${secs}s waiting for $what"
}

cluster_ready() {
  local p
  for p in "$@"; do
    cli "$p" cluster info | grep -q 'cluster_state:ok' || return 1
    cli "$p" cluster info | grep -q 'cluster_slots_assigned:16384' || return 1
    [ "$(cli "$p" cluster nodes | grep -c slave)" = 3 ] || return 1
    # A replica can only take over once it has synced (failover refuses one without data).
    if cli "$p" role | head -1 | grep -q slave; then
      cli "$p" info replication | grep -q master_link_status:up || return 1
    fi
  done
}

start_cluster() {
  local dir=$1 ports p nodes=() masters replicas
  read -r -a ports <<<"$(free_ports 6 bus)"
  for p in "${ports[@]}"; do
    common_conf "$dir/node-$p" "$p"
    cat >>"$dir/node-$p/redis.conf" <<EOF
cluster-enabled yes
cluster-config-file $dir/node-$p/nodes.conf
cluster-node-timeout 1500
cluster-replica-validity-factor 0
EOF
    launch "$dir" "node-$p" "$p" cluster-node
    nodes+=("127.0.0.1:$p")
  done
  "$CLI" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
    || die "redis-cli --cluster create failed (see $dir/create.log)"
  wait_for 60 "the cluster to be ready" cluster_ready "${ports[@]}"
  masters=$(cli "${ports[0]}" cluster nodes | awk '/master/ {split($2, a, "@"); print a[1]}' | sort | paste -sd, -)
  replicas=$(cli "${ports[0]}" cluster nodes | awk '/slave/ {split($2, a, "@"); print a[1]}' | sort | paste -sd, -)
  cat >"$dir/env" <<EOF
REDIS_TOPOLOGY=cluster
REDIS_CLUSTER_NODES=$masters,$replicas
REDIS_CLUSTER_MASTERS=$masters
REDIS_CLUSTER_REPLICAS=$replicas
EOF
}

sentinels_ready() {
  local s
  for s in "$@"; do
    cli "$s" sentinel ckquorum "$NAME" | grep -q '^OK 3 ' || return 1
    [ "$(cli "$s" sentinel replicas "$NAME" | grep -c '^name$')" -ge 1 ] || return 1
  done
}

start_sentinel() {
  local dir=$1 ports m r s sentinels=()
  read -r -a ports <<<"$(free_ports 5)"
  m=${ports[0]}; r=${ports[1]}
  common_conf "$dir/master-$m" "$m"
  launch "$dir" "master-$m" "$m" master
  common_conf "$dir/replica-$r" "$r"
  echo "replicaof 127.0.0.1 $m" >>"$dir/replica-$r/redis.conf"
  launch "$dir" "replica-$r" "$r" replica
  wait_for 30 "the replica to sync" sh -c "'$CLI' -p $r info replication | grep -q master_link_status:up"
  for s in "${ports[@]:2}"; do
    common_conf "$dir/sentinel-$s" "$s"
    cat >>"$dir/sentinel-$s/redis.conf" <<EOF
sentinel monitor $NAME 127.0.0.1 $m 2
sentinel down-after-milliseconds $NAME 1500
sentinel failover-timeout $NAME 5000
sentinel parallel-syncs $NAME 1
EOF
    launch "$dir" "sentinel-$s" "$s" sentinel --sentinel
    sentinels+=("127.0.0.1:$s")
  done
  wait_for 60 "the sentinels to agree" sentinels_ready "${ports[@]:2}"
  cat >"$dir/env" <<EOF
REDIS_TOPOLOGY=sentinel
REDIS_SENTINEL_NAME=$NAME
REDIS_SENTINELS=$(IFS=,; echo "${sentinels[*]}")
REDIS_MASTER=127.0.0.1:$m
REDIS_REPLICA=127.0.0.1:$r
EOF
}

stop_all() {
  local dir=$1 pid port role left
  [ -f "$dir/pids" ] || return 0
  while read -r pid port role; do
    # Only a process that still is one of ours: a pid may have been reused since.
    if grep -qa redis "/proc/$pid/cmdline" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done <"$dir/pids"
  for ((i = 0; i < 50; i++)); do
    left=0
    while read -r pid port role; do
      grep -qa redis "/proc/$pid/cmdline" 2>/dev/null && left=1
    done <"$dir/pids"
    [ $left = 0 ] && break
    sleep 0.1
  done
  while read -r pid port role; do
    if grep -qa redis "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done <"$dir/pids"
  mv "$dir/pids" "$dir/pids.stopped"
}

[ $# -ge 2 ] || usage
case $1 in
  start)
    [ $# = 3 ] || usage
    kind=$2; dir=$3
    command -v "$SERVER" >/dev/null || die "$SERVER not found (set REDIS_SERVER_BIN)"
    command -v "$CLI" >/dev/null || die "$CLI not found (set REDIS_CLI_BIN)"
    mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
    [ -s "$dir/pids" ] && die "$dir already has running servers (stop it first)"
    : >"$dir/pids"
    # A failed or interrupted start leaves nothing running.
    ready=0
    trap '[ $ready = 1 ] || stop_all "$dir"' EXIT
    trap 'exit 1' INT TERM
    case $kind in cluster | sentinel) ;; *) usage ;; esac
    # A port can be taken between the check and the bind: up to 3 tries on fresh ports.
    for try in 1 2 3; do
      if ( "start_$kind" "$dir" ); then ready=1; break; fi
      stop_all "$dir"
      rm -rf "${dir:?}"/node-* "${dir:?}"/master-* "${dir:?}"/replica-* "${dir:?}"/sentinel-* "$dir/pids.stopped"
      : >"$dir/pids"
      unset REDIS_TOPOLOGY_PORT
      echo "redis-topology: start failed (try $try of 3)" >&2
    done
    [ $ready = 1 ] || die "could not start the $kind"
    cat "$dir/env"
    ;;
  stop)
    stop_all "$2"
    ;;
  *) usage ;;
esac
