# tandem fit-stats: the integer features' statistics equal a float64 reference
# computed in Python straight from the TSV (count, missing, min, max exactly; mean
# and variance to 1e-9); histograms add up to the counts; the categorical top
# counts and 'other' add up to the rows; 2 ranks give what 1 rank gives; bad
# options are one-line errors.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }
/usr/bin/python3 -c "import h5py, numpy" 2>/dev/null || { echo "skipped: python3-h5py missing"; exit 77; }

"$TANDEM" generate --rows 7000 --seed 4 --cardinalities 500 --out "$WORK/d.tsv" >/dev/null
"$TANDEM" generate --rows 500 --seed 5 --cardinalities 500 --out "$WORK/e.tsv" >/dev/null
# data.eval set: every row of d.tsv is a training row.
printf '[run]\ndir = %s\n[data]\ntrain = %s\neval = %s\n[model]\nembedding_rows = 500\n' \
  "$WORK/run" "$WORK/d.tsv" "$WORK/e.tsv" >"$WORK/c.ini"

"$TANDEM" fit-stats --config "$WORK/c.ini" --json --bins 16 --top 5 >"$WORK/one.json" ||
  fail "fit-stats failed"
[[ -s $WORK/run/stats.h5 ]] || fail "no $WORK/run/stats.h5"
/usr/bin/python3 - "$WORK/d.tsv" "$WORK/one.json" "$WORK/run/stats.h5" <<'PY' || fail "reference check"
import json, sys
import h5py, numpy as np
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
got = json.load(open(sys.argv[2]))
assert got["rows"] == len(rows), (got["rows"], len(rows))
for i, g in enumerate(got["dense"]):
    col = [r[1 + i] for r in rows]
    present = np.array([np.float32(np.log1p(max(int(v), 0))) for v in col if v != ""], dtype=np.float64)
    assert g["count"] == present.size and g["missing"] == len(col) - present.size, g
    assert g["min"] == present.min() and g["max"] == present.max(), g
    for key, ref in (("mean", present.mean()), ("variance", present.var())):
        assert abs(g[key] - ref) <= 1e-9 * abs(ref), (g["feature"], key, g[key], ref)
for c in got["categorical"]:
    counts = [n for _, n in c["top"]]
    assert counts == sorted(counts, reverse=True), c
    assert sum(counts) + c["other"] == len(rows), c
with h5py.File(sys.argv[3], "r") as f:
    hist = f["dense/hist_counts"][()].reshape(13, 16)
    assert (hist.sum(1) == f["dense/count"][()]).all()
PY
pass "fit-stats: integer features equal the float64 reference; histograms and top counts add up"

if [[ $WITH_MPI == 1 ]]; then
  $MPIRUN -np 2 "$TANDEM" fit-stats --config "$WORK/c.ini" --json --bins 16 --top 5 \
    --out "$WORK/two.h5" >"$WORK/two.json" || fail "2-rank fit-stats failed"
  /usr/bin/python3 - "$WORK/one.json" "$WORK/two.json" <<'PY' || fail "2 ranks differ from 1"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["rows"] == b["rows"] and a["categorical"] == b["categorical"]
for x, y in zip(a["dense"], b["dense"]):
    for k in ("count", "missing", "min", "max"):
        assert x[k] == y[k], (k, x, y)
    for k in ("mean", "variance"):
        assert abs(x[k] - y[k]) <= 1e-12 * abs(x[k]), (k, x[k], y[k])
PY
  pass "fit-stats: 2 ranks give the statistics of 1 rank"
fi

# --distinct: the distinct non-empty values of each categorical column, exactly as
# Python counts them in the file, on 1 and 2 ranks, and the suggested table sizes
# by the documented formula.
"$TANDEM" fit-stats --config "$WORK/c.ini" --json --distinct --collisions 0.05 --out "$WORK/d1.h5" \
  >"$WORK/distinct1.json" || fail "fit-stats --distinct failed"
files=("$WORK/distinct1.json")
if [[ $WITH_MPI == 1 ]]; then
  $MPIRUN -np 2 "$TANDEM" fit-stats --config "$WORK/c.ini" --json --distinct --collisions 0.05 \
    --out "$WORK/d2.h5" >"$WORK/distinct2.json" || fail "2-rank fit-stats --distinct failed"
  files+=("$WORK/distinct2.json")
fi
/usr/bin/python3 - "$WORK/d.tsv" "${files[@]}" <<'PY' || fail "distinct counts"
import json, math, sys
cols = [set() for _ in range(26)]
for line in open(sys.argv[1]):
    for c, v in zip(cols, line.rstrip("\n").split("\t")[14:]):
        if v:
            c.add(v)
want = [len(c) for c in cols]
def rows(n, share):
    return 2 if n <= 1 else 1 + math.ceil(1 / -math.expm1(math.log1p(-share) / (n - 1)))
for path in sys.argv[2:]:
    j = json.load(open(path))
    assert j["distinct"] == want, (path, j["distinct"], want)
    assert j["suggested_rows"] == [rows(n, 0.05) for n in want], (path, j["suggested_rows"])
print("ok: distinct", want[:5], "...; suggested", j["suggested_rows"][:3], "...")
PY
pass "fit-stats --distinct: exact counts on $((${#files[@]})) rank layout(s), suggested sizes"
expect_exit 2 "--collisions: '1' is not a share in \(0, 1\)" "$TANDEM" fit-stats --config "$WORK/c.ini" --distinct --collisions 1

expect_exit 2 "fit-stats: --config FILE is required" "$TANDEM" fit-stats
expect_exit 2 "--bins: '0' is not a positive integer" "$TANDEM" fit-stats --config "$WORK/c.ini" --bins 0
echo "all passed"
