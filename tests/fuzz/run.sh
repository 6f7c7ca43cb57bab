#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (AddressSanitizer +
# UndefinedBehaviorSanitizer) into build-fuzz/ and runs each for MINUTES (default 1),
# printing its executions per second and corpus size:
#   tests/fuzz/run.sh [MINUTES]
# Targets: parse_line (the TSV line parser). The corpus (build-fuzz/corpus-NAME/)
# starts from generated rows and is kept between runs; a crash leaves its input in
# build-fuzz/ and fails the script.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
minutes=${1:-1}
out=$repo/build-fuzz
mkdir -p "$out"
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (apt-get install clang)" >&2; exit 1; }
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$repo/src")
clang++ "${flags[@]}" "$repo/tests/fuzz/parse_line_fuzz.cpp" "$repo/src/tandem/data/criteo.cpp" \
  "$repo/src/tandem/util/log.cpp" -lfmt -o "$out/parse_line_fuzz"

run() {  # run NAME SEED_COMMAND: fuzz NAME for the minutes given
  local name=$1 corpus=$out/corpus-$1
  mkdir -p "$corpus"
  if [[ -z $(ls -A "$corpus") ]]; then eval "$2"; fi
  (cd "$out" && "./${name}_fuzz" "$corpus" -max_total_time=$((minutes * 60)) -max_len=4096 \
    -print_final_stats=1 >"$out/$name.log" 2>&1) ||
    { tail -n 30 "$out/$name.log"; echo "fuzz: $name found a failure (input in $out)" >&2; exit 1; }
  local runs secs
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$')
  secs=$((minutes * 60))
  echo "$name: $runs executions in ${secs} s ($((runs / secs))/s), corpus $(ls "$corpus" | wc -l) inputs, no failure"
}

# Seeds: a few generated rows, one per file, and a malformed one.
seed_rows() {
  local bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem tmp
  tmp=$(mktemp)
  if [[ -x $bin ]]; then "$bin" generate --rows 20 --seed 1 --out "$tmp" >/dev/null; fi
  local i=0
  while IFS= read -r line; do printf '%s' "$line" >"$out/corpus-parse_line/row-$((i++))"; done <"$tmp"
  printf '1\t\t\t' >"$out/corpus-parse_line/short"
  rm -f "$tmp"
}
run parse_line seed_rows
