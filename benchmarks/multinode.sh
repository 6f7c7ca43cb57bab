#!/usr/bin/env bash
# Tandem between hosts: network-namespace hosts on this machine (veth pairs over one
# machine's memory, not a datacenter network), made by tests/multinode/hosts.sh.
#   benchmarks/multinode.sh [ROUNDS=3] [STEPS=300]
# 1. Collectives (comm_bench, nccl-tests format): 2 ranks on one host (shared
#    memory) against 1 rank on each of 2 hosts (TCP over the veths).
# 2. Training samples/s on 2 hosts x 1 rank (the quickstart model, batch 256, 1
#    thread per rank) with 0, 2 and 10 ms of added round trip on host 2's link
#    (tests/multinode/delay_line.py), with train.overlap on and off; rounds
#    interleave them and the medians are printed.
# Needs root (namespaces); launched through launch/mpirun.sh with a hostfile.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
steps=${2:-300}
launch/build.sh tandem_cli comm_bench >/dev/null
build=${TANDEM_BUILD_DIR:-$repo/build}
REPO=$repo
TANDEM=$build/bin/tandem
source tests/multinode/hosts.sh
mn_require
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-multinode-bench.XXXXXX")
trap 'mn_down; rm -rf "$work"' EXIT
mn_up 2
mn_hostfile "$work/one" tdm1:2
mn_hostfile "$work/two" tdm1:1 tdm2:1

echo "## comm_bench, 2 ranks on one host (shared memory)"
TANDEM_BIN=$build/bin/comm_bench mn_mpirun "$work/one" 2 --iters 20 --table-only --max-mb 32
echo "## comm_bench, 1 rank on each of 2 hosts (TCP over veth)"
TANDEM_BIN=$build/bin/comm_bench mn_mpirun "$work/two" 2 --iters 20 --table-only --max-mb 32

"$TANDEM" generate --rows 100000 --seed 7 --cardinalities 20000 --out "$work/data.tsv" >/dev/null
for ((r = 0; r < rounds; ++r)); do
  for ms in 0 1 5; do
    ((ms == 0)) || mn_delay tdm2 "$ms"
    for overlap in true false; do
      dir=$work/run-$ms-$overlap
      rm -rf "$dir"
      mn_mpirun "$work/two" 2 train --config configs/quickstart.ini --data.train="$work/data.tsv" \
        --run.dir="$dir" --run.threads=1 --train.steps="$steps" --train.log_every=50 \
        --train.eval_every=0 --ckpt.at_end=false --train.overlap="$overlap" >"$dir.log" 2>&1 ||
        { echo "multinode bench: failed: $(tail -n 3 "$dir.log")" >&2; exit 1; }
      /usr/bin/python3 - "$dir" "$((2 * ms))" "$overlap" >>"$work/results.txt" <<'PY'
import json, sys
d, rtt, overlap = sys.argv[1:]
rates = [e["samples_per_s"] for e in map(json.loads, open(d + "/metrics.jsonl"))
         if e.get("event") == "train"][1:]
print(rtt, overlap, len(rates) / sum(1 / r for r in rates))
PY
    done
    mn_undelay
  done
done
/usr/bin/python3 - "$work/results.txt" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
print(f"\n## tandem train, 2 hosts x 1 rank x 1 thread, quickstart model, batch 256, "
      f"{sys.argv[2]} rounds (medians)")
print("| added RTT | overlap on | overlap off | on / off | on vs 0 ms |")
print("|---:|---:|---:|---:|---:|")
med = {(r, o): statistics.median(float(x[2]) for x in rows if x[0] == r and x[1] == o)
       for r in ("0", "2", "10") for o in ("true", "false")}
for r in ("0", "2", "10"):
    on, off = med[(r, "true")], med[(r, "false")]
    print(f"| {r} ms | {on:,.0f} | {off:,.0f} | {on / off:.2f}x | {on / med[('0', 'true')]:.2f}x |")
PY
