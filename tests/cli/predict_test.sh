# tandem predict scores with the checkpoint's model and frozen statistics: on the
# held-out file its probabilities give exactly the eval logloss that training
# reported (Standardize applies the same transform in training and in scoring),
# one line per input row; bad input is a one-line error.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }

"$TANDEM" generate --rows 6000 --seed 6 --cardinalities 400 --out "$WORK/train.tsv" >/dev/null
"$TANDEM" generate --rows 1500 --seed 7 --cardinalities 400 --out "$WORK/eval.tsv" >/dev/null
cat >"$WORK/c.ini" <<INI
[run]
dir = $WORK/run
threads = 1
[data]
train = $WORK/train.tsv
eval = $WORK/eval.tsv
[model]
embedding_rows = 400
embedding_dim = 8
bottom_mlp = 16
top_mlp = 16
missing_indicator = true
[optim]
name = adagrad
lr = 0.05
[train]
steps = 60
batch_size = 128
log_every = 0
INI
"$TANDEM" train --config "$WORK/c.ini" >"$WORK/train.log" 2>&1 || fail "train: $(tail -n 3 "$WORK/train.log")"
grep -q "statistics: fitted over 6000 rows" "$WORK/train.log" || fail "no statistics fitted"
[[ -s $WORK/run/stats.h5 ]] || fail "no stats.h5 in the run directory"
ckpt=$WORK/run/checkpoints/step-000000060.h5
"$TANDEM" predict "$ckpt" --data "$WORK/eval.tsv" --out "$WORK/scores.txt" || fail "predict failed"
[[ $(wc -l <"$WORK/scores.txt") == 1500 ]] || fail "$(wc -l <"$WORK/scores.txt") scores for 1500 rows"
python3 - "$WORK/eval.tsv" "$WORK/scores.txt" "$WORK/run/metrics.jsonl" <<'PY' || fail "predict logloss differs"
import json, math, sys
labels = [float(l.split("\t", 1)[0]) for l in open(sys.argv[1])]
p = [float(l) for l in open(sys.argv[2])]
assert all(0 < x < 1 for x in p)
eps = 1e-7
ll = -sum(y * math.log(max(x, eps)) + (1 - y) * math.log(max(1 - x, eps)) for y, x in zip(labels, p)) / len(p)
final = [json.loads(l) for l in open(sys.argv[3]) if '"final"' in l][-1]
assert abs(ll - final["logloss"]) <= 1e-5 * final["logloss"], (ll, final["logloss"])
PY
pass "predict: 1500 scores whose logloss equals the run's final eval logloss"

# Scoring a file written with stdout too, and errors.
"$TANDEM" predict "$ckpt" --data "$WORK/eval.tsv" >"$WORK/stdout.txt" || fail "predict to stdout"
cmp -s "$WORK/stdout.txt" "$WORK/scores.txt" || fail "stdout scores differ from --out"
expect_exit 2 "predict: --data FILE is required" "$TANDEM" predict "$ckpt"
expect_exit 3 "not a readable HDF5 file" "$TANDEM" predict "$WORK/nope.h5" --data "$WORK/eval.tsv"
{ head -n 3 "$WORK/eval.tsv"; printf '1\tx\n'; } >"$WORK/bad.tsv"
expect_exit 3 "bad.tsv:4: " "$TANDEM" predict "$ckpt" --data "$WORK/bad.tsv"
echo "all passed"
