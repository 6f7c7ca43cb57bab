# The MPI backend's watchdog (comm/mpi_watchdog.h), on one host under mpirun:
# - a rank that hangs outside MPI (TANDEM_HANG_AFTER_STEP): the other rank's
#   collective ends the job after comm.timeout_s with exit 4 and one line naming
#   the op, its number, the rank and host, and where the hung rank is;
# - a stopped rank (SIGSTOP: its watchdog cannot answer either) is named as the
#   rank that did not answer;
# - a rank stopped for 2 s, less than comm.timeout_s: the run finishes, with the
#   same final metrics as an undisturbed run, and the stall is logged.
# Across hosts (link down, host death) see tests/multinode/multinode_faults_test.sh.
source "$(dirname "$0")/../lib.sh"
[[ $WITH_MPI == 1 ]] || { echo "skipped: built without MPI"; exit 77; }
host=$(hostname)

"$TANDEM" generate --rows 20000 --seed 3 --cardinalities 500 --out "$WORK/d.tsv" >/dev/null
small_config "$WORK/d.tsv" "$WORK/run" >"$WORK/c.ini"
# train NAME [options]: 2 ranks, each writing its pid to $WORK/NAME.pid.RANK.
train() {
  local name=$1
  shift
  timeout -k 5 120 $MPIRUN -np 2 bash -c 'echo $$ >"$0.$OMPI_COMM_WORLD_RANK"; exec "$@"' \
    "$WORK/$name.pid" "$TANDEM" train --config "$WORK/c.ini" --run.dir="$WORK/$name" \
    --train.log_every=10 "$@" >"$WORK/$name.log" 2>&1
}
progress() {  # progress NAME: waits for step 30
  for _ in $(seq 600); do
    grep -q "^step 30/" "$WORK/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1: no progress: $(tail -n 5 "$WORK/$1.log")"
}
final() { tail -n 1 "$1/metrics.jsonl" | sed -E 's/,"samples_per_s":[^,}]*//'; }

rc=0
TANDEM_HANG_AFTER_STEP=20 train hang --comm.timeout_s=3 || rc=$?
[[ $rc == 4 ]] || fail "hang: exit $rc, expected 4: $(tail -n 5 "$WORK/hang.log")"
grep -Eq "^\[rank 0\] comm: mpi [a-z]+ #[0-9]+ \(world\) on rank 0 \($host\) not done after 3 s \(comm.timeout_s\): rank 1 \($host\) is in no collective \(last done: [a-z]+ #[0-9]+ \(world\)\); aborting the job$" \
  "$WORK/hang.log" || fail "hang: $(grep -v '^step' "$WORK/hang.log" | tail -n 8)"
pass "a rank hung outside MPI: exit 4, $(grep -o 'rank 1 ([^)]*) is in no collective' "$WORK/hang.log")"

train stopped --comm.timeout_s=3 --train.epochs=50 &
job=$!
progress stopped
kill -STOP "$(cat "$WORK/stopped.pid.1")"
rc=0
wait $job || rc=$?
kill -9 "$(cat "$WORK/stopped.pid.1")" 2>/dev/null || true
[[ $rc == 4 ]] || fail "stopped: exit $rc, expected 4: $(tail -n 5 "$WORK/stopped.log")"
grep -Eq "^\[rank 0\] comm: mpi [a-z]+ #[0-9]+ \(world\) on rank 0 \($host\) not done after 3 s \(comm.timeout_s\): no answer from rank 1 \($host\); aborting the job$" \
  "$WORK/stopped.log" || fail "stopped: $(grep -v '^step' "$WORK/stopped.log" | tail -n 8)"
pass "a stopped rank: exit 4, named as not answering"

train calm --comm.timeout_s=8 --train.epochs=3 || fail "calm: $(tail -n 5 "$WORK/calm.log")"
train stall --comm.timeout_s=8 --train.epochs=3 &
job=$!
progress stall
kill -STOP "$(cat "$WORK/stall.pid.1")"
sleep 2.5
kill -CONT "$(cat "$WORK/stall.pid.1")"
wait $job || fail "stall: $(tail -n 5 "$WORK/stall.log")"
grep -Eq "^\[rank 0\] comm: mpi [a-z]+ #[0-9]+ \(world\) on rank 0 \($host\) took [2-7]\.[0-9] s: a peer or its link stalled \(the job ends after comm.timeout_s = 8 s\)$" \
  "$WORK/stall.log" || fail "stall not logged: $(grep -v '^step' "$WORK/stall.log" | tail -n 8)"
[[ $(final "$WORK/stall") == "$(final "$WORK/calm")" ]] || fail "the stalled run ended elsewhere"
pass "a rank stopped for 2.5 s (comm.timeout_s=8): the run finished as an undisturbed one, stall logged"
echo "all passed"
