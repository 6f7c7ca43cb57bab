#!/usr/bin/env bash
# Continuous retraining, end to end, on a generated stream with a known change
# point:
#   launch/continuous_demo.sh [WORK_DIR=checkpoints/continuous-demo]
# 1. trains an initial model on 100,000 rows (the quickstart model, 1 rank);
# 2. starts `tandem continuous` on it, watching WORK_DIR/incoming;
# 3. delivers six files of 25,000 rows, one every few seconds, each written
#    under a temporary name and then renamed (how a file is taken only when
#    complete): two like the training data, then, from the third, a change point
#    with covariate shift (I1-I10 shifted, C1-C13 permuted) and another teacher;
# 4. stops the controller with SIGTERM and prints the audit log as a timeline.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
work=${1:-checkpoints/continuous-demo}
rm -rf "$work"
mkdir -p "$work/incoming"
model=(--model.embedding_rows=20000 --run.threads=0 --train.log_every=0 --train.eval_every=0)

"$bin" generate --rows 100000 --seed 7 --cardinalities 20000 --out "$work/base.tsv" >/dev/null
"$bin" train --config configs/quickstart.ini --data.train="$work/base.tsv" \
  --run.dir="$work/initial" "${model[@]}" >"$work/initial.log" 2>&1
initial=$(ls "$work"/initial/checkpoints/step-*.h5 | tail -n 1)
echo "initial model: $initial ($(grep -o 'final @ .*' "$work/initial.log"))"

cp configs/quickstart.ini "$work/continuous.ini"
cat >>"$work/continuous.ini" <<INI

[continuous]
incoming = $work/incoming
dir = $work/state
initial = $initial
poll_s = 1
settle_s = 0
min_new_rows = 50000
INI
"$bin" continuous --config "$work/continuous.ini" "${model[@]}" >"$work/controller.log" 2>&1 &
controller=$!
trap 'kill $controller 2>/dev/null || true' EXIT

deliver() {  # deliver N [generate options]: part-N.tsv, written then renamed
  local n=$1
  shift
  "$bin" generate --rows 25000 --seed $((100 + n)) --cardinalities 20000 \
    --out "$work/incoming/.part-$n.tsv.tmp" "$@" >/dev/null
  mv "$work/incoming/.part-$n.tsv.tmp" "$work/incoming/part-$n.tsv"
  echo "delivered part-$n.tsv $*"
}
wait_polls() {  # wait_polls N: until the audit log has N more polls
  local want=$(($(grep -c '"event":"poll"' "$work/state/audit.jsonl" 2>/dev/null || echo 0) + $1))
  while (($(grep -c '"event":"poll"' "$work/state/audit.jsonl" 2>/dev/null || echo 0) < want)); do
    sleep 0.5
  done
}
drift=(--drift-at 0 --shift-dense 1,2,3,4,5,6,7,8,9,10 --permute-categorical 1,2,3,4,5,6,7,8,9,10,11,12,13
  --teacher-seed 5)
for n in 1 2; do
  deliver "$n"
  wait_polls 2
done
for n in 3 4 5 6; do
  deliver "$n" "${drift[@]}"
  wait_polls 2
done
kill -TERM $controller
wait $controller || true
trap - EXIT

echo
echo "audit log ($work/state/audit.jsonl) as a timeline:"
/usr/bin/python3 - "$work/state/audit.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    kind, t = e["event"], e["time"][11:19]
    if kind == "poll":
        if not e["new_files"] and not e["fired"]:
            continue
        trig = e["triggers"]
        bits = []
        if "drift" in trig and "drifted_features" in trig["drift"]:
            bits.append(f"drift {trig['drift']['drifted_features']}/39 features")
        if "decay" in trig:
            bits.append(f"champion NE {trig['decay']['ne']:.4f} ({trig['decay']['rise']:+.1%})")
        if "new_data" in trig:
            bits.append(f"{trig['new_data']['rows']} new rows")
        fired = ", ".join(e["fired"]) or "nothing"
        print(f"{t}  poll {e['poll']}: new {e['new_files']}; {'; '.join(bits)}; fired: {fired}")
    elif kind == "retrain":
        print(f"{t}  retrain {e['model']} on {e['rows']} rows ({e['steps']} steps, {e['seconds']:.1f} s) because {', '.join(e['reasons'])}")
    elif kind == "evaluation":
        c = e["challenger_metrics"]
        line = f"{t}  evaluation on {c['rows']} held-out rows: challenger NE {c['ne']:.4f} AUC {c['auc']:.4f}"
        if "champion_metrics" in e:
            m = e["champion_metrics"]
            line += f", champion NE {m['ne']:.4f} AUC {m['auc']:.4f}"
        print(line)
    elif kind in ("promotion", "rejection"):
        print(f"{t}  {kind.upper()} {e['challenger']}")
    elif kind in ("bootstrap", "start", "stop", "rollback", "quarantine"):
        print(f"{t}  {kind} " + ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("time", "event")))
PY
