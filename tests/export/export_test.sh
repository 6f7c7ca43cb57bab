# tandem export writes a PyTorch state_dict that plain torch.load reads, and
# python/tandem_dlrm.py scores with it exactly what `tandem predict` scores (to
# 1e-6 per probability) for a model with LayerNorm, one with
# SyncBatchNorm (eval), dropout and missing indicators, one without
# standardization, and a parameter-server run's sharded checkpoint. The data has
# missing and negative values. Bad input is a one-line error. Debian's
# python3-torch (LibTorch 1.13, as Tandem's) is installed here if missing.
# The difference is Tandem's float32 rounding (Python scores in float64). Measured
# on the AMD EPYC VM (2026-12-04), under OpenBLAS's Haswell, Prescott, SkylakeX and
# its own COOPERLAKE kernels (the GEMMs other CPUs run; Tandem's own kernels give
# the same bits on every CPU): 2.8e-7 to 6.3e-7, at most 0.63 of the bound.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }
py=/usr/bin/python3
if ! $py -c "import torch" 2>/dev/null; then
  sudo_=""; [[ $(id -u) == 0 ]] || sudo_="sudo -n"
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends \
    python3-torch >"$WORK/apt.log" 2>&1 ||
    { echo "skipped: cannot install python3-torch: $(tail -n 1 "$WORK/apt.log")"; exit 77; }
fi

"$TANDEM" generate --rows 6000 --seed 6 --cardinalities 400 --out "$WORK/train.tsv" >/dev/null
# Scored data: missing fields (the generator leaves some empty) and negative integers.
"$TANDEM" generate --rows 2000 --seed 7 --cardinalities 400 --out "$WORK/raw.tsv" >/dev/null
awk -F'\t' -v OFS='\t' 'NR % 7 == 3 { $3 = "-" NR } 1' "$WORK/raw.tsv" >"$WORK/score.tsv"
grep -q $'\t\t' "$WORK/score.tsv" || fail "the scored data has no missing field"
small_config "$WORK/train.tsv" "$WORK/run" >"$WORK/c.ini"

# export_and_compare NAME CKPT [DATA]: exports CKPT and checks Python's scores of
# DATA (2000 rows; default score.tsv) against predict's.
export_and_compare() {
  local name=$1 ckpt=$2 data=${3:-$WORK/score.tsv}
  "$TANDEM" export "$ckpt" --out "$WORK/$name.pt" >"$WORK/$name.export.log" 2>&1 ||
    fail "$name: export: $(cat "$WORK/$name.export.log")"
  "$TANDEM" predict "$ckpt" --data "$data" --out "$WORK/$name.tandem" ||
    fail "$name: predict"
  $py "$REPO/python/tandem_dlrm.py" "$WORK/$name.pt" "$data" >"$WORK/$name.py" ||
    fail "$name: tandem_dlrm.py"
  $py - "$WORK/$name.pt" "$WORK/$name.tandem" "$WORK/$name.py" "$name" <<'PY' || fail "$name: scores differ"
import sys, torch
state = torch.load(sys.argv[1])
assert type(state) is dict and all(torch.is_tensor(v) for v in state.values()), "not a state_dict"
assert "tables.rowwise_state" not in state, "training state exported"
a = [float(l) for l in open(sys.argv[2])]
b = [float(l) for l in open(sys.argv[3])]
assert len(a) == len(b) == 2000, (len(a), len(b))
diff = max(abs(x - y) for x, y in zip(a, b))
assert diff <= 1e-6, f"max |p_tandem - p_pytorch| = {diff}"
print(f"ok: {sys.argv[4]}: {len(state)} tensors, max |difference| {diff:.2g} over {len(a)} rows")
PY
}

train_model() {  # NAME [options]: a short run; its final checkpoint
  local name=$1
  shift
  "$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/$name" --train.steps=60 \
    --train.log_every=0 "$@" >"$WORK/$name.log" 2>&1 || fail "$name: $(tail -n 3 "$WORK/$name.log")"
}
train_model layer_norm --model.layer_norm=true
export_and_compare layer_norm "$WORK/layer_norm/checkpoints/step-000000060.h5"
train_model batch_norm --model.sync_batch_norm=true --model.dropout=0.1 \
  --model.missing_indicator=true
export_and_compare batch_norm "$WORK/batch_norm/checkpoints/step-000000060.h5"
train_model plain --model.standardize=false
export_and_compare plain "$WORK/plain/checkpoints/step-000000060.h5"
if [[ $WITH_MPI == 1 ]]; then
  $MPIRUN -np 2 "$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/sharded" \
    --train.steps=60 --train.log_every=0 --ps.servers=2 --ps.placement=colocated \
    >"$WORK/sharded.log" 2>&1 || fail "sharded: $(tail -n 3 "$WORK/sharded.log")"
  export_and_compare sharded "$WORK/sharded/checkpoints/step-000000060.h5"
fi
# A header CSV through a [schema]: decimals under log1p, none and clip, hashed
# strings, a hex column, and the multi-hot "tags" column averaged (empty bags too).
"$TANDEM" generate --format csv --rows 6000 --seed 6 --cardinalities 400 --out "$WORK/train.csv" >/dev/null
"$TANDEM" generate --format csv --rows 2000 --seed 7 --cardinalities 400 --out "$WORK/score.csv" >/dev/null
grep -q ',,[01]$' "$WORK/score.csv" || fail "the scored CSV has no empty tags field"
cat >"$WORK/csv.ini" <<INI
$(small_config "$WORK/train.csv" "$WORK/csv")
[schema]
format = delimited
header = true
label = label
dense = i1, i2:none, i3:clip:0:20, $(seq -s, 4 13 | sed 's/\([0-9]*\)/i\1/g')
categorical = $(seq -s, 1 26 | sed 's/\([0-9]*\)/c\1/g'), tags:sep=|:max=4:mean
ignore = id
INI
"$TANDEM" train --config "$WORK/csv.ini" --train.steps=60 --train.log_every=0 >"$WORK/csv.log" 2>&1 ||
  fail "csv: $(tail -n 3 "$WORK/csv.log")"
export_and_compare csv "$WORK/csv/checkpoints/step-000000060.h5" "$WORK/score.csv"
pass "exported models score as tandem predict does"

ckpt=$WORK/plain/checkpoints/step-000000060.h5
expect_exit 2 "export: --out FILE is required" "$TANDEM" export "$ckpt"
expect_exit 2 "export: --format safetensors is not supported .*no maintained C\+\+ safetensors writer" \
  "$TANDEM" export "$ckpt" --out "$WORK/x.st" --format safetensors
expect_exit 3 "nope.h5" "$TANDEM" export "$WORK/nope.h5" --out "$WORK/x.pt"
[[ ! -e $WORK/x.pt && ! -e $WORK/x.st ]] || fail "a failed export left a file"
echo "1 passed, 0 failed"
