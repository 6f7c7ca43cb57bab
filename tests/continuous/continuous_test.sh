# tandem continuous and tandem drift, as users run them, on generated streams
# with known change points:
# - no false alarms: ten windows from the training distribution (ten seeds) fire
#   no drift at the defaults;
# - covariate shift is detected and the report names the shifted features;
# - concept drift: no covariate drift, but decay fires, and the challenger beats
#   the champion on the new rows and is promoted;
# - a bad challenger (a huge learning rate) is rejected, the champion unchanged;
# - kill -9 during a retrain, after writing the challenger, and after committing
#   the promotion: after a restart the ledger, the champion and the audit log
#   agree (each file trained once, one decision, none lost);
# - without an initial model, the first window trains the champion;
# - a window of the newest file supersedes the older pending ones, which replay uses;
# - 2 ranks take the same decisions as 1, with the same drift figures;
# - the schedule trigger, manual retrains (RETRAIN file, SIGHUP), an empty window
#   never triggers, a bad file is quarantined, SIGTERM exits 5, --rollback, and
#   config errors exit 2.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }

gen() {  # gen OUT SEED [options]: 4000 rows like the training data, or drifted
  local out=$1 seed=$2
  shift 2
  "$TANDEM" generate --rows 4000 --seed "$seed" --cardinalities 500 --out "$out" "$@" >/dev/null
}
"$TANDEM" generate --rows 20000 --seed 3 --cardinalities 500 --out "$WORK/base.tsv" >/dev/null
small_config "$WORK/base.tsv" "$WORK/initial" >"$WORK/train.ini"
"$TANDEM" train --config "$WORK/train.ini" --model.embedding_rows=500 --train.log_every=0 \
  >"$WORK/initial.log" 2>&1 || fail "initial model: $(tail -n 5 "$WORK/initial.log")"
initial=$WORK/initial/checkpoints/step-000000141.h5

# --- tandem drift
for seed in $(seq 11 20); do
  gen "$WORK/same-$seed.tsv" "$seed"
  "$TANDEM" drift --reference "$initial" --data "$WORK/same-$seed.tsv" --json >"$WORK/d.json" ||
    fail "drift: $(cat "$WORK/d.json")"
  /usr/bin/python3 - "$WORK/d.json" "$seed" <<'PY' || fail "a false alarm on seed $seed"
import json, sys
r = json.load(open(sys.argv[1]))
bad = [f["feature"] for f in r["features"] if f["drifted"]]
worst_psi = max(f.get("psi", 0) for f in r["features"])
assert not r["window_drifted"] and not bad, (bad, r["drifted_share"])
print(f"seed {sys.argv[2]}: no feature drifted (largest PSI {worst_psi:.3f})")
PY
done
pass "ten windows from the training distribution: no drift"

gen "$WORK/shifted.tsv" 21 --drift-at 0 --shift-dense 1,2,3,4,5,6,7,8 \
  --permute-categorical 1,2,3,4,5,6,7,8,9,10,11,12
"$TANDEM" drift --reference "$initial" --data "$WORK/shifted.tsv" >"$WORK/shift.txt"
grep -q "20 of 39 features drifted (51%): the data drifted" "$WORK/shift.txt" ||
  fail "covariate shift: $(tail -n 1 "$WORK/shift.txt")"
for f in I1 I8 C1 C12; do grep -Eq "^$f .*(psi|js) " "$WORK/shift.txt" || fail "$f not named"; done
grep -Eq "^I9 .* +$" "$WORK/shift.txt" || fail "I9 drifted: $(grep '^I9 ' "$WORK/shift.txt")"
pass "covariate shift: the 20 shifted features drift, the others do not"

# --- tandem continuous
cfg() {  # cfg NAME: a controller config for state NAME, incoming NAME-in (NO_INITIAL=1:
        # without continuous.initial)
  mkdir -p "$WORK/$1-in"
  cat "$WORK/train.ini"
  cat <<INI
[continuous]
incoming = $WORK/$1-in
dir = $WORK/$1
${NO_INITIAL:+#}initial = $initial
poll_s = 0.1
settle_s = 0
max_polls = 1
min_new_rows = 0
INI
}
controller() {  # controller NAME [options]: one run, its output in NAME.log
  local name=$1
  shift
  cfg "$name" >"$WORK/$name.ini"
  timeout 300 "$TANDEM" continuous --config "$WORK/$name.ini" --model.embedding_rows=500 \
    --train.log_every=0 "$@" >>"$WORK/$name.log" 2>&1
}
events() {  # events NAME: the audit log's event kinds, space-separated
  /usr/bin/python3 -c 'import json,sys; print(" ".join(json.loads(l)["event"] for l in open(sys.argv[1])))' \
    "$WORK/$1/audit.jsonl"
}
field() {  # field NAME EXPR: a Python expression over s (state.json)
  /usr/bin/python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$WORK/$1/state.json"
}

# Concept drift: the same features, another teacher.
mkdir -p "$WORK/concept-in"
gen "$WORK/concept-in/part-001.tsv" 31 --drift-at 0 --teacher-seed 9
controller concept || fail "concept drift run: $(tail -n 5 "$WORK/concept.log")"
[[ $(events concept) == "bootstrap start poll retrain evaluation promotion stop" ]] ||
  fail "concept drift events: $(events concept)"
grep '"event":"poll"' "$WORK/concept/audit.jsonl" | /usr/bin/python3 -c '
import json, sys
t = json.loads(sys.stdin.readline())["triggers"]
assert not t["drift"]["fired"] and t["decay"]["fired"], t
d = t["decay"]
print("decay: NE %.4f, rise %+.3f; drift: %d features" % (d["ne"], d["rise"], t["drift"]["drifted_features"]))' ||
  fail "concept drift triggers"
[[ $(field concept 's["champion"]') == models/model-000001.h5 ]] || fail "not promoted"
[[ $(field concept 's["files"]["part-001.tsv"]["status"]') == trained ]] || fail "ledger"
pass "concept drift: decay fires (not drift), the challenger is promoted"

# No initial model: the first window that fires trains the first champion.
mkdir -p "$WORK/fresh-in"
gen "$WORK/fresh-in/part-001.tsv" 34
NO_INITIAL=1 controller fresh --continuous.min_new_rows=1000 ||
  fail "no initial model: $(tail -n 5 "$WORK/fresh.log")"
[[ $(events fresh) == "start poll retrain evaluation promotion stop" ]] ||
  fail "no initial model: $(events fresh)"
grep -q '"reason":"no champion yet"' "$WORK/fresh/audit.jsonl" || fail "no initial model: reason"
"$TANDEM" drift --reference "$WORK/fresh/$(field fresh 's["champion"]')" \
  --data "$WORK/same-11.tsv" >/dev/null || fail "the first champion has no statistics"
pass "no initial model: the first window trains the champion, with its statistics"

# The window: the newest file only; the two older ones are superseded (never trained
# on, not pending again) and, with replay, mixed in.
mkdir -p "$WORK/window-in"
for i in 1 2 3; do gen "$WORK/window-in/part-00$i.tsv" "4$i"; done
controller window --continuous.min_new_rows=1000 --continuous.window_files=1 \
  --continuous.replay=2 ||
  fail "window run: $(tail -n 5 "$WORK/window.log")"
grep '"event":"retrain"' "$WORK/window/audit.jsonl" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.readline())
assert r["files"] == ["part-003.tsv"], r["files"]
assert r["superseded_files"] == ["part-001.tsv", "part-002.tsv"], r["superseded_files"]
assert r["replay_files"] == ["part-001.tsv", "part-002.tsv"], r["replay_files"]
assert r["rows"] > 8000, r["rows"]' || fail "window: $(grep '"event":"retrain"' "$WORK/window/audit.jsonl")"
[[ $(field window '" ".join(f["status"] for f in s["files"].values())') == "superseded superseded trained" ]] ||
  fail "window ledger: $(field window 's["files"]')"
pass "window_files=1: the newest file trains, the older two are superseded and replayed"

# A bad challenger: a huge learning rate.
mkdir -p "$WORK/bad-in"
gen "$WORK/bad-in/part-001.tsv" 32 --drift-at 0 --teacher-seed 9
controller bad --optim.lr=1000 || fail "bad challenger run: $(tail -n 5 "$WORK/bad.log")"
[[ $(events bad) == "bootstrap start poll retrain evaluation rejection stop" ]] ||
  fail "bad challenger events: $(events bad)"
[[ $(field bad 's["champion"]') == models/initial.h5 ]] || fail "the champion changed"
pass "a bad challenger is rejected: $(grep '"event":"rejection"' "$WORK/bad/audit.jsonl" | grep -o '"reason":"[^"]*' | cut -c11-)"

# Crashes: at each point, a restart ends with one decision and each file trained once.
for point in trained written committed; do
  mkdir -p "$WORK/crash-$point-in"
  gen "$WORK/crash-$point-in/part-001.tsv" 33 --drift-at 0 --teacher-seed 9
  rc=0
  TANDEM_CONTINUOUS_KILL=$point controller "crash-$point" || rc=$?
  [[ $rc == 137 ]] || fail "crash at $point: exit $rc"
  controller "crash-$point" || fail "restart after $point: $(tail -n 5 "$WORK/crash-$point.log")"
  [[ $(field "crash-$point" 's["decisions"]') == 1 ]] || fail "$point: decisions"
  [[ $(field "crash-$point" 's["files"]["part-001.tsv"]["status"]') == trained ]] || fail "$point: ledger"
  "$TANDEM" inspect "$WORK/crash-$point/$(field "crash-$point" 's["champion"]')" >/dev/null ||
    fail "$point: the champion does not load"
  decisions=$(grep -cE '"event":"(promotion|rejection)"' "$WORK/crash-$point/audit.jsonl")
  [[ $decisions == 1 ]] || fail "$point: $decisions decisions in the audit log"
  pass "kill -9 after '$point', restart: one decision, the file trained once ($(events "crash-$point"))"
done
grep -q '"recovered":true' "$WORK/crash-committed/audit.jsonl" || fail "no recovered decision"

# Ranks: 2 ranks decide as 1, with the same drift figures.
if [[ $WITH_MPI == 1 ]]; then
  for np in 1 2; do
    mkdir -p "$WORK/np$np-in"
    cp "$WORK/shifted.tsv" "$WORK/np$np-in/part-001.tsv"
    cfg "np$np" >"$WORK/np$np.ini"
    timeout 300 $MPIRUN -np "$np" "$TANDEM" continuous --config "$WORK/np$np.ini" \
      --model.embedding_rows=500 --train.log_every=0 >"$WORK/np$np.log" 2>&1 ||
      fail "np $np: $(tail -n 5 "$WORK/np$np.log")"
  done
  [[ $(events np1) == "$(events np2)" ]] || fail "decisions differ: $(events np1) / $(events np2)"
  /usr/bin/python3 - "$WORK/np1/audit.jsonl" "$WORK/np2/audit.jsonl" <<'PY' || fail "drift figures differ"
import json, sys
polls = [[json.loads(l) for l in open(p) if '"event":"poll"' in l][0] for p in sys.argv[1:]]
a, b = (p["drift"]["features"] for p in polls)
assert [f["feature"] for f in a] == [f["feature"] for f in b]
for x, y in zip(a, b):
    for k in ("psi", "ks", "js", "linf"):
        if k in x:
            assert abs(x[k] - y[k]) < 1e-9, (x, y)
print(f"{len(a)} drifted features, figures equal")
PY
  pass "2 ranks: the same events ($(events np2)) and drift figures as 1"
fi

# Manual triggers, and an empty window that never triggers.
mkdir -p "$WORK/manual-in"
gen "$WORK/manual-in/part-001.tsv" 11
touch "$WORK/manual-in/empty.tsv"
controller manual --continuous.max_ne_rise=0 --continuous.drift=false ||
  fail "manual: $(tail -n 5 "$WORK/manual.log")"
[[ $(events manual) == "bootstrap start poll stop" ]] || fail "fired without a trigger: $(events manual)"
touch "$WORK/manual/RETRAIN"
controller manual --continuous.max_ne_rise=0 --continuous.drift=false ||
  fail "manual retrain: $(tail -n 5 "$WORK/manual.log")"
[[ $(events manual) == *"poll retrain evaluation "*" stop" ]] || fail "RETRAIN: $(events manual)"
[[ ! -e $WORK/manual/RETRAIN ]] || fail "RETRAIN not consumed"
touch "$WORK/manual/RETRAIN"
controller manual --continuous.max_ne_rise=0 --continuous.drift=false ||
  fail "empty window: $(tail -n 5 "$WORK/manual.log")"
[[ $(events manual | grep -o retrain | wc -l) == 1 ]] || fail "an empty window triggered"
pass "RETRAIN retrains once; an empty window never triggers"

# The schedule: due at once when nothing was ever retrained, then not before
# every_s has passed, however much new data comes.
mkdir -p "$WORK/schedule-in"
gen "$WORK/schedule-in/part-001.tsv" 14
sched=(--continuous.every_s=3600 --continuous.max_ne_rise=0 --continuous.drift=false)
controller schedule "${sched[@]}" || fail "schedule: $(tail -n 5 "$WORK/schedule.log")"
gen "$WORK/schedule-in/part-002.tsv" 15
controller schedule "${sched[@]}" || fail "schedule: $(tail -n 5 "$WORK/schedule.log")"
[[ $(grep -c '"event":"retrain"' "$WORK/schedule/audit.jsonl") == 1 ]] ||
  fail "schedule: $(events schedule)"
grep '"event":"retrain"' "$WORK/schedule/audit.jsonl" | grep -q '"reasons":\["schedule"\]' ||
  fail "schedule: not the reason"
pass "schedule: fires when due, not again within every_s"

# SIGHUP asks for a retrain, SIGTERM stops with exit 5.
mkdir -p "$WORK/signals-in"
gen "$WORK/signals-in/part-001.tsv" 12
cfg signals >"$WORK/signals.ini"
"$TANDEM" continuous --config "$WORK/signals.ini" --model.embedding_rows=500 --train.log_every=0 \
  --continuous.max_polls=0 --continuous.poll_s=0.2 --continuous.max_ne_rise=0 \
  --continuous.drift=false >"$WORK/signals.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '"event":"poll"' "$WORK/signals/audit.jsonl" 2>/dev/null && break; sleep 0.1; done
kill -HUP $pid
for _ in $(seq 300); do grep -q '"event":"promotion\|"event":"rejection' "$WORK/signals/audit.jsonl" && break; sleep 0.1; done
kill -TERM $pid
rc=0
wait $pid || rc=$?
[[ $rc == 5 ]] || fail "SIGTERM: exit $rc: $(tail -n 5 "$WORK/signals.log")"
[[ $(events signals) == *"retrain evaluation "*" stop" ]] || fail "SIGHUP: $(events signals)"
pass "SIGHUP retrains, SIGTERM exits 5"

# A file that cannot be read (here: all its lines malformed, more than
# data.max_bad_fraction allows under the default data.on_error=skip) is moved to
# quarantine and logged, and the controller goes on.
mkdir -p "$WORK/quarantine-in"
printf '1\tnot-a-number\n' >"$WORK/quarantine-in/broken.tsv"
gen "$WORK/quarantine-in/part-002.tsv" 13
controller quarantine --continuous.max_ne_rise=0 ||
  fail "quarantine: $(tail -n 5 "$WORK/quarantine.log")"
[[ -f $WORK/quarantine/quarantine/broken.tsv && ! -e $WORK/quarantine-in/broken.tsv ]] ||
  fail "broken.tsv not quarantined"
grep -q '"event":"quarantine","file":"broken.tsv","reason":".*broken.tsv: 1 of 1 lines (100%) are malformed.*broken.tsv:1' \
  "$WORK/quarantine/audit.jsonl" || fail "no quarantine event"
[[ $(field quarantine 's["files"]["part-002.tsv"]["status"]') == pending ]] || fail "good file lost"
pass "a malformed file is quarantined and logged; the good one is pending"

# --rollback returns to the previous champion (the concept-drift run promoted one).
"$TANDEM" continuous --config "$WORK/concept.ini" --rollback >"$WORK/rollback.log" 2>&1 ||
  fail "rollback: $(cat "$WORK/rollback.log")"
[[ $(field concept 's["champion"]') == models/initial.h5 ]] || fail "rollback: champion"
[[ $(events concept) == *" rollback" ]] || fail "rollback not logged"
expect_exit 2 "--rollback: .* has no earlier champion" \
  "$TANDEM" continuous --config "$WORK/concept.ini" --rollback
pass "--rollback restores the previous champion, logged"

expect_exit 2 "continuous.incoming: is not set" \
  "$TANDEM" continuous --config "$WORK/train.ini" --continuous.dir="$WORK/x"
expect_exit 2 "continuous.holdout: must be in \(0, 1\)" \
  "$TANDEM" continuous --config "$WORK/concept.ini" --continuous.holdout=1.5
expect_exit 2 "continuous.thresholds: 'I14' is not a dense or categorical column of the data" \
  "$TANDEM" continuous --config "$WORK/concept.ini" --continuous.thresholds=I14:psi=1
expect_exit 3 "no feature statistics|not a readable HDF5" \
  "$TANDEM" drift --reference "$WORK/base.tsv" --data "$WORK/base.tsv"
echo "1 passed, 0 failed"
