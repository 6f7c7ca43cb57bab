#!/usr/bin/env bash
# The parameter server's consistency models against each other in model quality:
#   benchmarks/ps_quality.sh [SEEDS=3]
# The quickstart run (its generated 200,000 rows, one epoch, global batch 256,
# row-wise Adagrad) on 2 workers x 1 thread: replicated tables on 2 ranks, and
# one dedicated parameter server beside the 2 workers (3 ranks) under BSP, SSP
# (staleness 2 and 8) and ASP, each with seeds 1..SEEDS. (Colocated servers run in
# lock step, where every model reads exactly what BSP reads.) It prints the final
# eval NE per model (mean, min, max over the seeds) and the mean of its per-seed
# difference to BSP. BSP equals replicated bit for bit, so their NEs are the same;
# SSP and ASP are not deterministic.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
seeds=${1:-3}
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-ps-quality.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpirun=(mpirun --oversubscribe --bind-to none)
[[ $(id -u) == 0 ]] && mpirun+=(--allow-run-as-root)
"$bin" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$work/data.tsv" >/dev/null

for ((seed = 1; seed <= seeds; ++seed)); do
  for model in replicated bsp ssp-2 ssp-8 asp; do
    case $model in
      replicated) np=2 opts=() ;;
      bsp) np=3 opts=(--ps.servers=1) ;;
      ssp-*) np=3 opts=(--ps.servers=1 --ps.consistency=ssp --ps.staleness="${model#ssp-}") ;;
      asp) np=3 opts=(--ps.servers=1 --ps.consistency=asp) ;;
    esac
    dir=$work/$model-$seed
    "${mpirun[@]}" -np "$np" "$bin" train --config configs/quickstart.ini --data.train="$work/data.tsv" \
      --run.dir="$dir" --run.threads=1 --run.seed="$seed" --train.eval_every=0 \
      --ckpt.at_end=false "${opts[@]}" >"$dir.log" 2>&1 ||
      { echo "ps_quality: $model seed $seed failed: $(tail -n 3 "$dir.log")" >&2; exit 1; }
    echo "$model $seed $(tail -n 1 "$dir/metrics.jsonl")" >>"$work/results.txt"
  done
done

/usr/bin/python3 - "$work/results.txt" "$seeds" <<'PY'
import json, statistics, sys
ne = {}
for line in open(sys.argv[1]):
    model, seed, event = line.split(" ", 2)
    ne.setdefault(model, {})[int(seed)] = json.loads(event)["ne"]
print(f"quickstart, 1 epoch, 2 workers x 1 thread (+ 1 dedicated server), seeds 1-{sys.argv[2]}: final eval NE")
print("| model | mean NE | min | max | mean difference to BSP |")
print("|---|---:|---:|---:|---:|")
for model in ("replicated", "bsp", "ssp-2", "ssp-8", "asp"):
    v = ne[model]
    d = statistics.mean(v[s] - ne["bsp"][s] for s in v)
    print(f"| {model} | {statistics.mean(v.values()):.4f} | {min(v.values()):.4f} "
          f"| {max(v.values()):.4f} | {d:+.4f} |")
PY
