# The parameter server as users run it (tandem train with ps.*):
# - under mpirun, dedicated (1 server + 2 workers) and colocated (2 ranks) BSP
#   training ends with the same final metrics as replicated training on the same
#   workers, and the start says which rank does what and what each server holds;
# - an idle dedicated server sleeps instead of spinning a core;
# - one process can serve itself (colocated, 1 server);
# - bad settings stop every rank with exit 2 and one line naming the key.
source "$(dirname "$0")/../lib.sh"
[[ $WITH_MPI == 1 ]] || { echo "skipped: built without MPI"; exit 77; }

"$TANDEM" generate --rows 20000 --seed 3 --cardinalities 500 --out "$WORK/d.tsv" >/dev/null
small_config "$WORK/d.tsv" "$WORK/run" >"$WORK/c.ini"
train() {  # train NP RUN_DIR [options]: a small run on NP ranks
  local np=$1 dir=$2
  shift 2
  timeout 300 $MPIRUN -np "$np" "$TANDEM" train --config "$WORK/c.ini" --run.dir="$dir" \
    --model.embedding_rows=500 --ckpt.at_end=false --train.log_every=0 "$@" >"$dir.log" 2>&1
}
final() { tail -n 1 "$1/metrics.jsonl" | sed -E 's/,"samples_per_s":[^,}]*//'; }

train 2 "$WORK/replicated" || fail "replicated: $(tail -n 5 "$WORK/replicated.log")"
train 3 "$WORK/dedicated" --ps.servers=1 || fail "dedicated: $(tail -n 5 "$WORK/dedicated.log")"
grep -q "^ps: ranks 0-1 train, rank 2 serves (dedicated), BSP$" "$WORK/dedicated.log" ||
  fail "no roles line: $(head -n 5 "$WORK/dedicated.log")"
grep -Eq "^ps: server 0 \(rank 2\) holds 13000 rows with their row-wise state, [0-9.]+ KiB$" \
  "$WORK/dedicated.log" || fail "no shard line: $(head -n 5 "$WORK/dedicated.log")"
[[ $(final "$WORK/dedicated") == "$(final "$WORK/replicated")" ]] ||
  fail "dedicated BSP: $(final "$WORK/dedicated") vs replicated $(final "$WORK/replicated")"
pass "dedicated 1 server + 2 workers: the replicated run's final metrics"

# An idle dedicated server sleeps: while a worker spends seconds on wide layers,
# the server's CPU time stays far below its wall time (a server spinning in a
# blocking collective would use all of it). Three epochs keep the start-up both
# ranks pay (about 1 s of CPU) a small share even on a fast CPU: measured here
# with one epoch, 1.7 s of CPU in 7.4 s.
timeout 300 $MPIRUN -np 2 bash -c \
  '/usr/bin/time -f "%U %S %e" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' "$WORK/times" \
  "$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/idle" --model.embedding_rows=500 \
  --ckpt.at_end=false --train.log_every=0 --ps.servers=1 --model.bottom_mlp=512,512 \
  --model.top_mlp=512,512 --train.batch_size=512 --train.epochs=3 >"$WORK/idle.log" 2>&1 ||
  fail "idle server run: $(tail -n 5 "$WORK/idle.log")"
read -r user sys wall <"$WORK/times.1"
awk -v u="$user" -v s="$sys" -v w="$wall" 'BEGIN { exit !(u + s < 0.5 * w) }' ||
  fail "the dedicated server used ${user}s + ${sys}s of CPU in ${wall}s: it spins"
pass "an idle dedicated server sleeps: ${user}s + ${sys}s of CPU in ${wall}s"

train 2 "$WORK/colocated" --ps.servers=2 --ps.placement=colocated ||
  fail "colocated: $(tail -n 5 "$WORK/colocated.log")"
grep -q "^ps: server 1 (rank 1) holds 6500 rows" "$WORK/colocated.log" || fail "no shard line"
[[ $(final "$WORK/colocated") == "$(final "$WORK/replicated")" ]] ||
  fail "colocated BSP: $(final "$WORK/colocated") vs replicated $(final "$WORK/replicated")"
pass "colocated on 2 ranks: the replicated run's final metrics"

# SIGTERM (here raised after step 5 on the workers) stops the run at the next step
# boundary with exit 5, saving nothing (no sharded checkpoints yet), and the
# workers release the server.
rc=0
TANDEM_TERM_AFTER_STEP=5 train 3 "$WORK/term" --ps.servers=1 || rc=$?
[[ $rc == 5 ]] || fail "SIGTERM: exit $rc, expected 5: $(tail -n 5 "$WORK/term.log")"
grep -q "stop requested by a signal: no checkpoint directory, nothing saved at step 6" "$WORK/term.log" ||
  fail "SIGTERM: $(tail -n 5 "$WORK/term.log")"
pass "SIGTERM: exit 5 at step 6, nothing saved, servers released"

"$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/one" --model.embedding_rows=500 \
  --ckpt.at_end=false --train.steps=20 --ps.servers=1 --ps.placement=colocated >"$WORK/one.log" 2>&1 ||
  fail "one process serving itself: $(tail -n 5 "$WORK/one.log")"
pass "one process, colocated with itself"

# Bad settings: exit 2 on every rank, before any exchange.
bad() {  # bad NP PATTERN OPTION...
  local np=$1 pattern=$2 rc=0
  shift 2
  timeout 120 $MPIRUN -np "$np" "$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/bad" \
    --ckpt.at_end=false "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [[ $rc == 2 ]] || fail "$*: exit $rc, expected 2: $(cat "$WORK/err")"
  grep -Eq -- "$pattern" "$WORK/err" || fail "$*: stderr lacks /$pattern/: $(cat "$WORK/err")"
  pass "exit 2: $*"
}
bad 2 "ps.servers: 2 dedicated servers leave no worker among 2 ranks" --ps.servers=2
bad 2 "ps.servers: must be >= 0" --ps.servers=-1
bad 2 "ps.consistency: 'eventual' is not one of" --ps.servers=1 --ps.consistency=eventual
bad 2 "ps.placement: 'nearby' is not one of" --ps.servers=1 --ps.placement=nearby
bad 2 "ps.servers: colocated placement puts a shard on every rank: set it to the 2 ranks" \
  --ps.servers=1 --ps.placement=colocated
bad 2 "model.kernels: the parameter server needs Tandem's kernels" --ps.servers=1 \
  --model.kernels=aten --model.sparse_embeddings=false
bad 2 "ckpt.at_end: checkpoints of parameter-server runs are not built yet" --ps.servers=1 \
  --ckpt.every_steps=10
# Tables no server's node can hold: 26 x 10^10 rows of 16 floats (17 TB).
bad 2 "model.embedding_rows: server 0 \(rank 1\) needs [0-9.]+ GiB for its shard" --ps.servers=1 \
  --model.embedding_rows=10000000000
echo "1 passed, 0 failed"
