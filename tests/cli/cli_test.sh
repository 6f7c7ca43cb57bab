# CLI behaviour: --help/--version, config errors (one line naming key and file,
# exit 2), data errors (exit 3), and generate's determinism.
source "$(dirname "$0")/../lib.sh"

"$TANDEM" --version | grep -Eq '^tandem [0-9]+\.[0-9]+\.[0-9]+ \(LibTorch' || fail "--version"
env -u TANDEM_CPU_ISA "$TANDEM" --version |
  grep -Eq '^CPU kernels: (avx512 \(x86-64-v4\)|avx2 \(x86-64-v3\)|baseline \(x86-64\)), the best this CPU has$' ||
  fail "--version does not name the CPU kernel variant: $(env -u TANDEM_CPU_ISA "$TANDEM" --version)"
TANDEM_CPU_ISA=baseline "$TANDEM" --version | grep -q '^CPU kernels: baseline (x86-64), forced by TANDEM_CPU_ISA$' ||
  fail "TANDEM_CPU_ISA=baseline not in --version"
pass "--version, with the CPU kernel variant (TANDEM_CPU_ISA=baseline forces it)"
expect_exit 2 "^tandem: error: TANDEM_CPU_ISA=avx9: not one of auto, baseline, avx2, avx512$" \
  env TANDEM_CPU_ISA=avx9 "$TANDEM" --version
help=$("$TANDEM" train --help)
for key in run.dir run.seed data.train data.eval train.steps train.batch_size train.eval_every \
           optim.name optim.lr model.dropout comm.check train.bucket_mb model.kernels model.layer_norm \
           optim.fused_embedding_update; do
  grep -q -- "--$key" <<<"$help" || fail "train --help lacks $key"
done
grep -q -- "--train.batch_size arg (=128)" <<<"$help" || fail "train --help shows no defaults"
pass "train --help lists every option with its default"
"$TANDEM" generate --help | grep -q -- "--rows" || fail "generate --help"
expect_exit 2 "no command given" "$TANDEM"
expect_exit 2 "unknown command 'trian'" "$TANDEM" trian

# Config errors name the key and the file (with the line), exit 2.
"$TANDEM" generate --rows 3000 --seed 4 --out "$WORK/new/dir/d.tsv" >/dev/null  # creates dirs
mv "$WORK/new/dir/d.tsv" "$WORK/d.tsv"
printf '[data]\ntrain = %s\n[train]\nstepz = 5\n' "$WORK/d.tsv" >"$WORK/unknown.ini"
expect_exit 2 "$WORK/unknown.ini:4: .*train.stepz" "$TANDEM" train --config "$WORK/unknown.ini"
printf '[data]\ntrain = %s\n[train]\nsteps = many\n' "$WORK/d.tsv" >"$WORK/badvalue.ini"
expect_exit 2 "$WORK/badvalue.ini:4: the value 'many' of option 'train.steps' is invalid" "$TANDEM" train --config "$WORK/badvalue.ini"
# A value holding Boost's own placeholder (which hung its message: tests/fuzz config).
printf '[data]\ntrain = %s\n[train]\nsteps = %%value%%\n' "$WORK/d.tsv" >"$WORK/placeholder.ini"
expect_exit 2 "$WORK/placeholder.ini:4: the value '%value%' of option 'train.steps' is invalid" \
  timeout 60 "$TANDEM" train --config "$WORK/placeholder.ini"
expect_exit 2 "cannot open config file '$WORK/missing.ini'" "$TANDEM" train --config "$WORK/missing.ini"
printf '[data]\ntrain = %s\n' "$WORK/d.tsv" >"$WORK/ok.ini"
expect_exit 2 "command line: .*train.nope" "$TANDEM" train --config "$WORK/ok.ini" --train.nope=1
expect_exit 2 "optim.name: 'lbfgs' is not one of" "$TANDEM" train --config "$WORK/ok.ini" --optim.name=lbfgs
expect_exit 2 "model.sparse_embeddings: optim.name=adam .*cannot take sparse" "$TANDEM" train --config "$WORK/ok.ini" --optim.name=adam
expect_exit 2 "model.kernels: 'cudnn' is not one of tandem, aten" "$TANDEM" train --config "$WORK/ok.ini" --model.kernels=cudnn
expect_exit 2 "model.kernels: tandem's embedding kernels produce row-wise sparse gradients" \
  "$TANDEM" train --config "$WORK/ok.ini" --model.sparse_embeddings=false
expect_exit 2 "train: --config FILE is required" "$TANDEM" train
expect_exit 2 "train.device: 'tpu' is not one of auto, cpu, cuda" "$TANDEM" train --config "$WORK/ok.ini" --train.device=tpu
if ! "$TANDEM" --version | grep -q "CUDA on"; then  # no GPU path in this build
  expect_exit 2 "train.device=cuda, but LibTorch sees no usable GPU" \
    "$TANDEM" train --config "$WORK/ok.ini" --train.device=cuda
  expect_exit 2 "comm.backend=nccl(: rank 0 sees no CUDA device|, but Tandem was built without NCCL)" \
    "$TANDEM" train --config "$WORK/ok.ini" --comm.backend=nccl
fi
expect_exit 2 "generate: --out is required" "$TANDEM" generate --rows 5

# Data errors: exit 3, naming the file (and line).
expect_exit 3 "'$WORK/nope.tsv': no such file" "$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/nope.tsv"
{ head -n 5 "$WORK/d.tsv"; printf '1\t2\tthree\n'; tail -n +6 "$WORK/d.tsv"; } >"$WORK/bad.tsv"
expect_exit 3 "$WORK/bad.tsv:6: expected 40 tab-separated fields, found 3" \
  "$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/bad.tsv" --data.on_error=fail
head -n 3 "$WORK/d.tsv" >"$WORK/tiny.tsv"
expect_exit 3 "tiny.tsv: no evaluation rows" "$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/tiny.tsv"
# The default policy skips it and says so.
"$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/bad.tsv" --train.steps=2 \
  --train.log_every=0 --run.dir="$WORK/skip" --model.embedding_rows=100 >"$WORK/out" 2>&1
grep -q "skipped 1 malformed line(s).*bad.tsv:6" "$WORK/out" || fail "skip summary: $(cat "$WORK/out")"
pass "malformed line skipped with a summary"
# ... but not a dataset that is mostly bad (issue 20: 200 of 300 lines had a string
# categorical): exit 3 with the count, the share and the first three lines.
head -n 300 "$WORK/d.tsv" | awk -F'\t' -v OFS='\t' 'NR % 3 { $15 = "Private" } 1' >"$WORK/mostly-bad.tsv"
expect_exit 3 "mostly-bad.tsv: 200 of 300 lines \(66.7%\) are malformed, more than data.max_bad_fraction = 0.001 allows .*mostly-bad.tsv:1: field C1 'Private' is not hexadecimal; .*mostly-bad.tsv:2: .*mostly-bad.tsv:4: " \
  "$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/mostly-bad.tsv" --run.dir="$WORK/mostly"
expect_exit 3 "200 of 300 lines .* more than data.max_bad_lines = 10 allows" \
  "$TANDEM" fit-stats --config "$WORK/ok.ini" --data.train="$WORK/mostly-bad.tsv" \
  --data.max_bad_fraction=1 --data.max_bad_lines=10 --out "$WORK/mostly.h5"
expect_exit 2 "data.max_bad_fraction: must be in \[0, 1\]" \
  "$TANDEM" train --config "$WORK/ok.ini" --data.max_bad_fraction=2
# A negative integer feature is read as 0 and reported once per column.
head -n 2000 "$WORK/d.tsv" | awk -F'\t' -v OFS='\t' 'NR % 50 == 7 { $4 = "-" NR } 1' >"$WORK/neg.tsv"
"$TANDEM" train --config "$WORK/ok.ini" --data.train="$WORK/neg.tsv" --train.steps=2 \
  --train.log_every=0 --run.dir="$WORK/neg" --model.embedding_rows=100 >"$WORK/out" 2>&1 ||
  fail "negative values: $(cat "$WORK/out")"
[[ $(grep -c "I3 has 40 negative value(s) in $WORK/neg.tsv, which log(1 + max(x, 0)) reads as 0; first: $WORK/neg.tsv:7" "$WORK/out") == 1 ]] ||
  fail "negative report: $(cat "$WORK/out")"
pass "too many malformed lines stop the run; negative values are reported"
# A fresh start never overwrites an earlier run's metrics.jsonl without being asked.
"$TANDEM" train --config "$WORK/ok.ini" --train.steps=2 --train.log_every=0 --ckpt.at_end=false \
  --run.dir="$WORK/twice" --model.embedding_rows=100 >/dev/null 2>&1 || fail "first run into twice/"
before=$(cat "$WORK/twice/metrics.jsonl")
expect_exit 2 "run.dir: '$WORK/twice' already holds an earlier run's metrics.jsonl: .* run.overwrite=true" \
  "$TANDEM" train --config "$WORK/ok.ini" --train.steps=2 --ckpt.at_end=false \
  --run.dir="$WORK/twice" --model.embedding_rows=100
[[ $(cat "$WORK/twice/metrics.jsonl") == "$before" ]] || fail "the refused run touched metrics.jsonl"
"$TANDEM" train --config "$WORK/ok.ini" --train.steps=3 --train.log_every=0 --ckpt.at_end=false \
  --run.dir="$WORK/twice" --model.embedding_rows=100 --run.overwrite=true >/dev/null 2>&1 ||
  fail "run.overwrite=true did not replace metrics.jsonl"
[[ $(final_metric "$WORK/twice" step) == 3 ]] || fail "metrics.jsonl not replaced"
pass "an earlier run's metrics.jsonl is replaced only with run.overwrite"

# generate is deterministic per seed, and --files splits the same stream.
"$TANDEM" generate --rows 3000 --seed 4 --out "$WORK/d2.tsv" >/dev/null
cmp -s "$WORK/d.tsv" "$WORK/d2.tsv" || fail "generate is not deterministic"
"$TANDEM" generate --rows 3000 --seed 4 --files 3 --out "$WORK/parts" >/dev/null
cat "$WORK"/parts/part-*.tsv | cmp -s - "$WORK/d.tsv" || fail "--files changes the data"
pass "generate determinism"

if [[ $WITH_MPI == 1 ]]; then
  # A bad config on every rank: all ranks stop with exit 2, no hang.
  rc=0
  timeout 120 $MPIRUN -np 3 "$TANDEM" train --config "$WORK/ok.ini" --train.batch_size=32 \
    >"$WORK/out" 2>"$WORK/err" || rc=$?
  [[ $rc == 2 ]] || fail "mpirun with an uneven batch exited $rc: $(cat "$WORK/err")"
  grep -q "train.batch_size: 32 does not split evenly over 3 ranks" "$WORK/err" || fail "$(cat "$WORK/err")"
  pass "uneven global batch under mpirun -np 3: exit 2"
fi
echo "1 passed, 0 failed"
