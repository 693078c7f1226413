# Shared helpers for the project's scripts: Redis discovery/start, the installed C library, and
# tool installs. Sourced, not executed; the helpers run from the repository root.

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

# Sets REDIS_HOST and REDIS_PORT from a redis:// URL (default: REDIS_URL).
redis_host_port() {
  local hp=${1:-${REDIS_URL:-redis://127.0.0.1:6379}}
  hp=${hp#*://}; hp=${hp#*@}; hp=${hp%%/*}
  REDIS_HOST=${hp%%:*}
  REDIS_PORT=${hp##*:}
  [ "$REDIS_PORT" = "$hp" ] && REDIS_PORT=6379
  return 0
}

# Make sure a Redis is reachable at REDIS_URL (default redis://127.0.0.1:6379) and export
# REDIS_URL. When none answers there, redis-server (installed from the Debian package if
# missing) is started:
#   ensure_redis            on REDIS_URL's host and port, daemonized: it stays up for the next
#                           run (the test suites);
#   ensure_redis --private  on a free loopback port, as a child of this shell; REDIS_URL then
#                           names it and REDIS_PRIVATE_PID is its pid, for the caller to stop
#                           on exit (the demo, which should leave nothing running).
ensure_redis() {
  local private=0
  [ "${1:-}" = --private ] && private=1
  REDIS_PRIVATE_PID=""
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
  redis_host_port "$REDIS_URL"
  if redis_up "$REDIS_HOST" "$REDIS_PORT"; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (Debian package)"
    apt_install redis-server redis-tools || return 1
  fi
  if [ $private = 1 ]; then
    local wanted=$REDIS_HOST:$REDIS_PORT
    REDIS_HOST=127.0.0.1
    REDIS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    log "no Redis at $wanted; starting a private redis-server on $REDIS_HOST:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind "$REDIS_HOST" --save '' --appendonly no \
      --logfile /dev/null &
    REDIS_PRIVATE_PID=$!
    export REDIS_URL="redis://$REDIS_HOST:$REDIS_PORT"
  else
    log "starting redis-server on $REDIS_HOST:$REDIS_PORT"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save '' \
      --appendonly no --logfile "/tmp/redis-$REDIS_PORT.log" >/dev/null
  fi
  for _ in $(seq 1 50); do redis_up "$REDIS_HOST" "$REDIS_PORT" && return 0; sleep 0.1; done
  log "redis-server did not come up on $REDIS_HOST:$REDIS_PORT"; return 1
}

# The C library (release) with its header and pkg-config files, installed under PREFIX (default
# target/c-install) by scripts/build-c.sh, rebuilt when it is missing or when a source it is
# built from (the core, bindings-c, the header, the manifests and lock file) is newer than it.
# Exports C_PREFIX (the prefix) for build_c_program.
ensure_c_lib() {
  export C_PREFIX=${1:-$PWD/target/c-install}
  local lib=$C_PREFIX/lib/libevent_bus.so
  command -v pkg-config >/dev/null || apt_install pkg-config || return 1
  if [ ! -e "$lib" ] || [ -n "$(find core bindings-c include Cargo.toml Cargo.lock -newer "$lib" \
        \( -name '*.rs' -o -name '*.toml' -o -name '*.h' -o -name Cargo.lock \) -print -quit)" ]; then
    log "building the C library (release) into $C_PREFIX"
    bash scripts/build-c.sh --prefix="$C_PREFIX" >/dev/null || return 1
  fi
}

# build_c_program BIN SRC [CFLAGS...]: compiles SRC against the library of ensure_c_lib (C11,
# -Wall -Wextra -Werror, -O2) into BIN, when BIN is missing or older than SRC, a header beside
# SRC or in examples/c (the shared json_scan.h), or the library.
build_c_program() {
  local bin=$1 src=$2; shift 2
  local lib=$C_PREFIX/lib/libevent_bus.so
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$lib" -nt "$bin" ] ||
     [ -n "$(find "$(dirname "$src")" examples/c -maxdepth 1 -name '*.h' -newer "$bin" -print -quit)" ]; then
    log "compiling $src"
    mkdir -p "$(dirname "$bin")"
    # shellcheck disable=SC2046 # pkg-config's output is a list of flags
    ${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror "$@" "$src" -o "$bin" \
      $(PKG_CONFIG_PATH="$C_PREFIX/lib/pkgconfig" pkg-config --cflags --libs event_bus) \
      -Wl,-rpath,"$C_PREFIX/lib" -lpthread || return 1
  fi
}
