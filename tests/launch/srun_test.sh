# The launcher for real: 2-rank training under `srun --mpi=pmix -n 2` on a
# single-node Slurm that this test starts and stops itself. Skipped (exit 77, with
# the reason) when Slurm is not installed or will not start here.
# The NE check says the run learnt (a model that learns nothing is at 1.0); 2 ranks
# train as 1 rank with the whole batch (tested exactly by data_parallel_np*). On
# this data and config, 1 rank over run seeds 1-20 (Intel Xeon model 207, AVX-512 + AMX,
# 2026-11-29): NE 0.794 mean, 0.013 sd, worst 0.831; 0.9 is 8.2 sd above the mean.
source "$(dirname "$0")/../lib.sh"
[[ $WITH_MPI == 1 ]] || { echo "skipped: built without MPI"; exit 77; }
source "$REPO/launch/local-slurm.sh"
if ! slurm_start "$WORK/slurm"; then
  echo "skipped: could not start a local Slurm: $SLURM_WHY"
  exit 77
fi
trap 'slurm_stop; rm -rf "$WORK"' EXIT

"$TANDEM" generate --rows 40000 --seed 8 --cardinalities 5000 --out "$WORK/train.tsv" >/dev/null
small_config "$WORK/train.tsv" "$WORK/run" >"$WORK/srun.ini"
timeout 300 srun --mpi=pmix -n 2 "$TANDEM" train --config "$WORK/srun.ini" >"$WORK/log" 2>&1 \
  || fail "srun: $(cat "$WORK/log")"
cat "$WORK/log"
grep -q "tandem: rank 0/2 (local 0/2), launcher srun, backend mpi" "$WORK/log" || fail "not 2 ranks under srun"
ne=$(final_metric "$WORK/run" ne)
less_than "$ne" 0.9 || fail "srun NE $ne is not below 0.9"
pass "srun --mpi=pmix -n 2: NE $ne"
echo "1 passed, 0 failed"
