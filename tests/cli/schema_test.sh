# Any delimited data through a [schema] (issue 20):
# - a Criteo file read through an explicit delimited schema trains bit for bit as
#   through the default Criteo path;
# - a header CSV (floats, strings, hex, a clipped column, an ignored one, the label
#   last) trains and learns, fit-stats names its columns, and predict scores it
#   with the schema saved in the checkpoint (no config);
# - a multi-hot column is learned end to end (the label depends on its tags only),
#   averaged on one rank and summed on two, and predict and fit-stats read it;
# - a file whose header lacks a column, a wrong field count, a bad schema key, a
#   field with more ids than its max=, and a second file with another header each
#   stop with one line naming it.
source "$(dirname "$0")/../lib.sh"
py=/usr/bin/python3

"$TANDEM" generate --rows 30000 --seed 21 --cardinalities 3000 --out "$WORK/train.tsv" >/dev/null
small_config "$WORK/train.tsv" "$WORK/criteo" >"$WORK/criteo.ini"
dense=$(seq -s, 2 14)
cats=$(seq 15 40 | sed 's/$/:hex/' | paste -sd,)
{ cat "$WORK/criteo.ini"; printf '[schema]\nformat = delimited\ndelimiter = tab\ncolumns = 40\nlabel = 1\ndense = %s\ncategorical = %s\n' "$dense" "$cats"; } >"$WORK/explicit.ini"
sed -i "s|^dir = .*|dir = $WORK/explicit|" "$WORK/explicit.ini"
for run in criteo explicit; do
  "$TANDEM" train --config "$WORK/$run.ini" --train.steps=120 --train.eval_every=60 --train.log_every=0 \
    --ckpt.at_end=false >"$WORK/$run.log" 2>&1 || fail "$run: $(tail -n 3 "$WORK/$run.log")"
done
$py - "$WORK/criteo/metrics.jsonl" "$WORK/explicit/metrics.jsonl" <<'PY' || fail "explicit Criteo schema differs"
import json, sys
keep = ("step", "logloss", "ne", "auc", "accuracy", "loss")
runs = [[{k: e[k] for k in keep if k in e} for e in map(json.loads, open(p)) if e.get("event") in ("eval", "final")] for p in sys.argv[1:]]
assert runs[0] == runs[1] and len(runs[0]) == 2, runs
print("ok: the same", len(runs[0]), "evaluations, bit for bit:", runs[0][-1])
PY

# The same rows as a header CSV: label last, I1-I13 halved as floats, C1 as a
# string, C2 kept hex, I13 clipped, C26 left out as an ignored "note" column.
$py - "$WORK/train.tsv" "$WORK/data.csv" <<'PY'
import sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    out.write(",".join([f"i{k}" for k in range(1, 14)] + ["city", "hexid"] + [f"c{k}" for k in range(3, 26)] + ["note", "label"]) + "\n")
    for line in f:
        v = line.rstrip("\n").split("\t")
        dense = ["" if x == "" else repr(int(x) / 2) for x in v[1:14]]
        cats = v[14:40]
        city = "" if cats[0] == "" else "town-" + cats[0]
        out.write(",".join(dense + [city, cats[1]] + cats[2:25] + ["n" + cats[25], v[0]]) + "\n")
PY
cat >"$WORK/csv.ini" <<INI
$(small_config "$WORK/data.csv" "$WORK/csv")
[schema]
format = delimited
header = true
label = label
dense = $(seq -s, 1 12 | sed 's/\([0-9]*\)/i\1/g'), i13:clip:0:5
categorical = city, hexid:hex, $(seq -s, 3 25 | sed 's/\([0-9]*\)/c\1/g')
ignore = note
INI
"$TANDEM" train --config "$WORK/csv.ini" >"$WORK/csv.log" 2>&1 || fail "csv: $(tail -n 5 "$WORK/csv.log")"
ne=$(final_metric "$WORK/csv" ne)
less_than "$ne" 0.9 || fail "the CSV run's NE $ne is not below 0.9"
pass "header CSV with floats, strings, hex, clip and an ignored column: NE $ne"

head -n 2001 "$WORK/data.csv" >"$WORK/score.csv"
if [[ ${WITH_HDF5:-1} == 1 ]]; then
  ckpt=$(ls "$WORK"/csv/checkpoints/step-*.h5 | tail -n 1)
  "$TANDEM" predict "$ckpt" --data "$WORK/score.csv" --out "$WORK/scores.txt" ||
    fail "predict on the CSV"
  [[ $(wc -l <"$WORK/scores.txt") == 2000 ]] || fail "predict wrote $(wc -l <"$WORK/scores.txt") scores, not 2000"
  pass "predict reads the CSV with the checkpoint's schema"
  sed '1s/city/town/' "$WORK/score.csv" >"$WORK/renamed.csv"
  expect_exit 3 "renamed.csv: schema.categorical: column 'city' is not in the header line" \
    "$TANDEM" predict "$ckpt" --data "$WORK/renamed.csv"
  "$TANDEM" fit-stats --config "$WORK/csv.ini" --out "$WORK/stats.h5" >"$WORK/fit.log" 2>&1 ||
    fail "fit-stats: $(tail -n 3 "$WORK/fit.log")"
  grep -Eq "^i13 +[0-9]+" "$WORK/fit.log" && grep -Eq "^hexid +top row" "$WORK/fit.log" ||
    fail "fit-stats does not name the columns: $(cat "$WORK/fit.log")"
  pass "fit-stats names the schema's columns"
fi

# configs/csv_example.ini on `tandem generate --format csv` parts (a directory of .csv).
"$TANDEM" generate --format csv --rows 6000 --seed 7 --cardinalities 500 --files 2 --out "$WORK/parts" >/dev/null
[[ $(head -n 1 "$WORK/parts/part-00001.csv") == id,i1,*,c26,tags,label ]] || fail "generate --format csv header"
"$TANDEM" train --config "$REPO/configs/csv_example.ini" --data.train="$WORK/parts" --run.dir="$WORK/example" \
  --train.steps=30 --train.eval_every=0 --model.embedding_rows=500 --ckpt.at_end=false >"$WORK/example.log" 2>&1 ||
  fail "csv_example.ini: $(tail -n 3 "$WORK/example.log")"
rows=$(sed -nE 's/.* ([0-9]+) training rows, ([0-9]+) eval rows.*/\1 + \2/p' "$WORK/example.log")
[[ $((rows)) == 6000 ]] || fail "csv_example.ini read $rows rows, not the 6000 (headers are not rows)"
pass "configs/csv_example.ini trains on generate --format csv parts"

# A multi-hot column is the only signal: the label is 1 with probability 0.9 when
# the row's tags include t3 or t7, else 0.1. 0-3 of 20 tags per row; x is noise.
$py - "$WORK/tags.csv" <<'PY'
import random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as out:
    out.write("x,tags,label\n")
    for _ in range(12000):
        tags = r.sample(range(20), r.randint(0, 3))
        p = 0.9 if 3 in tags or 7 in tags else 0.1
        out.write(f"{r.random():.3f},{'|'.join(f't{t}' for t in tags)},{int(r.random() < p)}\n")
PY
for pool in mean sum; do
  cat >"$WORK/tags-$pool.ini" <<INI
$(small_config "$WORK/tags.csv" "$WORK/tags-$pool")
[schema]
format = delimited
header = true
label = label
dense = x:none
categorical = tags:sep=|:max=3:$pool
INI
  run=("$TANDEM")
  [[ $pool == sum && $WITH_MPI == 1 ]] && run=($MPIRUN -np 2 "$TANDEM")
  "${run[@]}" train --config "$WORK/tags-$pool.ini" --model.embedding_rows=64 --train.epochs=2 \
    >"$WORK/tags-$pool.log" 2>&1 || fail "multi-hot $pool: $(tail -n 5 "$WORK/tags-$pool.log")"
  ne=$(final_metric "$WORK/tags-$pool" ne)
  # The tags alone bring the Bayes NE to about 0.6; without them it would be 1.
  less_than "$ne" 0.75 || fail "multi-hot $pool: NE $ne is not below 0.75"
  ranks=$([[ ${#run[@]} -gt 1 ]] && echo "2 ranks" || echo "1 rank")
  pass "a multi-hot column ($pool, $ranks) is learned: NE $ne"
done
if [[ ${WITH_HDF5:-1} == 1 ]]; then
  ckpt=$(ls "$WORK"/tags-mean/checkpoints/step-*.h5 | tail -n 1)
  head -n 101 "$WORK/tags.csv" >"$WORK/tags-score.csv"
  "$TANDEM" predict "$ckpt" --data "$WORK/tags-score.csv" --out "$WORK/tags-scores.txt" ||
    fail "predict on multi-hot rows"
  [[ $(wc -l <"$WORK/tags-scores.txt") == 100 ]] || fail "predict wrote $(wc -l <"$WORK/tags-scores.txt") scores"
  # A row with t3 scores above a row with no tags at all.
  $py - "$WORK/tags-score.csv" "$WORK/tags-scores.txt" <<'PY' || fail "predict ignores the tags"
import sys
rows = open(sys.argv[1]).read().split("\n")[1:101]
p = [float(x) for x in open(sys.argv[2])]
hot = [q for r, q in zip(rows, p) if "t3" in r.split(",")[1].split("|") or "t7" in r.split(",")[1].split("|")]
cold = [q for r, q in zip(rows, p) if not r.split(",")[1]]
assert hot and cold and min(hot) > max(cold), (hot, cold)
print("ok: rows with t3 or t7 score", min(hot), "or more, rows without tags", max(cold), "or less")
PY
  "$TANDEM" fit-stats --config "$WORK/tags-mean.ini" --distinct --out "$WORK/tags-stats.h5" >"$WORK/tags-fit.log" 2>&1 ||
    fail "fit-stats on multi-hot rows: $(tail -n 3 "$WORK/tags-fit.log")"
  grep -Eq "^tags +top row [0-9]+ \([0-9]+ ids\)" "$WORK/tags-fit.log" && grep -Eq "^tags +20 " "$WORK/tags-fit.log" ||
    fail "fit-stats on the multi-hot column: $(cat "$WORK/tags-fit.log")"
  pass "predict and fit-stats read the multi-hot column (20 distinct tags)"
fi
{ head -n 3 "$WORK/tags.csv"; echo "0.5,t1|t2|t3|t4,1"; } >"$WORK/many.csv"
expect_exit 3 "many.csv:4: field tags has more than its max=3 ids" \
  "$TANDEM" train --config "$WORK/tags-mean.ini" --data.train="$WORK/many.csv" --data.on_error=fail --run.dir="$WORK/e5"
expect_exit 2 "schema.categorical: 'tags:sep=\|:max=3:max': " \
  "$TANDEM" train --config "$WORK/tags-mean.ini" --schema.categorical='tags:sep=|:max=3:max' --run.dir="$WORK/e6"

# Errors, one line each: a second file with another header, a short line under
# data.on_error=fail, an unknown transform.
sed '1s/hexid/hex_id/' "$WORK/score.csv" >"$WORK/other.csv"
expect_exit 3 "other.csv:1: header: column 15 is 'hex_id' where the first file's header has 'hexid'" \
  "$TANDEM" train --config "$WORK/csv.ini" --data.train="$WORK/data.csv,$WORK/other.csv" --run.dir="$WORK/e1"
{ head -n 3 "$WORK/data.csv"; echo "1,2,3"; } >"$WORK/short.csv"
expect_exit 3 "short.csv:4: expected 40 fields separated by ',', found 3" \
  "$TANDEM" train --config "$WORK/csv.ini" --data.train="$WORK/short.csv" --data.on_error=fail --run.dir="$WORK/e2"
expect_exit 2 "schema.dense: 'i1:sqrt': 'sqrt' is not log1p, none or clip:LO:HI" \
  "$TANDEM" train --config "$WORK/csv.ini" --schema.dense=i1:sqrt --run.dir="$WORK/e3"
expect_exit 2 "model.embedding_rows: needs 1 or 25 values \(one per categorical column\), got 2" \
  "$TANDEM" train --config "$WORK/csv.ini" --model.embedding_rows=10,20 --run.dir="$WORK/e4"
echo "all passed"
