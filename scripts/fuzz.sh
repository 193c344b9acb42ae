#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a while (default 60 s each) with cargo-fuzz on nightly,
# and prints how many inputs each one executed. Crashes land in fuzz/artifacts/<target>/;
# each becomes a unit test once fixed. Not part of CI (time), nor of the stable workspace.
#
#   scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log=$(mktemp)
  if cargo +nightly fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    verdict=ok
  else
    verdict="CRASH (see fuzz/artifacts/$target)"
  fi
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  printf '%-20s %12s execs in %ss  %s\n' "$target" "$runs" "$seconds" "$verdict"
  [ "$verdict" = ok ] || tail -40 "$log"
  rm -f "$log"
done
