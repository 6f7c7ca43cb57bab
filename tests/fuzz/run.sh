#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang (AddressSanitizer +
# UndefinedBehaviorSanitizer) into build-fuzz/ and runs each for MINUTES (default 1),
# printing its executions per second and corpus size:
#   tests/fuzz/run.sh [MINUTES] [TARGET...]
# Targets (default all):
#   parse_line  the TSV line parser (every byte of training data)
#   schema      the delimited [schema] parser: floats, hashed and hex ids, multi-hot lists
#   config      the INI config reader and its checks (config.ini must read back)
#   checkpoint  the checkpoint reader: header, verify, read (every byte of a file)
# Each corpus (build-fuzz/corpus-NAME/) starts from real inputs and is kept between
# runs; a failure leaves its input in build-fuzz/ and fails the script. Third-party
# leaks are suppressed by tests/sanitizers/lsan.supp, which says why for each.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
minutes=${1:-1}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(parse_line schema config checkpoint)
out=$repo/build-fuzz
src=$repo/src/tandem
mkdir -p "$out"
if ! command -v clang++ >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  apt-get install -y --no-install-recommends clang >/dev/null
fi
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (apt-get install clang)" >&2; exit 1; }
flags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$repo/src" -DTANDEM_VERSION='"fuzz"')
export LSAN_OPTIONS=suppressions=$repo/tests/sanitizers/lsan.supp

build() {  # build NAME SOURCES_AND_LIBRARIES...
  local name=$1
  shift
  clang++ "${flags[@]}" "$repo/tests/fuzz/${name}_fuzz.cpp" "$@" -o "$out/${name}_fuzz"
}

seed_parse_line() {  # a few generated rows, one per file, and a malformed one
  local bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem tmp i=0
  tmp=$(mktemp)
  if [[ -x $bin ]]; then "$bin" generate --rows 20 --seed 1 --out "$tmp" >/dev/null; fi
  while IFS= read -r line; do printf '%s' "$line" >"$1/row-$((i++))"; done <"$tmp"
  printf '1\t\t\t' >"$1/short"
  rm -f "$tmp"
}
seed_schema() {  # lines of the fuzzed schema: ids, empty lists, a malformed one
  printf '1,3,-2.5,0.5,Paris,ff,a|b|c,1;2' >"$1/full"
  printf '0,,,,,,,' >"$1/empty"
  printf '1,1e3,7,9,x,0,a||b,zz' >"$1/bad"
}
seed_config() { cp "$repo"/configs/*.ini "$1/"; }
seed_checkpoint() { TANDEM_FUZZ_SEED=$1/small.h5 "$out/checkpoint_fuzz"; }

run() {  # run NAME MAX_LEN: fuzz NAME for the minutes given
  local name=$1 corpus=$out/corpus-$1
  mkdir -p "$corpus"
  if [[ -z $(ls -A "$corpus") ]]; then "seed_$name" "$corpus"; fi
  (cd "$out" && "./${name}_fuzz" "$corpus" -max_total_time=$((minutes * 60)) -max_len="$2" \
    -print_final_stats=1 >"$out/$name.log" 2>&1) ||
    { tail -n 40 "$out/$name.log"; echo "fuzz: $name found a failure (input in $out)" >&2; exit 1; }
  local runs secs=$((minutes * 60))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$name.log" | grep -o '[0-9]*$')
  echo "$name: $runs executions in ${secs} s ($((runs / secs))/s), corpus $(ls "$corpus" | wc -l) inputs, no failure"
}

for t in "${targets[@]}"; do
  case $t in
    parse_line)
      build parse_line "$src/data/criteo.cpp" "$src/util/log.cpp" -lfmt
      run parse_line 4096 ;;
    schema)
      build schema "$src/data/schema.cpp" "$src/data/criteo.cpp" "$src/util/log.cpp" -lfmt
      run schema 4096 ;;
    config)
      build config "$src/config/train_config.cpp" "$src/config/options.cpp" \
        "$src/data/schema.cpp" "$src/data/criteo.cpp" "$src/util/log.cpp" \
        -lboost_program_options -lfmt
      run config 4096 ;;
    checkpoint)
      # shellcheck disable=SC2046  # pkg-config's flags are words
      build checkpoint "$src/ckpt/checkpoint.cpp" "$src/ckpt/h5file.cpp" "$src/util/log.cpp" \
        $(pkg-config --cflags --libs hdf5) -ltorch_cpu -lc10 -lxxhash -lfmt
      run checkpoint 65536 ;;
    *) echo "fuzz: unknown target '$t' (parse_line, schema, config, checkpoint)" >&2; exit 2 ;;
  esac
done
