#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo-fuzz on the nightly toolchain) in turn, each for the
# given number of seconds (default 600), at the lowest CPU priority. Exits non-zero when a
# target crashes (libFuzzer writes the input to fuzz/artifacts/<target>/) or fails to build.
# Each run's last lines (with libFuzzer's `#N DONE ... exec/s` count) are kept in
# fuzz/logs/<target>.log. Needs `cargo install cargo-fuzz` and `rustup toolchain install
# nightly`. Not part of CI (nightly only); the property tests in core/tests/prop_*.rs are the
# stable, short form of the same checks.
#
#   scripts/fuzz.sh            # 600 s per target
#   scripts/fuzz.sh 60         # a quick pass
#   TARGETS="decode c_abi" scripts/fuzz.sh 120
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
TARGETS=${TARGETS:-"glob_diff decode config_json c_abi socketio_packet"}
mkdir -p fuzz/logs
if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
  echo "cargo-fuzz on the nightly toolchain is needed: cargo install cargo-fuzz" >&2
  exit 2
fi
nice -n 19 cargo +nightly fuzz build || exit 2
failed=0
for t in $TARGETS; do
  echo "== $t (${SECS}s)"
  mkdir -p "fuzz/corpus/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  nice -n 19 cargo +nightly fuzz run "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
    >"fuzz/logs/$t.log" 2>&1
  rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec' \
    "fuzz/logs/$t.log" | sed "s/^/  $t: /"
  if [ $rc -ne 0 ]; then
    echo "  $t: FAILED (exit $rc); see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    tail -n 30 "fuzz/logs/$t.log"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $failed of $(echo $TARGETS | wc -w) targets failed"
[ $failed -eq 0 ]
