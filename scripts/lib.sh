# Shared helpers for the project's scripts: Redis discovery/start and tool installs.
# Sourced, not executed.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Is a Redis answering at host:port?
redis_up() {
  local host=$1 port=$2
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h "$host" -p "$port" ping 2>/dev/null | grep -q PONG
  else
    (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 7 <&3 | grep -q PONG) 2>/dev/null
  fi
}

# apt-get install, once per run, only when something is missing.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    log "apt-get not available; please install: $*"
    return 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Make sure a Redis is reachable at REDIS_URL (default redis://127.0.0.1:6379); start one if not.
ensure_redis() {
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
  local hp=${REDIS_URL#redis://}; hp=${hp#*@}; hp=${hp%%/*}
  local host=${hp%%:*} port=${hp##*:}
  [ "$port" = "$hp" ] && port=6379
  if redis_up "$host" "$port"; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (Debian package)"
    apt_install redis-server redis-tools
  fi
  log "starting redis-server on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save '' --appendonly no \
    --logfile "/tmp/redis-$port.log" >/dev/null
  for _ in $(seq 1 50); do redis_up "$host" "$port" && return 0; sleep 0.1; done
  log "redis-server did not come up on $host:$port"; return 1
}
