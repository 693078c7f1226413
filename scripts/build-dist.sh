#!/usr/bin/env bash
# Builds every distributable artifact from this checkout into dist/, then checks each one
# (scripts/check-dist.sh) and prints what it built, its size and how it was checked:
#
#   dist/npm/     shared-infra-event-bus-V.tgz           the JS package; its optionalDependencies
#                                                        are the platform packages below
#                 shared-infra-event-bus-PLATFORM-V.tgz  one prebuilt addon each (napi-rs layout),
#                                                        with the `event-bus` CLI binary that the
#                                                        main package's `event-bus` bin runs
#   dist/wheels/  shared_infra_event_bus-V-cp310-abi3-TAG.whl  one per platform, CPython >= 3.10;
#                                                        the CLI binary as its script `event-bus`
#                 shared_infra_event_bus-V.tar.gz        the sdist (builds from source with Rust)
#   dist/c/       event-bus-V-TARGET.tar.gz              include/, lib/ (.so, .a), lib/pkgconfig/
#
#   scripts/build-dist.sh                                  # the four Linux targets
#   TARGETS=x86_64-unknown-linux-gnu scripts/build-dist.sh # a subset (the test suite's short form)
#   scripts/build-dist.sh --no-check                       # build only
#
# Targets: x86_64-unknown-linux-gnu, x86_64-unknown-linux-musl, aarch64-unknown-linux-gnu,
# aarch64-unknown-linux-musl. glibc builds link against glibc 2.17 (manylinux_2_17), musl builds
# against musl 1.2 (musllinux_1_2), both through zig (cargo-zigbuild; maturin --zig), which
# brings every libc and sysroot, so one linker serves the four. The build machine's own target
# uses the rustup toolchain; the others need a standard library that rustup cannot add here, so
# they use Debian's rustc-web/cargo-web with rust-web-src and `-Zbuild-std`.
#
# Tools it installs when missing (under DIST_TOOLS, default target/dist-tools, and apt):
# ziglang + maturin + wheel (PyPI, in a venv), cargo-zigbuild (crates.io), rustc-web cargo-web
# rust-web-src (apt, only for targets other than the machine's), binutils-aarch64-linux-gnu (to
# strip the aarch64 static libraries), and what check-dist.sh runs
# the builds with (qemu-user, musl, an arm64 Node from npm, an arm64 Python from Debian).
#
# Env: DIST_DIR (default dist), DIST_TOOLS, DIST_TARGET_DIR (cargo's, default target/dist, with
# one directory per face: sharing one, maturin's build and cargo-zigbuild's rebuilt each other's
# crates, so an unchanged second run took as long as the first; and not the test builds'
# directory, for the same reason), TARGETS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

check=1
for a in "$@"; do
  case $a in
    --no-check) check=0 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "build-dist.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

ALL_TARGETS="x86_64-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-gnu aarch64-unknown-linux-musl"
TARGETS=${TARGETS:-$ALL_TARGETS}
DIST_DIR=$(realpath -m "${DIST_DIR:-dist}")
export DIST_TOOLS=$(realpath -m "${DIST_TOOLS:-target/dist-tools}")
DIST_TARGET_DIR=$(realpath -m "${DIST_TARGET_DIR:-target/dist}")
HOST=$(rustc -vV | sed -n 's/^host: //p')
VERSION=$(node -p 'require("./package.json").version')
start=$SECONDS

# ---- tools -------------------------------------------------------------------------------
dist_tools() {
  if [ ! -x "$DIST_TOOLS/venv/bin/maturin" ] || [ ! -x "$DIST_TOOLS/venv/bin/python-zig" ] ||
     [ ! -x "$DIST_TOOLS/venv/bin/wheel" ]; then
    log "installing ziglang, maturin and wheel (PyPI) into $DIST_TOOLS/venv"
    python3 -m venv "$DIST_TOOLS/venv"
    "$DIST_TOOLS/venv/bin/pip" install -q 'ziglang>=0.13' 'maturin>=1.16,<2' 'wheel>=0.40'
    # cargo-zigbuild and maturin find zig as `python -m ziglang`; a `zig` on PATH for both.
    printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$DIST_TOOLS/venv/bin/python" >"$DIST_TOOLS/venv/bin/python-zig"
    chmod +x "$DIST_TOOLS/venv/bin/python-zig"
    ln -sf python-zig "$DIST_TOOLS/venv/bin/zig"
  fi
  if [ ! -x "$DIST_TOOLS/bin/cargo-zigbuild" ]; then
    log "installing cargo-zigbuild (crates.io)"
    CARGO_TARGET_DIR="$DIST_TOOLS/build" cargo install -q --locked cargo-zigbuild --root "$DIST_TOOLS"
    rm -rf "$DIST_TOOLS/build"
  fi
  local t
  case " $TARGETS " in
    *" aarch64-"*) command -v aarch64-linux-gnu-strip >/dev/null || apt_install binutils-aarch64-linux-gnu ;;
  esac
  for t in $TARGETS; do
    if [ "$t" != "$HOST" ] && { [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; }; then
      log "installing Debian's rustc-web, cargo-web and rust-web-src (for -Zbuild-std)"
      apt_install rustc-web cargo-web rust-web-src
      break
    fi
  done
}

# ---- one target --------------------------------------------------------------------------
# cargo for TARGET: the rustup toolchain for the machine's own target, else Debian's with the
# standard library built from source. Sets CARGO, BUILD_STD, ZTARGET and the environment.
toolchain_for() {
  local target=$1
  ZTARGET=$target
  case $target in *-gnu) ZTARGET=$target.2.17 ;; esac
  if [ "$target" = "$HOST" ]; then
    CARGO=cargo; BUILD_STD=""
    unset RUSTC RUSTC_BOOTSTRAP
  else
    CARGO=/usr/bin/cargo; BUILD_STD="-Zbuild-std=std,panic_unwind"
    export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  fi
  # A musl cdylib must link libc dynamically (Node and Python load it into their process).
  local up
  up=$(echo "$target" | tr 'a-z-' 'A-Z_')
  case $target in *-musl) export "CARGO_TARGET_${up}_RUSTFLAGS=-C target-feature=-crt-static" ;; esac
}

platform_of() {
  node -e 'const p=require("./bindings-node/js/platform").PREBUILT.find(x=>x.target===process.argv[1]);
           if(!p){console.error("no npm platform for "+process.argv[1]);process.exit(1)} console.log(p.platform)' "$1"
}

build_target() {
  local target=$1 platform stage
  platform=$(platform_of "$target")
  toolchain_for "$target"
  local out="$DIST_TARGET_DIR/node/$target/release"

  log "[$target] Node addon ($CARGO zigbuild -p event-bus-node)"
  # shellcheck disable=SC2086
  CARGO_TARGET_DIR="$DIST_TARGET_DIR/node" $CARGO zigbuild -q --release -p event-bus-node --target "$ZTARGET" $BUILD_STD
  log "[$target] CLI ($CARGO zigbuild -p event-bus-cli)"
  # Its own invocation: built together, cargo would unify the core's features of both.
  # shellcheck disable=SC2086
  CARGO_TARGET_DIR="$DIST_TARGET_DIR/node" $CARGO zigbuild -q --release -p event-bus-cli --target "$ZTARGET" $BUILD_STD
  stage="$DIST_DIR/.stage/npm-$platform"
  rm -rf "$stage"
  node bindings-node/scripts/dist-package.js platform "$platform" "$out/libevent_bus_node.so" "$stage" "$out/event-bus"
  (cd "$stage" && npm pack -q --pack-destination "$DIST_DIR/npm" >/dev/null)

  log "[$target] Python wheel (maturin build --zig)"
  local compat=manylinux_2_17
  case $target in *-musl) compat=musllinux_1_2 ;; esac
  # shellcheck disable=SC2086
  PATH="$(dirname "$(command -v "$CARGO")"):$PATH" "$DIST_TOOLS/venv/bin/maturin" build -q --release \
    --target "$target" --zig --compatibility "$compat" --out "$DIST_DIR/wheels" \
    --target-dir "$DIST_TARGET_DIR/python" ${BUILD_STD:+-Z ${BUILD_STD#-Z}} 2>&1 |
    grep -v '^📦\|^🍹\|^🔗\|^🐍\|^💻\|^📡\|^⚠️  Warning: .*(crate-type\|build-backend. in pyproject\|^$' >&2 || true
  local whl
  whl=$(ls "$DIST_DIR"/wheels/*"${compat}_${target%%-*}".whl)
  wheel_add_script "$whl" "$out/event-bus" event-bus

  log "[$target] C library"
  stage="$DIST_DIR/.stage/c/event-bus-$VERSION-$target"
  rm -rf "$stage"
  CARGO_TARGET_DIR="$DIST_TARGET_DIR/c" CARGO_BUILD="$CARGO zigbuild -q $BUILD_STD" \
    bash scripts/build-c.sh --target "$ZTARGET" --prefix "$stage" >/dev/null
  # The static library keeps the standard library's debug information otherwise (about a
  # fifth of its size); the shared one is already stripped by the release profile.
  local strip=strip
  case $target in aarch64-*) strip=aarch64-linux-gnu-strip ;; esac
  "$strip" --strip-debug "$stage/lib/libevent_bus.a"
  cp bindings-c/README.md "$stage/README.md"
  tar -C "$(dirname "$stage")" -czf "$DIST_DIR/c/event-bus-$VERSION-$target.tar.gz" "$(basename "$stage")"
}

# wheel_add_script WHEEL FILE NAME: puts FILE into WHEEL as the script NAME (in its .data/scripts,
# which pip installs into the environment's bin/ as it is, executable), RECORD regenerated.
wheel_add_script() {
  local whl=$1 file=$2 name=$3 tmp d
  tmp=$(mktemp -d)
  "$DIST_TOOLS/venv/bin/wheel" unpack -d "$tmp" "$whl" >/dev/null
  d=$(ls -d "$tmp"/*/)
  d=${d%/}
  mkdir -p "$d/$(basename "$d").data/scripts"
  install -m 755 "$file" "$d/$(basename "$d").data/scripts/$name"
  rm -f "$whl"
  "$DIST_TOOLS/venv/bin/wheel" pack -d "$(dirname "$whl")" "$d" >/dev/null
  rm -rf "$tmp"
  [ -f "$whl" ] || { log "wheel pack did not write $whl back"; return 1; }
}

# ---- main --------------------------------------------------------------------------------
dist_tools
export PATH="$DIST_TOOLS/bin:$DIST_TOOLS/venv/bin:$PATH"
rm -rf "$DIST_DIR"
mkdir -p "$DIST_DIR/npm" "$DIST_DIR/wheels" "$DIST_DIR/c"

log "JS package (npm pack)"
node bindings-node/scripts/dist-package.js main "$DIST_DIR/.stage/npm-main"
(cd "$DIST_DIR/.stage/npm-main" && npm pack -q --pack-destination "$DIST_DIR/npm" >/dev/null)
log "sdist (maturin sdist)"
maturin sdist --out "$DIST_DIR/wheels" >/dev/null

for t in $TARGETS; do
  build_target "$t"
done
rm -rf "$DIST_DIR/.stage"
log "built in $((SECONDS - start)) s"

if [ $check = 1 ]; then
  TARGETS="$TARGETS" bash scripts/check-dist.sh "$DIST_DIR"
fi
