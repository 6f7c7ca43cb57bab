# Checkpoints as processes see them:
# - a run killed (kill -9, the whole job) after step s and resumed with
#   --resume auto ends bit-identical to an uninterrupted run (1 rank at several
#   kill points, one across the epoch boundary; 2 ranks under mpirun);
# - a kill at each step of the write sequence leaves the previous checkpoint
#   loadable, and the resume is still exact;
# - SIGTERM saves at the next step boundary and exits 5; the resume is exact;
# - a checkpoint of 4 ranks resumes on 2 (resharding: same global batch);
# - h5py reads a parameter equal to the one Tandem reports.
source "$(dirname "$0")/../lib.sh"
[[ ${WITH_HDF5:-1} == 1 ]] || { echo "skipped: built without HDF5"; exit 77; }

"$TANDEM" generate --rows 6000 --seed 3 --cardinalities 300 --out "$WORK/d.tsv" >/dev/null
cat >"$WORK/c.ini" <<INI
[run]
seed = 5
threads = 1
[data]
train = $WORK/d.tsv
block_rows = 200
[model]
embedding_rows = 300
embedding_dim = 4
bottom_mlp = 16
top_mlp = 16
dropout = 0.1
[optim]
name = adagrad
lr = 0.05
decay = cosine
[train]
steps = 110
batch_size = 64
log_every = 0
eval_every = 40
[ckpt]
every_steps = 7
INI
# 5400 training rows / 64 = 85 steps per epoch: step 110 is in epoch 1.

digest() { "$TANDEM" inspect --hash "$1/checkpoints/step-000000110.h5"; }
run() {  # run DIR [extra args]: one rank
  local dir=$1
  shift
  "$TANDEM" train --config "$WORK/c.ini" --run.dir="$dir" "$@" >"$dir.log" 2>&1
}

mkdir -p "$WORK/ref"
run "$WORK/ref" || fail "reference run: $(tail -n 5 "$WORK/ref.log")"
ref=$(digest "$WORK/ref")

for kill_at in 23 85 101; do
  dir=$WORK/kill$kill_at
  rc=0
  TANDEM_KILL_AFTER_STEP=$kill_at run "$dir" || rc=$?
  [[ $rc == 137 ]] || fail "kill after step $kill_at: exit $rc"
  run "$dir" --resume auto || fail "resume after step $kill_at: $(tail -n 5 "$dir.log")"
  grep -q "resume: .*step-" "$dir.log" || fail "no resume message after kill at $kill_at"
  [[ $(digest "$dir") == "$ref" ]] || fail "killed after step $kill_at: final state differs"
  pass "kill -9 after step $kill_at, --resume auto: bit-identical final state"
done

# A kill at each step of the write sequence, on the second save (step 14): the
# first (step 7) stays loadable and the resumed run is exact.
for step in write fsync verify rename dirsync latest; do
  dir=$WORK/fault-$step
  rc=0
  TANDEM_CKPT_FAULT=$step@2 run "$dir" --ckpt.async=false || rc=$?
  [[ $rc == 137 ]] || fail "fault at $step: exit $rc"
  run "$dir" --resume auto || fail "resume after fault at $step: $(tail -n 5 "$dir.log")"
  [[ $(digest "$dir") == "$ref" ]] || fail "fault at $step: final state differs"
  pass "killed during a save at '$step': previous checkpoint loadable, resume exact"
done

# SIGTERM: save at the next step boundary, exit 5, resume exactly. The signal
# arrives after step 5 (TANDEM_TERM_AFTER_STEP raises it there, through the real
# handler), so the test never races the run's speed.
only_signal=(--ckpt.every_steps=0)  # the signal's save is the only one before the end
mkdir -p "$WORK/term-ref"
run "$WORK/term-ref" "${only_signal[@]}" || fail "SIGTERM reference run"
dir=$WORK/term
mkdir -p "$dir"
rc=0
TANDEM_TERM_AFTER_STEP=5 run "$dir" "${only_signal[@]}" || rc=$?
[[ $rc == 5 ]] || fail "SIGTERM: exit $rc, expected 5: $(tail -n 3 "$dir.log")"
grep -q "stop requested by a signal: saved .* at step 6$" "$dir.log" ||
  fail "SIGTERM: no save at step 6 reported: $(tail -n 3 "$dir.log")"
run "$dir" "${only_signal[@]}" --resume auto || fail "resume after SIGTERM"
[[ $(digest "$dir") == $(digest "$WORK/term-ref") ]] || fail "SIGTERM resume: final state differs"
pass "SIGTERM after step 5: checkpoint at step 6, exit 5, exact resume"

# h5py reads what Tandem wrote, and checks the dataset's checksum with the xxhash
# package (python3-h5py and python3-xxhash are Debian's; /usr/bin/python3 sees them).
if /usr/bin/python3 -c "import h5py, xxhash" 2>/dev/null; then
  ckpt=$WORK/ref/checkpoints/step-000000110.h5
  "$TANDEM" inspect "$ckpt" --tensor=bottom.0.bias >"$WORK/bias.json"
  /usr/bin/python3 - "$ckpt" "$WORK/bias.json" <<'PY' || fail "h5py check"
import h5py, json, sys, xxhash
import numpy as np
text = lambda v: v.decode() if isinstance(v, bytes) else v
with h5py.File(sys.argv[1], "r") as f:
    assert text(f.attrs["format"]) == "tandem-checkpoint"
    assert int(f.attrs["step"]) == 110
    ds = f["model/parameters/bottom.0.bias"]
    raw = ds[()]
    assert xxhash.xxh3_64_hexdigest(raw.tobytes()) == text(ds.attrs["xxh3_64"]), "checksum"
    value = raw.reshape(tuple(int(x) for x in text(ds.attrs["shape"]).split(",")))
expected = np.array(json.load(open(sys.argv[2])), dtype=np.float64)
assert value.shape == expected.shape, (value.shape, expected.shape)
assert np.array_equal(value.astype(np.float64), expected), "values differ"
PY
  # Checkpoints written before the XXH3 checksum kept HDF5's Fletcher32 filter
  # instead: such a dataset still loads; one with neither checksum is refused.
  /usr/bin/python3 - "$ckpt" "$WORK/old.h5" "$WORK/none.h5" <<'PY' || fail "h5py rewrite"
import h5py, shutil, sys
for out, fletcher in ((sys.argv[2], True), (sys.argv[3], False)):
    shutil.copy(sys.argv[1], out)
    with h5py.File(out, "r+") as f:
        name = "model/parameters/bottom.0.bias"
        data, attrs = f[name][()], dict(f[name].attrs)
        del f[name]
        ds = f.create_dataset(name, data=data, chunks=data.shape, fletcher32=fletcher)
        for k, v in attrs.items():
            if k != "xxh3_64":
                ds.attrs[k] = v
PY
  "$TANDEM" inspect "$WORK/old.h5" --tensor=bottom.0.bias >"$WORK/old.json" &&
    cmp -s "$WORK/old.json" "$WORK/bias.json" || fail "a Fletcher32-era dataset did not load"
  expect_exit 3 "none\.h5: dataset .*bottom\.0\.bias has no checksum" "$TANDEM" inspect "$WORK/none.h5"
  pass "h5py reads bottom.0.bias equal to tandem inspect and checks its XXH3; Fletcher32-era datasets load, unchecked ones are refused"
else
  echo "note: python3-h5py or python3-xxhash missing; h5py check skipped"
fi

if [[ $WITH_MPI == 1 ]]; then
  # 2 ranks: reference, then a kill of the whole job after step 30 and a resume.
  mpi() {  # mpi NP DIR [extra]
    local np=$1 dir=$2
    shift 2
    $MPIRUN -np "$np" "$TANDEM" train --config "$WORK/c.ini" --run.dir="$dir" "$@" >"$dir.log" 2>&1
  }
  mkdir -p "$WORK/ref2"
  mpi 2 "$WORK/ref2" || fail "2-rank reference: $(tail -n 5 "$WORK/ref2.log")"
  rc=0
  TANDEM_KILL_AFTER_STEP=30 mpi 2 "$WORK/kill2" || rc=$?
  [[ $rc != 0 ]] || fail "2-rank kill: the job did not die"
  mpi 2 "$WORK/kill2" --resume auto || fail "2-rank resume: $(tail -n 5 "$WORK/kill2.log")"
  [[ $("$TANDEM" inspect --hash "$WORK/kill2/checkpoints/step-000000110.h5") == \
     $("$TANDEM" inspect --hash "$WORK/ref2/checkpoints/step-000000110.h5") ]] ||
    fail "2 ranks: resumed final state differs"
  pass "2 ranks: kill -9 of the job after step 30, --resume auto: bit-identical"

  # Resharding: 4 ranks stop after step 30, 2 ranks resume (same global batch).
  TANDEM_KILL_AFTER_STEP=30 mpi 4 "$WORK/reshard" || true
  mpi 2 "$WORK/reshard" --resume auto || fail "4 -> 2 resume: $(tail -n 5 "$WORK/reshard.log")"
  grep -q "resume: .*step-000000028.h5 at step 28" "$WORK/reshard.log" || fail "4 -> 2: wrong resume point"
  "$TANDEM" inspect --json "$WORK/reshard/checkpoints/step-000000110.h5" | grep -q '"world_size": 2' ||
    fail "4 -> 2: final checkpoint not from 2 ranks"
  pass "4 ranks -> 2 ranks: resumed at step 28 and finished"
else
  echo "note: built without MPI; multi-rank resume checks skipped"
fi
echo "all passed"
