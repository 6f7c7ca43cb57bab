#!/usr/bin/env bash
# What checkpointing costs a training run, measured in `tandem train` itself:
#   benchmarks/ckpt_train_bench.sh [ROUNDS=3]
# A DLRM with 100 MB of parameters (26 tables of 54,000 x 16 rows, MLPs 512-256-16
# and 1024-1024-1024: 25.1 M parameters; checkpoints of 119 MB with Adagrad state)
# trains 24 steps of 1024 samples on one rank, saving every 4 steps, once with
# async saves (ckpt.async=true, the default) and once synchronously
# (ckpt.async=false); rounds interleave the two. From Tandem's own log lines:
#   - an async save's "training blocked" time: the step boundary (everything but
#     the table rows copied, RNG gathered) plus the old table rows kept ahead of the
#     background copy (nn::RowSnapshot); the first save of a run is left out (it
#     allocates the host buffers the later ones reuse);
#   - a synchronous save's time (what training waits for without async);
# and prints the medians and their ratio.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-ckpt-train.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bin" generate --rows 40000 --seed 7 --cardinalities 54000 --out "$work/data.tsv" >/dev/null
cat >"$work/bench.ini" <<EOF
[run]
dir = $work/run
seed = 1
[data]
train = $work/data.tsv
eval_fraction = 0.1
[model]
embedding_dim = 16
bottom_mlp = 512,256,16
top_mlp = 1024,1024,1024
embedding_rows = 54000
[optim]
name = adagrad
lr = 0.01
[train]
steps = 24
batch_size = 1024
eval_every = 0
log_every = 0
[ckpt]
every_steps = 4
at_end = false
EOF

blocked=() sync=()
for ((r = 0; r < rounds; r++)); do
  rm -rf "$work/run"
  log=$("$bin" train --config "$work/bench.ini" --ckpt.async=true 2>&1)
  mapfile -t b < <(grep -o 'training blocked [0-9.]* ms' <<<"$log" | awk '{print $3}' | tail -n +2)
  blocked+=("${b[@]}")
  rm -rf "$work/run"
  log=$("$bin" train --config "$work/bench.ini" --ckpt.async=false 2>&1)
  mapfile -t s < <(grep -o 'in [0-9.]* s (training waited)' <<<"$log" | awk '{print $2}')
  sync+=("${s[@]}")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
b=$(median "${blocked[@]}")
s=$(median "${sync[@]}")
echo "# tandem train, 100 MB of parameters, a save every 4 steps, $rounds rounds; medians"
printf '  %-44s %10s  %s\n' "async save: training blocked" "$b ms" "(${#blocked[@]} saves)"
printf '  %-44s %10s  %s\n' "synchronous save: training waits" "$s s" "(${#sync[@]} saves)"
awk -v b="$b" -v s="$s" 'BEGIN {printf "  %-44s %10.3f\n", "blocked / synchronous save", b / 1000 / s}'
