#!/usr/bin/env bash
# Time from a file's arrival to a promoted model, on the quickstart model:
#   benchmarks/continuous_bench.sh [FILES=3] [ROWS=50000]
# Trains the quickstart model on 200,000 generated rows (1 rank), then runs
# `tandem continuous` on it (poll_s=1, settle_s=0, the new-data trigger at ROWS)
# and delivers FILES files of ROWS rows with concept drift (another teacher), one
# at a time: each is written under a temporary name and renamed into the incoming
# directory, and the next comes after the controller's decision on it. For each it
# prints the seconds from the rename to the decision (promotion or rejection) in
# the audit log, and the retrain's own seconds.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
files=${1:-3}
rows=${2:-50000}
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-continuous-bench.XXXXXX")
trap 'if [[ -n $controller ]]; then kill $controller 2>/dev/null; wait $controller 2>/dev/null; fi; rm -rf "$work"' EXIT
controller=
"$bin" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$work/base.tsv" >/dev/null
"$bin" train --config configs/quickstart.ini --data.train="$work/base.tsv" --run.dir="$work/initial" \
  --train.log_every=0 --train.eval_every=0 >"$work/initial.log" 2>&1
mkdir -p "$work/incoming"
cp configs/quickstart.ini "$work/c.ini"
cat >>"$work/c.ini" <<INI

[continuous]
incoming = $work/incoming
dir = $work/state
initial = $(ls "$work"/initial/checkpoints/step-*.h5 | tail -n 1)
poll_s = 1
settle_s = 0
min_new_rows = $rows
INI
"$bin" continuous --config "$work/c.ini" --train.log_every=0 --train.eval_every=0 \
  >"$work/controller.log" 2>&1 &
controller=$!
decisions() { grep -cE '"event":"(promotion|rejection)"' "$work/state/audit.jsonl" 2>/dev/null || true; }
echo "quickstart model, 1 rank, files of $rows rows with concept drift, poll_s=1"
echo "| file | arrival to decision (s) | of which retrain (s) | decision |"
echo "|---:|---:|---:|---|"
for ((n = 1; n <= files; ++n)); do
  "$bin" generate --rows "$rows" --seed $((200 + n)) --cardinalities 20000 --drift-at 0 \
    --teacher-seed 5 --out "$work/.part-$n.tmp" >/dev/null
  before=$(decisions)
  start=$(date +%s.%N)
  mv "$work/.part-$n.tmp" "$work/incoming/part-$n.tsv"
  while [[ $(decisions) == "$before" ]]; do sleep 0.05; done
  end=$(date +%s.%N)
  /usr/bin/python3 - "$work/state/audit.jsonl" "$n" "$start" "$end" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
retrain = [e for e in events if e["event"] == "retrain"][-1]
decision = [e for e in events if e["event"] in ("promotion", "rejection")][-1]
n, start, end = sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
print(f"| {n} | {end - start:.2f} | {retrain['seconds']:.2f} | {decision['event']} |")
PY
done
