# The launcher for real: 2-rank data-parallel training under mpirun through
# launch/mpirun.sh. Rank 0 alone prints progress, and the run learns.
# The NE check says the run learnt (a model that learns nothing is at 1.0); 2 ranks
# train as 1 rank with the whole batch (tested exactly by data_parallel_np*). On
# this data and config, 1 rank over run seeds 1-20 (Intel Xeon model 207, AVX-512 + AMX,
# 2026-11-29): NE 0.794 mean, 0.013 sd, worst 0.831; 0.9 is 8.2 sd above the mean.
source "$(dirname "$0")/../lib.sh"
[[ $WITH_MPI == 1 ]] || { echo "skipped: built without MPI"; exit 77; }

"$TANDEM" generate --rows 40000 --seed 8 --cardinalities 5000 --out "$WORK/train.tsv" >/dev/null
small_config "$WORK/train.tsv" "$WORK/run" >"$WORK/mpi.ini"
TANDEM_BIN="$TANDEM" timeout 300 "$REPO/launch/mpirun.sh" 2 train --config "$WORK/mpi.ini" \
  >"$WORK/log" 2>&1 || fail "$(cat "$WORK/log")"
cat "$WORK/log"
grep -q "tandem: rank 0/2 (local 0/2), launcher mpirun, backend mpi" "$WORK/log" || fail "not 2 ranks"
grep -q "^tandem: 2 rank(s)" "$WORK/log" || fail "no 2-rank summary"
[[ $(grep -c "^step 100/" "$WORK/log") == 1 ]] || fail "progress printed by more than rank 0"
ne=$(final_metric "$WORK/run" ne)
less_than "$ne" 0.9 || fail "2-rank NE $ne is not below 0.9"
pass "mpirun -np 2: NE $ne"
echo "1 passed, 0 failed"
