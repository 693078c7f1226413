#!/usr/bin/env bash
# Soak with a ledger: a Node publisher, a Python subscriber and a C subscriber on one channel,
# and a member of a durable group in Python and one in C (group `soak-py`, `soak-c`) reading the
# share of the events published persistent (one in SOAK_PERSISTENT_EVERY, default 4) from the
# type's stream; a private redis-server (AOF, `appendfsync always`, so that what it acknowledged
# survives its SIGKILL) behind the fault proxy (tests/fault-proxy), a random fault of the fault
# matrix every few seconds and a SIGKILL + restart of Redis every minute (the first after 30 s).
# Every publish, its outcome, every delivery and every gap is written to NDJSON ledgers, RSS and
# open fds of the five processes are sampled from /proc every 3 s; after the drain, each group's
# XPENDING count, lag and the dead letters are read from Redis (durable.ndjson); and
# tests/soak/check.py proves the ledger (docs/reliability.md says what it checks) and prints the
# summary.
#
#   scripts/soak.sh [minutes]        # default 10; exit status 1 when the ledger check fails
#
# Reuses what is built: the fault-proxy binary and the C library (debug, else release) from
# CARGO_TARGET_DIR (else target/; built in debug with cargo when missing), the Node addon in bindings-node/ (built
# with `npm run build:debug` when missing), the event_bus module of VENV (default .venv;
# `maturin develop` into it when missing). Env: SOAK_OUT (where runs go, default
# target/soak), SOAK_RATE (publishes per second, default 100), SOAK_SEED (fault choice),
# SOAK_PERSISTENT_EVERY (one publish in that many is persistent; default 4).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

MINUTES=${1:-10}
case $MINUTES in ''|*[!0-9]*) echo "soak.sh: minutes must be a whole number" >&2; exit 2 ;; esac
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac
VENV=${VENV:-$ROOT/.venv}
RATE=${SOAK_RATE:-100}
PERSISTENT_EVERY=${SOAK_PERSISTENT_EVERY:-4}
RANDOM=${SOAK_SEED:-$$}
RUN=${SOAK_OUT:-$ROOT/target/soak}/run-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN"
now_ms() { date +%s%3N; }

# ---- what the run needs, built only when missing ----------------------------------------------
command -v redis-server >/dev/null || apt_install redis-server redis-tools || exit 1
PROXY_BIN=$TARGET/debug/fault-proxy
if [ ! -x "$PROXY_BIN" ]; then
  log "building the fault proxy"
  cargo build -q -p event-bus-fault-proxy || exit 1
fi
ADDON=$(ls bindings-node/event-bus.*.node 2>/dev/null | head -1)
if [ -z "$ADDON" ]; then
  log "building the Node addon (debug)"
  npm run -s build:debug || exit 1
fi
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import event_bus' 2>/dev/null; then
  log "building the Python module (debug) into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || exit 1
  "$VENV/bin/pip" install -q maturin || exit 1
  VIRTUAL_ENV=$VENV "$VENV/bin/maturin" develop -q || exit 1
fi
CLIB=$TARGET/debug
[ -f "$CLIB/libevent_bus_capi.so" ] || [ ! -f "$TARGET/release/libevent_bus_capi.so" ] || CLIB=$TARGET/release
if [ ! -f "$CLIB/libevent_bus_capi.so" ]; then
  log "building the C library (debug)"
  cargo build -q -p event-bus-capi || exit 1
fi
# The library's SONAME is that of the installed library (libevent_bus.so.<major>): link and
# load it under that name from the run directory.
SONAME=$(readelf -d "$CLIB/libevent_bus_capi.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
mkdir -p "$RUN/lib"
ln -sf "$CLIB/libevent_bus_capi.so" "$RUN/lib/${SONAME:-libevent_bus_capi.so}"
ln -sf "$CLIB/libevent_bus_capi.so" "$RUN/lib/libevent_bus.so"
cc -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -O1 \
  -I include tests/soak/sub.c -L "$RUN/lib" -levent_bus -Wl,-rpath,"$RUN/lib" -lpthread \
  -o "$RUN/c-sub" || exit 1

# ---- the processes ------------------------------------------------------------------------------
PIDS=()
REDIS_PID=""
cleanup() {
  for p in "${PIDS[@]}" $REDIS_PID; do kill -9 "$p" 2>/dev/null; done
  exec 7>&- 8>&- 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RPORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$RUN/redis"
# AOF with a write fsynced before each reply: an acknowledged XADD survives the SIGKILL.
start_redis() {
  redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
    --dir "$RUN/redis" >>"$RUN/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 100); do redis_up 127.0.0.1 "$RPORT" && return 0; sleep 0.1; done
  log "redis-server did not start on $RPORT"; return 1
}
start_redis || exit 1

mkfifo "$RUN/proxy.in"
"$PROXY_BIN" --upstream "127.0.0.1:$RPORT" <"$RUN/proxy.in" >"$RUN/proxy.out" 2>>"$RUN/proxy.log" &
PIDS+=($!)
exec 7>"$RUN/proxy.in"   # the proxy stops when this closes
for _ in $(seq 100); do [ -s "$RUN/proxy.out" ] && break; sleep 0.1; done
PPORT=$(sed -n 's/.*"listen":\([0-9]*\).*/\1/p' "$RUN/proxy.out")
CPORT=$(sed -n 's/.*"control":\([0-9]*\).*/\1/p' "$RUN/proxy.out")
[ -n "$PPORT" ] && [ -n "$CPORT" ] || { log "the fault proxy did not start"; exit 1; }
exec 8<>"/dev/tcp/127.0.0.1/$CPORT"
URL=redis://127.0.0.1:$PPORT
CHANNEL=soak.$$.$(date +%s)

fault() {   # a control command, logged with its reply
  local reply
  printf '%s\n' "$1" >&8
  IFS= read -r -t 10 reply <&8 || reply="(no reply)"
  printf '{"k":"cmd","t":%s,"what":"%s","reply":"%s"}\n' "$(now_ms)" "$1" "${reply//\"/\'}" >>"$RUN/faults.ndjson"
}
note() { printf '{"k":"fault","t":%s,"what":"%s"}\n' "$(now_ms)" "$1" >>"$RUN/faults.ndjson"; }

log "run $RUN: ${MINUTES} min, redis :$RPORT behind the proxy :$PPORT, $RATE publishes/s"
"$RUN/c-sub" "$URL" "$CHANNEL" "$RUN/sub-c.ndjson" 2>>"$RUN/c-sub.log" &
C_PID=$!; PIDS+=($C_PID)
"$VENV/bin/python" tests/soak/sub.py "$URL" "$CHANNEL" "$RUN/sub-py.ndjson" 2>>"$RUN/py-sub.log" &
PY_PID=$!; PIDS+=($PY_PID)
# The durable members (their groups are created at subscribe, from the stream's end: they are
# ready before the first publish).
"$VENV/bin/python" tests/soak/sub.py "$URL" "$CHANNEL" "$RUN/dur-py.ndjson" soak-py py-1 2>>"$RUN/py-dur.log" &
PYD_PID=$!; PIDS+=($PYD_PID)
"$RUN/c-sub" "$URL" "$CHANNEL" "$RUN/dur-c.ndjson" soak-c c-1 2>>"$RUN/c-dur.log" &
CD_PID=$!; PIDS+=($CD_PID)
for f in sub-c sub-py dur-py dur-c; do
  for _ in $(seq 300); do grep -q '"ready"' "$RUN/$f.ndjson" 2>/dev/null && break; sleep 0.1; done
done
node tests/soak/pub.js "$URL" "$CHANNEL" "$RUN/pub.ndjson" "$RATE" "$PERSISTENT_EVERY" 2>>"$RUN/pub.log" &
PUB_PID=$!; PIDS+=($PUB_PID)

sample() {
  local t name pid rss fds
  t=$(now_ms)
  for name in pub:$PUB_PID py:$PY_PID c:$C_PID pydur:$PYD_PID cdur:$CD_PID; do
    pid=${name#*:}
    [ -r "/proc/$pid/status" ] || continue
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    printf '{"k":"sample","proc":"%s","t":%s,"rss_kb":%s,"fds":%s}\n' "${name%%:*}" "$t" "${rss:-0}" "$fds" >>"$RUN/samples.ndjson"
  done
}

# ---- faults -------------------------------------------------------------------------------------
# (`<service>:sub` names the durable members' stream connections too.)
SUBS=(soak-py-sub:sub soak-c-sub:sub soak-node-pub:sub soak-py-dur:sub soak-c-dur:sub)
one_fault() {
  local sub=${SUBS[$((RANDOM % ${#SUBS[@]}))]}
  case $((RANDOM % 7)) in
    0) note "latency"; fault "latency 50 20"; sleep 3; fault "latency 0" ;;
    1) note "blackhole-sub"; fault "blackhole $sub" ;;
    2) note "reset-pub-mid-pipeline"; fault "reset soak-node-pub:pub $((RANDOM % 20000))" ;;
    3) note "reset-pub"; fault "reset soak-node-pub:pub" ;;
    4) note "outage-3s"; fault "refuse 3000"; fault "reset all"; sleep 3 ;;
    5) note "client-pause-2s"; redis-cli -p "$RPORT" CLIENT PAUSE 2000 ALL >/dev/null 2>&1; sleep 2 ;;
    6) note "slow-close-sub"; fault "close $sub 500" ;;
  esac
}

END=$((SECONDS + MINUTES * 60))
next_kill=$((SECONDS + 30))
next_sample=$SECONDS
next_fault=$((SECONDS + 3))
died=""
while [ $SECONDS -lt $END ]; do
  for p in pub:$PUB_PID py:$PY_PID c:$C_PID pydur:$PYD_PID cdur:$CD_PID; do
    kill -0 "${p#*:}" 2>/dev/null || died="$died ${p%%:*}"
  done
  [ -z "$died" ] || { log "died before the end:$died (logs in $RUN)"; break; }
  if [ $SECONDS -ge $next_sample ]; then sample; next_sample=$((SECONDS + 3)); fi
  if [ $SECONDS -ge $next_kill ] && [ $SECONDS -lt $((END - 10)) ]; then
    note "redis-kill"
    kill -9 "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
    sleep 1
    start_redis || break
    next_kill=$((SECONDS + 60))
  elif [ $SECONDS -ge $next_fault ] && [ $SECONDS -lt $((END - 10)) ]; then
    one_fault
    next_fault=$((SECONDS + 3 + RANDOM % 5))
  fi
  sleep 0.5
done

# ---- wind down: heal, let everyone reconnect, stop the publisher, let deliveries drain --------
fault "heal"
fault "latency 0"
redis_up 127.0.0.1 "$RPORT" || start_redis
sleep 5
sample
kill -TERM "$PUB_PID" 2>/dev/null
for _ in $(seq 600); do kill -0 "$PUB_PID" 2>/dev/null || break; sleep 0.1; done
sleep 3
sample
# The durable groups drain: wait (up to 2 min) until nothing is pending and nothing unread.
STREAM="events:{$CHANNEL}"
group_info() {   # "<pending> <lag>" of group $1 ("- -" when Redis cannot tell)
  redis-cli -p "$RPORT" --json XINFO GROUPS "$STREAM" 2>/dev/null | "$VENV/bin/python" -c '
import json, sys
try:
    gs = json.load(sys.stdin)
except ValueError:
    gs = []
g = next((g for g in gs if isinstance(g, dict) and g.get("name") == sys.argv[1]), None)
print("- -" if g is None else "%s %s" % (g.get("pending"), g.get("lag")))' "$1"
}
# (A lag Redis cannot tell, `None`, counts as drained once nothing was pending for 10 s.)
quiet=0
for _ in $(seq 240); do
  a=$(group_info soak-py); b=$(group_info soak-c)
  [ "$a" = "0 0" ] && [ "$b" = "0 0" ] && break
  case "$a/$b" in "0 "*"/0 "*) quiet=$((quiet + 1)) ;; *) quiet=0 ;; esac
  [ $quiet -ge 20 ] && break
  sleep 0.5
done
kill -TERM "$PY_PID" "$C_PID" "$PYD_PID" "$CD_PID" 2>/dev/null
for _ in $(seq 300); do
  kill -0 "$PY_PID" 2>/dev/null || kill -0 "$C_PID" 2>/dev/null ||
    kill -0 "$PYD_PID" 2>/dev/null || kill -0 "$CD_PID" 2>/dev/null || break
  sleep 0.1
done
# What Redis says once the members are gone: XPENDING, lag, dead letters, stream length.
dead=$(redis-cli -p "$RPORT" XLEN "$STREAM:dead" 2>/dev/null)
len=$(redis-cli -p "$RPORT" XLEN "$STREAM" 2>/dev/null)
for g in py:soak-py c:soak-c; do
  xp=$(redis-cli -p "$RPORT" XPENDING "$STREAM" "${g#*:}" 2>/dev/null | head -1)
  read -r _ lag <<<"$(group_info "${g#*:}")"
  case $xp in ''|*[!0-9]*) xp=null ;; esac
  case $lag in ''|*[!0-9]*) lag=null ;; esac
  case $dead in ''|*[!0-9]*) dead=null ;; esac
  case $len in ''|*[!0-9]*) len=null ;; esac
  printf '{"k":"durable-end","t":%s,"member":"%s","group":"%s","pending":%s,"lag":%s,"dead":%s,"len":%s}\n' \
    "$(now_ms)" "${g%%:*}" "${g#*:}" "$xp" "$lag" "$dead" "$len" >>"$RUN/durable.ndjson"
done

log "checking the ledger in $RUN"
"$VENV/bin/python" tests/soak/check.py "$RUN" --expect py,c --durable py,c | tee "$RUN/summary.txt"
status=${PIPESTATUS[0]}
[ -z "$died" ] || { echo "soak FAILED: died before the end:$died"; status=1; }
exit "$status"
