# `tandem meta` as users run it:
# - a short MAML meta-training on the sinusoid tasks helps: 5-shot MSE after 10
#   steps is clearly below the jointly pretrained baseline on the same tasks, and
#   the final metrics.jsonl line holds the documented keys;
# - fomaml and reptile run, and so does the clusters (classification) family,
#   whose adapted accuracy beats chance;
# - kill -9 after an iteration, then --resume auto, ends bit-identical to an
#   uninterrupted run (1 rank; 2 ranks under mpirun);
# - bad settings exit 2 with one line naming the key.
source "$(dirname "$0")/../lib.sh"
cfg=$REPO/configs/maml_sinusoid.ini
meta() { "$TANDEM" meta --config "$cfg" --run.threads=1 --meta.log_every=0 "$@"; }
key() { tail -n 1 "$1/metrics.jsonl" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"; }

# Meta-training helps.
meta --run.dir="$WORK/maml" --meta.iterations=1000 --meta.eval_every=0 --ckpt.every_steps=0 \
  --ckpt.at_end=false >"$WORK/maml.log" || fail "maml run: $(tail -n 5 "$WORK/maml.log")"
for k in mse_k5_s1 mse_k5_s5 mse_k5_s10 mse_k10_s10; do
  key "$WORK/maml" "$k" >/dev/null || fail "final metrics lack $k"
  key "$WORK/maml" "baseline_$k" >/dev/null || fail "final metrics lack baseline_$k"
done
maml=$(key "$WORK/maml" mse_k5_s10)
base=$(key "$WORK/maml" baseline_mse_k5_s10)
less_than "$maml" "$(awk -v b="$base" 'BEGIN { print 0.7 * b }')" ||
  fail "after 1000 iterations MAML's 5-shot MSE ($maml) is not clearly below the baseline's ($base)"
pass "MAML 5-shot MSE after 10 steps $maml < 0.7 x baseline $base"
grep -q "few-shot evaluation: 600 held-out sinusoid tasks" "$WORK/maml.log" ||
  fail "no summary table"

for algorithm in fomaml reptile; do
  meta --run.dir="$WORK/$algorithm" --meta.algorithm=$algorithm --meta.iterations=200 \
    --meta.eval_tasks=100 --ckpt.every_steps=0 --ckpt.at_end=false >"$WORK/$algorithm.log" ||
    fail "$algorithm run: $(tail -n 5 "$WORK/$algorithm.log")"
  key "$WORK/$algorithm" mse_k10_s10 >/dev/null || fail "$algorithm: no final metrics"
  pass "$algorithm runs"
done

"$TANDEM" meta --config "$REPO/configs/maml_clusters.ini" --run.dir="$WORK/clusters" \
  --run.threads=1 --meta.iterations=300 --meta.eval_tasks=200 --meta.log_every=0 \
  --ckpt.every_steps=0 --ckpt.at_end=false >"$WORK/clusters.log" ||
  fail "clusters run: $(tail -n 5 "$WORK/clusters.log")"
acc=$(key "$WORK/clusters" acc_k5_s10)
less_than 0.5 "$acc" || fail "5-way clusters accuracy after adaptation $acc is near chance (0.2)"
pass "5-way clusters: accuracy $acc after 10 steps"

# Resume after kill -9 is exact.
if [[ ${WITH_HDF5:-1} == 1 ]]; then
  short=(--meta.iterations=120 --meta.eval_tasks=50 --meta.eval_every=50 --ckpt.every_steps=25)
  final() { "$TANDEM" inspect --hash "$1/checkpoints/step-000000120.h5"; }
  meta --run.dir="$WORK/ref" "${short[@]}" >"$WORK/ref.log" || fail "reference: $(tail -n 3 "$WORK/ref.log")"
  rc=0
  TANDEM_KILL_AFTER_STEP=60 meta --run.dir="$WORK/killed" "${short[@]}" >"$WORK/killed.log" || rc=$?
  [[ $rc == 137 ]] || fail "kill after iteration 60: exit $rc"
  meta --run.dir="$WORK/killed" "${short[@]}" --resume auto >"$WORK/resumed.log" ||
    fail "resume: $(tail -n 3 "$WORK/resumed.log")"
  grep -q "resume: .*step-000000050.h5 at iteration 50" "$WORK/resumed.log" || fail "did not resume at 50"
  [[ $(final "$WORK/killed") == "$(final "$WORK/ref")" ]] || fail "resumed run ends in another state"
  strip() { sed -E 's/,?"iterations_per_s":[^,}]*//' "$1/metrics.jsonl"; }
  [[ $(strip "$WORK/killed") == "$(strip "$WORK/ref")" ]] || fail "resumed metrics differ"
  pass "kill -9 after iteration 60, --resume auto: bit-identical meta-parameters, optimizer and metrics"

  expect_exit 3 "meta-batch 25 in the checkpoint, meta.meta_batch=5" \
    meta --run.dir="$WORK/killed" "${short[@]}" --meta.meta_batch=5 --resume auto

  if [[ $WITH_MPI == 1 ]]; then
    mpi() { $MPIRUN -np 2 "$TANDEM" meta --config "$cfg" --run.threads=1 --meta.log_every=0 "$@"; }
    mpi --run.dir="$WORK/ref2" "${short[@]}" >"$WORK/ref2.log" 2>&1 || fail "2 ranks: $(tail -n 3 "$WORK/ref2.log")"
    rc=0
    TANDEM_KILL_AFTER_STEP=60 mpi --run.dir="$WORK/kill2" "${short[@]}" >"$WORK/kill2.log" 2>&1 || rc=$?
    [[ $rc != 0 ]] || fail "2 ranks: the killed run exited 0"
    mpi --run.dir="$WORK/kill2" "${short[@]}" --resume auto >"$WORK/res2.log" 2>&1 ||
      fail "2 ranks resume: $(tail -n 3 "$WORK/res2.log")"
    [[ $(final "$WORK/kill2") == "$(final "$WORK/ref2")" ]] || fail "2 ranks: resumed run differs"
    pass "2 ranks: kill -9 after iteration 60, --resume auto: bit-identical"
  fi
fi

expect_exit 2 "meta.algorithm: 'sgd' is not one of maml, fomaml, reptile" meta --meta.algorithm=sgd
expect_exit 2 "meta.eval_steps: must be increasing" meta --meta.eval_steps=5,1
expect_exit 2 "meta.task: 'images' is not one of" meta --meta.task=images
expect_exit 2 "meta.classes: 9 classes leave fewer than meta.ways=5" \
  meta --meta.task=clusters --meta.classes=9
expect_exit 2 "meta.inner_steps: must be >= 1" meta --meta.inner_steps=0
