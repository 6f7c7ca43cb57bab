#!/usr/bin/env bash
# The parameter server against replicated tables, measured in `tandem train`:
#   benchmarks/ps_bench.sh [ROUNDS=3] [STEPS=300]
# On 2 ranks (mpirun -np 2, 1 thread each), the quickstart model (26 tables of
# 20,000 x 16) and the same model with 26 tables of 1,000,000 rows, on 200,000
# generated rows, global batch 256, row-wise Adagrad:
#   replicated       every rank holds every table (ps.servers=0)
#   colocated        each rank trains and serves half of every table (ps.servers=2),
#                    BSP, in lock step (collectives, no serving thread)
#   ... SSP 2, ASP   the same under ps.consistency=ssp (staleness 2) and asp: still
#                    in lock step, so they must match BSP
#   dedicated        rank 0 trains, rank 1 serves (ps.servers=1; one worker takes
#                    the whole batch), BSP, the next batch's rows prefetched
#   ... SSP 2, ASP   the same under ssp (staleness 2) and asp: the prefetched pull
#                    need not wait for this step's push
#   ... no prefetch  BSP, each step's rows pulled when the step needs them
# Rounds interleave them. It prints the median training samples/s (Tandem's own,
# over the steps after the first log window), the step time it implies, the ratio
# to replicated, and each rank's peak resident memory (/usr/bin/time), with the
# final eval NE of the last round: BSP equals replicated, so its NE must match.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
steps=${2:-300}
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-ps-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mpirun=(mpirun -np 2 --oversubscribe --bind-to none)
[[ $(id -u) == 0 ]] && mpirun+=(--allow-run-as-root)
"$bin" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$work/data.tsv" >/dev/null

run() {  # run NAME ROWS [options]: one training run; appends "name rows rate ne rss0 rss1"
  local name=$1 rows=$2 dir=$work/$1-$2
  shift 2
  rm -rf "$dir"
  # Each rank under its own /usr/bin/time, writing to a file named by its rank.
  "${mpirun[@]}" bash -c '/usr/bin/time -f "rss %M" -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' "$dir" \
    "$bin" train --config configs/quickstart.ini --data.train="$work/data.tsv" --run.dir="$dir" \
    --run.threads=1 --model.embedding_rows="$rows" --train.steps="$steps" --train.log_every=50 \
    --train.eval_every=0 --ckpt.at_end=false "$@" >"$dir.log" 2>&1 ||
    { echo "ps_bench: $name failed: $(tail -n 3 "$dir.log")" >&2; exit 1; }
  /usr/bin/python3 - "$dir" "$name" "$rows" >>"$work/results.txt" <<'PY'
import json, sys
d, name, rows = sys.argv[1:]
events = [json.loads(l) for l in open(d + "/metrics.jsonl")]
rates = [e["samples_per_s"] for e in events if e.get("event") == "train"][1:]
rate = len(rates) / sum(1 / r for r in rates)
ne = [e["ne"] for e in events if e.get("event") == "final"][0]
rss = [int(open(f"{d}.rss.{r}").read().split()[-1]) for r in (0, 1)]
print(name, rows, rate, ne, rss[0], rss[1])
PY
}

for ((r = 0; r < rounds; ++r)); do
  for rows in 20000 1000000; do
    run replicated $rows
    run colocated $rows --ps.servers=2 --ps.placement=colocated
    run colocated-ssp-2 $rows --ps.servers=2 --ps.placement=colocated --ps.consistency=ssp \
      --ps.staleness=2
    run colocated-asp $rows --ps.servers=2 --ps.placement=colocated --ps.consistency=asp
    run dedicated $rows --ps.servers=1
    run dedicated-ssp-2 $rows --ps.servers=1 --ps.consistency=ssp --ps.staleness=2
    run dedicated-asp $rows --ps.servers=1 --ps.consistency=asp
    run dedicated-no-prefetch $rows --ps.servers=1 --ps.prefetch=false
  done
done

/usr/bin/python3 - "$work/results.txt" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"tandem train, 2 ranks x 1 thread, {sys.argv[2]} rounds (medians), batch 256, row-wise Adagrad")
print("| tables | placement | samples/s | ms/step | vs replicated | final NE | peak RSS rank 0 | peak RSS rank 1 |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for size in ("20000", "1000000"):
    base = statistics.median(float(r[2]) for r in rows if r[0] == "replicated" and r[1] == size)
    for name in ("replicated", "colocated", "colocated-ssp-2", "colocated-asp", "dedicated",
                 "dedicated-ssp-2", "dedicated-asp", "dedicated-no-prefetch"):
        mine = [r for r in rows if r[0] == name and r[1] == size]
        rate = statistics.median(float(r[2]) for r in mine)
        rss = [statistics.median(int(r[k]) for r in mine) / 1024 for k in (4, 5)]
        print(f"| 26 x {int(size):,} | {name} | {rate:,.0f} | {256e3 / rate:.2f} | {rate / base:.2f}x "
              f"| {float(mine[-1][3]):.4f} "
              f"| {rss[0]:,.0f} MiB | {rss[1]:,.0f} MiB |")
PY
