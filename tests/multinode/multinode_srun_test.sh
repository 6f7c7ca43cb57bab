# A 2-node Slurm cluster of network-namespace hosts (tests/multinode/hosts.sh):
# launch/slurm.sbatch, submitted with sbatch -N 2, trains on 2 nodes x 2 tasks
# under srun --mpi=pmix over TCP, names each rank's node and node-local rank, and
# ends with the bits of the same training under mpirun on the same 2 x 2 layout.
source "$(dirname "$0")/../lib.sh"
source "$REPO/tests/multinode/hosts.sh"
mn_test 2
if ! mn_slurm_start "$WORK/slurm" 2; then
  echo "skipped: could not start a 2-node Slurm: $SLURM_WHY"
  exit 77
fi
# Yield while waiting: Open MPI thinks every fake node has cores of its own.
export OMPI_MCA_mpi_yield_when_idle=1

"$TANDEM" generate --rows 20000 --seed 8 --cardinalities 5000 --out "$WORK/d.tsv" >/dev/null
small_config "$WORK/d.tsv" "$WORK/run" >"$WORK/c.ini"
mn_train "$WORK/mpirun" "$WORK/c.ini" tdm1:2 tdm2:2 -- ||
  fail "mpirun: $(tail -n 5 "$WORK/mpirun.log")"

# As a user submits it, from the login node (tdm1 here); the node has 2 CPUs.
(cd "$REPO" && TANDEM_BIN=$TANDEM TANDEM_NET=$MN_NET.0/24 timeout -k 5 300 "$MN_DIR/rsh" tdm1 \
  sbatch --wait -N 2 --ntasks-per-node=2 --cpus-per-task=1 --output="$WORK/job.out" \
  launch/slurm.sbatch "$WORK/c.ini" --run.dir="$WORK/srun" >"$WORK/sbatch.log" 2>&1) ||
  fail "sbatch: $(cat "$WORK/sbatch.log" "$WORK/job.out" 2>/dev/null | tail -n 8)"
cat "$WORK/job.out"
grep -q "^tandem: rank 0/4 (local 0/2), launcher srun, backend mpi" "$WORK/job.out" || fail "not 4 ranks under srun"
grep -q "^tandem: hosts: tdm1 = ranks 0,1 (local 0,1); tdm2 = ranks 2,3 (local 0,1)$" "$WORK/job.out" ||
  fail "hosts: $(grep hosts "$WORK/job.out")"
digest() { "$TANDEM" inspect --hash "$WORK/$1/checkpoints/step-000000141.h5"; }
[[ $(digest srun) == "$(digest mpirun)" ]] || fail "srun on 2 nodes differs from mpirun on 2 hosts"
pass "sbatch -N 2 launch/slurm.sbatch: 2 nodes x 2 tasks, the bits of mpirun on the same layout"
echo "1 passed, 0 failed"
