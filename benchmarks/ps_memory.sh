#!/usr/bin/env bash
# Tables larger than one rank may hold, trained on parameter servers:
#   benchmarks/ps_memory.sh [LIMIT_MIB=1024] [SERVERS=8] [STEPS=50]
# Every rank runs under a memory limit of LIMIT_MIB (ulimit -d: the heap and
# private mappings). The model's 26 tables hold 4x that (rows of 16 floats plus
# their row-wise Adagrad state). Replicated training, which puts every table on
# every rank, cannot start under the limit; SERVERS dedicated servers (1 worker)
# hold a shard each and train. It prints each rank's peak resident memory
# (/usr/bin/time) and the run's samples/s.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
limit_mib=${1:-1024}
servers=${2:-8}
steps=${3:-50}
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-ps-memory.XXXXXX")
trap 'rm -rf "$work"' EXIT
# 26 tables x rows x (16 + 1) floats = 4 x the limit.
rows=$((4 * limit_mib * 1024 * 1024 / (26 * 17 * 4)))
"$bin" generate --rows 100000 --seed 7 --cardinalities "$rows" --out "$work/data.tsv" >/dev/null
mpirun=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) == 0 ]] && mpirun+=(--allow-run-as-root)
train() {  # train NAME NP [options]: every rank limited, timed
  local name=$1 np=$2
  shift 2
  "${mpirun[@]}" -np "$np" bash -c \
    'ulimit -d $((1024 * $1)); shift; /usr/bin/time -f "%M" -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$work/$name" "$limit_mib" "$bin" train --config configs/quickstart.ini \
    --data.train="$work/data.tsv" --run.dir="$work/$name" --model.embedding_rows="$rows" \
    --train.steps="$steps" --train.log_every=10 --train.eval_every=0 --ckpt.at_end=false \
    --data.eval_fraction=0.02 "$@" >"$work/$name.log" 2>&1
}
echo "tables: 26 x $rows rows x 16 floats, with row-wise state: $((26 * rows * 17 * 4 / 1048576)) MiB;" \
  "each rank limited to $limit_mib MiB (ulimit -d)"
if train replicated 1; then
  echo "replicated: trained under the limit?"
else
  echo "replicated, 1 rank: cannot start: $(grep -m1 -iE "error" "$work/replicated.log" | cut -c1-160)"
fi
train ps $((servers + 1)) --ps.servers="$servers" ||
  { echo "ps: failed: $(tail -n 5 "$work/ps.log")" >&2; exit 1; }
grep "^ps: " "$work/ps.log" | head -n 3
echo "ps, 1 worker + $servers servers: $(grep -o 'samples/s [0-9]*' "$work/ps.log" | tail -n 1)," \
  "$(grep -o 'final @ .*' "$work/ps.log")"
echo "| rank | role | peak RSS |"
echo "|---:|---|---:|"
for ((r = 0; r <= servers; ++r)); do
  role=$([[ $r == 0 ]] && echo worker || echo "server $((r - 1))")
  echo "| $r | $role | $(($(cat "$work/ps.rss.$r") / 1024)) MiB |"
done
