# Nothing silently wrong, as users meet it:
# - config mistakes that used to train or fail late are exit 2 with the key named:
#   --config of a directory, ckpt.dir / run.dir naming a file, run.threads < 0, a
#   learning rate that is not finite or not positive;
# - divergence (train.on_nonfinite): a non-finite loss or gradient on any rank is
#   exit 3 on every rank at that step, naming the step and the loss's rank or the
#   gradient's parameter, once; no checkpoint of it is written or linked; with
#   skip_step the step changes nothing and training goes on, and 10 skipped steps
#   in a row stop it; with parameter servers the job ends too;
# - every checkpoint attribute a resume trusts (step, world size, lr, ...) has a
#   checksummed copy: one changed value is exit 3 naming the attribute, in inspect
#   and in a resume;
# - a checkpoint directory is one run's (its id in run_id, kept across resumes): a
#   fresh start over another run's checkpoints is exit 2, unless run.overwrite=true;
# - unloadable checkpoints are set aside into corrupt/, never counted by pruning,
#   and `latest` always exists;
# - a resume checks each data file's size and digest against the checkpoint: a
#   changed, truncated or appended file is exit 3 naming it, unless
#   --resume-allow-changed-data;
# - SIGTERM during start-up is exit 5 with a line;
# - messages escape bytes that do not print (a NUL) and name a UTF-8 byte-order mark;
# - a full disk (a small tmpfs) while writing metrics.jsonl or a checkpoint is exit
#   3 with the operating system's reason in one line, and metrics.jsonl holds only
#   whole JSON lines.
source "$(dirname "$0")/../lib.sh"

"$TANDEM" generate --rows 6000 --seed 5 --cardinalities 400 --out "$WORK/data.tsv" >/dev/null
"$TANDEM" generate --rows 200000 --seed 6 --cardinalities 400 --out "$WORK/big.tsv" >/dev/null
small_config "$WORK/data.tsv" "$WORK/run" >"$WORK/ok.ini"
train() { "$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=400 "$@"; }

# --- Config mistakes.
expect_exit 2 "config file '$WORK' is a directory" "$TANDEM" train --config "$WORK"
echo "not a directory" >"$WORK/afile"
expect_exit 2 "ckpt.dir: '$WORK/afile' is a file, not a directory" train --ckpt.dir="$WORK/afile"
expect_exit 2 "run.dir: '$WORK/afile' is a file, not a directory" train --run.dir="$WORK/afile"
expect_exit 2 "run.threads: must be >= 0" train --run.threads=-1
for lr in inf nan 0 -1; do
  expect_exit 2 "optim.lr: must be finite and > 0" train --optim.lr=$lr
done
# Memory pre-check: tables and optimizer state over what a rank may use (the node's
# memory or a ulimit, whichever is lower) are exit 2 before anything is allocated.
# Adam over LibTorch's kernels keeps two more tables, and a dense gradient one:
# 26 tables x 1M rows x (8 weights + 8 gradient + 16 state) floats = 3.10 GiB over a
# 2 GiB limit (the weights alone would fit).
# On the CPU: a GPU keeps the tables in its own memory, which ulimit -d does not bound.
too_big() { (ulimit -d 2097152 && "$TANDEM" train --config "$WORK/ok.ini" --train.device=cpu --model.kernels=aten --model.sparse_embeddings=false --optim.name=adam "$@"); }
if [[ -z ${TANDEM_SANITIZE:-} ]]; then  # AddressSanitizer's shadow memory is over any ulimit -d
  expect_exit 2 "model.embedding_rows: the tables and their optimizer state need 3.10 GiB on every rank, but its memory limit \(ulimit -d\) is 2.00 GiB; shard them over parameter servers" \
    too_big --model.embedding_rows=1000000
else
  echo "note: under AddressSanitizer the ulimit -d pre-check is skipped"
fi
# On a GPU the weights are made on the host first, then all of it must fit the GPU.
expect_exit 2 "model.embedding_rows: the tables( and their optimizer state)? need .* on every rank, but (its node has .* available for each of its 1 rank\(s\)|its memory limit \(ulimit -[dv]\) is .*|its GPU has .* free)" \
  "$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=100000000000

# --- Divergence: stop (the default).
rm -rf "$WORK/run"
if [[ ${WITH_HDF5:-1} == 1 ]]; then  # the checkpoints before the diverged step
  TANDEM_POISON=3:0:loss expect_exit 3 \
    "^tandem: error: step 3: the loss on rank 0 is not finite; training diverged" \
    train --ckpt.every_steps=1 --ckpt.async=false
  ls "$WORK/run/checkpoints" >"$WORK/ckpts"
  grep -q "step-000000002.h5" "$WORK/ckpts" || fail "no checkpoint of step 2: $(cat "$WORK/ckpts")"
  grep -q "step-000000003" "$WORK/ckpts" && fail "a checkpoint of the diverged step: $(cat "$WORK/ckpts")"
  [[ $(cat "$WORK/run/checkpoints/latest") == step-000000002.h5 ]] ||
    fail "latest: $(cat "$WORK/run/checkpoints/latest")"
  pass "divergence: stopped at step 3, latest is step 2's checkpoint"
else
  TANDEM_POISON=3:0:loss expect_exit 3 \
    "^tandem: error: step 3: the loss on rank 0 is not finite; training diverged" train --ckpt.at_end=false
fi

rm -rf "$WORK/run"  # a fresh run: the directory is another run's now
TANDEM_POISON=2:0:grad expect_exit 3 "step 2: the gradient of bottom.0.weight is not finite" \
  train --ckpt.at_end=false

# --- Divergence: skip_step.
rm -rf "$WORK/run"
TANDEM_POISON=3:0:loss train --train.on_nonfinite=skip_step >"$WORK/skip.log" 2>&1 ||
  fail "skip_step: $(tail -n 3 "$WORK/skip.log")"
grep -q '"event":"nonfinite".*"step":3' "$WORK/run/metrics.jsonl" ||
  fail "skip_step: no nonfinite event for step 3"
ne=$(final_metric "$WORK/run" ne)
less_than "$ne" 1 || fail "skip_step: final NE $ne"
pass "skip_step: step 3 skipped, training went on (final NE $ne)"
rm -rf "$WORK/run"
rc=0
train --train.on_nonfinite=skip_step --optim.lr=1e30 --ckpt.at_end=false >"$WORK/out" 2>"$WORK/err" ||
  rc=$?
[[ $rc == 3 && $(grep -c "step skipped" "$WORK/err") == 9 ]] &&
  grep -q "step 11: .* training diverged (10 non-finite steps in a row)" "$WORK/err" ||
  fail "skip_step, always diverging: exit $rc: $(tail -n 2 "$WORK/err")"
pass "skip_step: 10 non-finite steps in a row stop the run (exit 3)"

if [[ $WITH_MPI == 1 ]]; then
  # A rank other than 0 diverges: every rank stops, one line names it.
  TANDEM_POISON=3:1:loss expect_mpi_exit 3 "step 3: the loss on rank 1 is not finite" \
    $MPIRUN -np 2 "$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=400 \
    --train.log_every=0 --ckpt.at_end=false --run.dir="$WORK/poison-loss"
  TANDEM_POISON=3:1:grad expect_mpi_exit 3 "step 3: the gradient of bottom.0.weight is not finite" \
    $MPIRUN -np 2 "$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=400 \
    --train.log_every=0 --ckpt.at_end=false --run.dir="$WORK/poison-grad"
  # skip_step on 2 ranks: both skip the same step, rank 0 says so once.
  TANDEM_POISON=3:1:grad $MPIRUN -np 2 "$TANDEM" train --config "$WORK/ok.ini" \
    --model.embedding_rows=400 --train.log_every=0 --ckpt.at_end=false \
    --train.on_nonfinite=skip_step --run.dir="$WORK/skip2" >"$WORK/skip2.log" 2>&1 ||
    fail "skip_step on 2 ranks: $(tail -n 3 "$WORK/skip2.log")"
  [[ $(grep -c "step skipped" "$WORK/skip2.log") == 1 ]] ||
    fail "skip_step on 2 ranks: $(grep "skipped" "$WORK/skip2.log")"
  pass "skip_step on 2 ranks: one step skipped, said once"
  # With a dedicated parameter server the job ends too (the server does not wait).
  rc=0
  TANDEM_POISON=3:0:loss timeout 120 $MPIRUN -np 2 "$TANDEM" train --config "$WORK/ok.ini" \
    --model.embedding_rows=400 --train.log_every=0 --ckpt.at_end=false --ps.servers=1 \
    --run.dir="$WORK/poison-ps" >"$WORK/ps.log" 2>&1 || rc=$?
  [[ $rc == 3 ]] || fail "parameter server divergence: exit $rc: $(tail -n 3 "$WORK/ps.log")"
  grep -q "step 3: the loss or the tables' gradient on rank 0 is not finite" "$WORK/ps.log" ||
    fail "parameter server divergence: $(grep error "$WORK/ps.log")"
  pass "parameter server: divergence ends the job with exit 3"
fi

# Checkpoints and resumes, below, need HDF5.
if [[ ${WITH_HDF5:-1} == 1 ]]; then
# --- Checkpoint attributes are checksummed: one changed value is exit 3, named.
rm -rf "$WORK/run"
train --ckpt.every_steps=10 --ckpt.keep_last=10 --ckpt.async=false >"$WORK/ck.log" 2>&1 || fail "$(tail -n 3 "$WORK/ck.log")"
ck=$WORK/run/checkpoints/step-000000010.h5
"$TANDEM" inspect "$ck" >/dev/null || fail "inspect of a good checkpoint"
cp "$ck" "$WORK/good.h5"
if /usr/bin/python3 -c "import h5py" 2>/dev/null; then
  for change in "step:11" "world_size:0" "lr:0.2" "optimizer:sgd"; do
    key=${change%%:*} value=${change#*:}
    cp "$WORK/good.h5" "$WORK/flipped.h5"
    /usr/bin/python3 - "$WORK/flipped.h5" "$key" "$value" <<'PY'
import h5py, sys
path, key, value = sys.argv[1:]
with h5py.File(path, "r+") as f:
    old = f.attrs[key]
    f.attrs[key] = type(old)(value) if not isinstance(old, bytes) else value.encode()
PY
    expect_exit 3 "flipped.h5: attribute $key is corrupt: it says $value" "$TANDEM" inspect "$WORK/flipped.h5"
    cp "$WORK/flipped.h5" "$WORK/run/checkpoints/step-000000010.h5"
    expect_exit 3 "attribute $key is corrupt" train --run.resume="$WORK/run/checkpoints/step-000000010.h5"
  done
else
  echo "note: python3-h5py missing; the attribute checks are skipped"
fi

# --- A checkpoint directory is one run's. A fresh run (another seed) into a finished
# run's directory refuses, with its metrics untouched; run.overwrite=true deletes the
# old checkpoints, and a resume then continues the new run, never the old one.
rm -rf "$WORK/run"
train --ckpt.every_steps=10 >"$WORK/o.log" 2>&1 || fail "$(tail -n 3 "$WORK/o.log")"
old_id=$(cat "$WORK/run/checkpoints/run_id")
grep -q "run: $old_id (a fresh start)" "$WORK/o.log" || fail "no run id line: $(grep 'run:' "$WORK/o.log")"
cp "$WORK/run/metrics.jsonl" "$WORK/old_metrics.jsonl"
expect_exit 2 "ckpt.dir: '$WORK/run/checkpoints' holds [0-9]+ checkpoint\(s\) of another run \($old_id\) \(newest step-000000043.h5\): resume it with --resume auto, .* run.overwrite=true" \
  train --run.seed=4
cmp -s "$WORK/run/metrics.jsonl" "$WORK/old_metrics.jsonl" || fail "the refused run touched metrics.jsonl"
train --run.seed=4 --train.steps=20 --ckpt.every_steps=10 --run.overwrite=true >"$WORK/o.log" 2>&1 ||
  fail "overwrite: $(tail -n 3 "$WORK/o.log")"
new_id=$(cat "$WORK/run/checkpoints/run_id")
[[ $new_id != "$old_id" ]] || fail "overwrite kept the old run id"
grep -q "run.overwrite: deleting [0-9]* checkpoint(s) of run $old_id" "$WORK/o.log" || fail "no deletion line"
[[ ! -e $WORK/run/checkpoints/step-000000043.h5 ]] || fail "the old run's final checkpoint survived"
train --run.seed=4 --train.steps=30 --ckpt.every_steps=10 --resume auto >"$WORK/o.log" 2>&1 ||
  fail "resume: $(tail -n 3 "$WORK/o.log")"
grep -q "run: $new_id (resuming .*step-000000020.h5)" "$WORK/o.log" || fail "did not resume the new run: $(grep 'run:' "$WORK/o.log")"
"$TANDEM" inspect "$WORK/run/checkpoints/step-000000030.h5" | grep -q "^  run $new_id\$" ||
  fail "inspect does not show the run id: $("$TANDEM" inspect "$WORK/run/checkpoints/step-000000030.h5" | head -3)"
pass "a fresh run refuses another run's directory; run.overwrite replaces it; resume keeps the run id"
if /usr/bin/python3 -c "import h5py, xxhash" 2>/dev/null; then
  # A format-2 checkpoint (before run ids) in a directory without run_id: a resume
  # adopts it as this run's.
  mkdir -p "$WORK/legacy/checkpoints"
  /usr/bin/python3 - "$WORK/run/checkpoints/step-000000030.h5" "$WORK/legacy/checkpoints/step-000000030.h5" <<'PY' || fail "h5py rewrite to format 2"
import h5py, numpy as np, shutil, sys, xxhash
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r+") as f:
    del f.attrs["run_id"]
    f.attrs["format_version"] = np.int64(2)
    text = bytes(f["header"][()]).decode()
    text = "".join(l + "\n" for l in text.splitlines() if not l.startswith("run_id="))
    text = text.replace("format_version=3", "format_version=2")
    attrs = dict(f["header"].attrs)
    del f["header"]
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    ds = f.create_dataset("header", data=data)
    for k, v in attrs.items():
        ds.attrs[k] = v
    ds.attrs["shape"] = str(len(data))
    ds.attrs["xxh3_64"] = xxhash.xxh3_64_hexdigest(data.tobytes())
PY
  "$TANDEM" inspect "$WORK/legacy/checkpoints/step-000000030.h5" | grep -q "run (no id" ||
    fail "inspect of a format-2 file: $("$TANDEM" inspect "$WORK/legacy/checkpoints/step-000000030.h5" 2>&1 | head -3)"
  train --run.seed=4 --train.steps=40 --ckpt.every_steps=10 --run.dir="$WORK/legacy" --resume auto \
    >"$WORK/o.log" 2>&1 || fail "resume of a format-2 checkpoint: $(tail -n 3 "$WORK/o.log")"
  grep -q "run: .* (resuming .*legacy/checkpoints/step-000000030.h5)" "$WORK/o.log" ||
    fail "format 2: $(grep 'run:' "$WORK/o.log")"
  [[ -e $WORK/legacy/checkpoints/step-000000040.h5 && -s $WORK/legacy/checkpoints/run_id ]] ||
    fail "format 2: $(ls "$WORK/legacy/checkpoints")"
  pass "a format-2 checkpoint (no run id) loads, and a resume adopts it"
fi

# --- Unloadable checkpoints never crowd out new saves: a resume sets them aside
# (corrupt/) saying why, starts afresh as the same run, and `latest` always names a
# file that exists.
rm -rf "$WORK/run"
train --ckpt.every_steps=10 >"$WORK/p.log" 2>&1 || fail "$(tail -n 3 "$WORK/p.log")"
for f in "$WORK"/run/checkpoints/step-*.h5; do head -c 1000 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
train --train.steps=12 --ckpt.every_steps=5 --ckpt.keep_last=1 --resume auto >"$WORK/p.log" 2>&1 ||
  fail "a run beside corrupt checkpoints: $(tail -n 3 "$WORK/p.log")"
grep -q "resume: no checkpoint in .* yet; starting fresh" "$WORK/p.log" || fail "did not start afresh"
latest=$(cat "$WORK/run/checkpoints/latest")
[[ $latest == step-000000012.h5 && -e $WORK/run/checkpoints/$latest ]] || fail "latest: $latest"
[[ $(ls "$WORK/run/checkpoints/corrupt" | wc -l) -ge 3 ]] || fail "corrupt/: $(ls "$WORK/run/checkpoints/corrupt")"
grep -q "does not load .*; moved to .*corrupt/" "$WORK/p.log" || fail "no set-aside line"
"$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=400 --resume auto >"$WORK/p.log" 2>&1 ||
  fail "resume: $(tail -n 3 "$WORK/p.log")"
grep -q "resume: .*step-000000012.h5 at step 12" "$WORK/p.log" || fail "did not resume at step 12"
pass "unloadable checkpoints are set aside, never counted; latest exists; resume finds step 12"

# --- Resume checks its data: a changed, truncated or appended file is exit 3 naming
# it, unless --resume-allow-changed-data.
rm -rf "$WORK/run"
cp "$WORK/data.tsv" "$WORK/mine.tsv"
train --data.train="$WORK/mine.tsv" --ckpt.every_steps=10 >"$WORK/d.log" 2>&1 || fail "$(tail -n 3 "$WORK/d.log")"
train --data.train="$WORK/mine.tsv" --resume auto >"$WORK/d.log" 2>&1 || fail "unchanged data: $(tail -n 3 "$WORK/d.log")"
grep -q "resume: checked 1 data file(s) .* unchanged" "$WORK/d.log" || fail "no data check line"
sed -i '100s/^0/1/;101s/^1/0/;102s/^0/1/' "$WORK/mine.tsv"  # labels flipped, same size
expect_exit 3 "resume: the data changed since the checkpoint: '$WORK/mine.tsv' changed \($(stat -c %s "$WORK/data.tsv") -> " \
  train --data.train="$WORK/mine.tsv" --resume auto
cp "$WORK/data.tsv" "$WORK/mine.tsv"
head -n 10 "$WORK/data.tsv" >>"$WORK/mine.tsv"
expect_exit 3 "'$WORK/mine.tsv' was appended to" train --data.train="$WORK/mine.tsv" --resume auto
head -n 3000 "$WORK/data.tsv" >"$WORK/mine.tsv"
expect_exit 3 "'$WORK/mine.tsv' changed" train --data.train="$WORK/mine.tsv" --resume auto
train --data.train="$WORK/mine.tsv" --resume auto --resume-allow-changed-data >"$WORK/d.log" 2>&1 ||
  fail "--resume-allow-changed-data: $(tail -n 3 "$WORK/d.log")"
grep -q "resume on changed data" "$WORK/d.log" || fail "--resume-allow-changed-data: no warning"
pass "--resume-allow-changed-data resumes on changed data, with a warning"

fi  # HDF5

# --- SIGTERM while starting: exit 5 with a line, not death by the signal (143).
# Sent as soon as the start line is out (MPI is up; the data, model and statistics
# come next), and once more a moment later.
for delay in 0 0.2; do
  rm -rf "$WORK/run"
  "$TANDEM" train --config "$WORK/ok.ini" --model.embedding_rows=400 --data.train="$WORK/big.tsv" \
    >"$WORK/term.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q "^tandem: rank" "$WORK/term.log" 2>/dev/null && break; sleep 0.05; done
  sleep $delay
  kill -TERM $pid
  rc=0
  wait $pid || rc=$?
  [[ $rc == 5 ]] || fail "SIGTERM ${delay} s after the start line: exit $rc: $(tail -n 2 "$WORK/term.log")"
  grep -q "stop requested by a signal" "$WORK/term.log" || fail "SIGTERM after ${delay} s: no line"
  pass "SIGTERM ${delay} s after the start line: exit 5 ($(grep -o 'stop requested by a signal[^:]*' "$WORK/term.log"))"
done

# --- Messages: bytes that do not print, a byte-order mark.
printf '0\t1\x002\t' >"$WORK/nul.tsv"
printf '%.0s\t' $(seq 37) >>"$WORK/nul.tsv"
printf '\n' >>"$WORK/nul.tsv"
expect_exit 3 "nul.tsv:1: field I1 '1\\\\x002' is not an integer" \
  train --data.train="$WORK/nul.tsv" --data.on_error=fail
{ printf '\xEF\xBB\xBF'; head -n 20 "$WORK/data.tsv"; } >"$WORK/bom.tsv"
expect_exit 3 "bom.tsv:1: the line starts with a UTF-8 byte-order mark \(\\\\xEF\\\\xBB\\\\xBF\)" \
  train --data.train="$WORK/bom.tsv" --data.on_error=fail

# --- A full disk.
mkdir -p "$WORK/full"
if ! mount -t tmpfs -o size=1m tmpfs "$WORK/full" 2>/dev/null; then
  echo "skipped: the full-disk cases (cannot mount a tmpfs here: needs root / CAP_SYS_ADMIN)"
  exit 0
fi
trap 'umount "$WORK/full" 2>/dev/null; [[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"' EXIT
# Leave 8 KiB free: a line per step fills it. With TensorBoard its event file fills
# first (exit 3 naming it); without, metrics.jsonl, which must keep whole lines.
head -c $((1024 * 1024 - 8192)) /dev/zero >"$WORK/full/filler" 2>/dev/null || true
expect_exit 3 "tensorboard: cannot write '$WORK/full/run/tb/events.out.tfevents.[^']*': No space left on device" \
  train --run.dir="$WORK/full/run" --train.log_every=1 --ckpt.dir="$WORK/ckpt" \
  --model.standardize=false
pass "full disk while writing TensorBoard's file: exit 3, naming it"
rm -rf "$WORK/full/run"
expect_exit 3 "cannot write '$WORK/full/run/metrics.jsonl': No space left on device" \
  train --run.dir="$WORK/full/run" --train.log_every=1 --ckpt.dir="$WORK/ckpt2" \
  --model.standardize=false --log.tensorboard=false
/usr/bin/python3 -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "a half line at the end: %r" % lines[-1][-40:]
for l in lines[:-1]: json.loads(l)
print(len(lines) - 1, "whole lines")' "$WORK/full/run/metrics.jsonl" || fail "metrics.jsonl is not whole lines"
pass "full disk while logging: exit 3, metrics.jsonl holds whole lines"
rm -rf "$WORK/full/run"
if [[ ${WITH_HDF5:-1} == 1 ]]; then  # a checkpoint that does not fit
  for async in false true; do
    expect_exit 3 "No space left on device" \
      train --run.dir="$WORK/run-full-$async" --ckpt.dir="$WORK/full/ckpt" --ckpt.async=$async \
      --ckpt.every_steps=5
  done
fi
