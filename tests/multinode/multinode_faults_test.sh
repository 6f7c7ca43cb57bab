# Faults between hosts (network-namespace hosts, tests/multinode/hosts.sh),
# training on tdm1 x 2 + tdm2 x 2 ranks under launch/mpirun.sh:
# - a host dies (every process on it killed): the job ends within seconds, the
#   last complete checkpoint loads, and resume ends with the uninterrupted bits;
# - a link goes down for good: Tandem's watchdog ends the job after
#   comm.timeout_s (10 s), naming the ranks and host that did not answer,
#   instead of the silent hang of several minutes Open MPI alone gives;
# - a link down for 10 s, within comm.timeout_s: training goes on, the bits are
#   unchanged, and the log says how long the stall was;
# - 2 ms and 10 ms of added round trip, and 5 % frame loss: the same bits.
source "$(dirname "$0")/../lib.sh"
source "$REPO/tests/multinode/hosts.sh"
mn_test 3

"$TANDEM" generate --rows 20000 --seed 8 --cardinalities 5000 --out "$WORK/d.tsv" >/dev/null
small_config "$WORK/d.tsv" "$WORK/run" >"$WORK/c.ini"
printf '[ckpt]\nevery_steps = 100\n' >>"$WORK/c.ini"
train() {  # train NAME [HOST:SLOTS...] -- [options]: on tdm1 x 2 + tdm2 x 2 unless given
  local name=$1
  shift
  [[ $1 != -- ]] || set -- tdm1:2 tdm2:2 "$@"
  mn_train "$WORK/$name" "$WORK/c.ini" "$@"
}
digest() { "$TANDEM" inspect --hash "$WORK/$1/checkpoints/step-$(printf %09d "$2").h5"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# started NAME: waits until NAME's training has begun (the baseline line).
started() {
  local i
  for i in $(seq 1 600); do
    grep -q "^baseline" "$WORK/$1.log" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1 never started: $(tail -n 5 "$WORK/$1.log")"
}

# Uninterrupted references: 1 epoch (141 steps) and 6 epochs (846 steps).
train ref1 -- || fail "reference: $(tail -n 5 "$WORK/ref1.log")"
train ref6 -- --train.epochs=6 || fail "reference: $(tail -n 5 "$WORK/ref6.log")"

# A host dies after the checkpoint of step 300.
train death -- --train.epochs=6 &
job=$!
for i in $(seq 1 600); do [[ -e $WORK/death/checkpoints/step-000000300.h5 ]] && break; sleep 0.1; done
[[ -e $WORK/death/checkpoints/step-000000300.h5 ]] || fail "no checkpoint at step 300: $(tail -n 5 "$WORK/death.log")"
t0=$(now)
mn_kill_host tdm2
rc=0
wait $job || rc=$?
took=$(elapsed "$t0")
[[ $rc != 0 ]] || fail "the job survived the death of tdm2"
less_than "$took" 15 || fail "the job took $took s to end after tdm2 died"
last=$(ls "$WORK/death/checkpoints" | grep -E '^step-[0-9]+\.h5$' | tail -n 1)
"$TANDEM" inspect "$WORK/death/checkpoints/$last" >"$WORK/inspect" || fail "$last does not load: $(cat "$WORK/inspect")"
train death tdm1:2 tdm3:2 -- --train.epochs=6 --resume auto || fail "resume: $(tail -n 5 "$WORK/death.log")"
[[ $(digest death 846) == "$(digest ref6 846)" ]] || fail "resumed after the death of tdm2: other bits"
pass "tdm2 died after step $(tr -dc 0-9 <<<"${last%.h5}" | sed 's/^0*//'): the job ended in $took s (exit $rc), $last loads, resume on tdm1 + tdm3 ends with the same bits"

# A link down for good: the watchdog, not a multi-minute hang. Its line comes
# after comm.timeout_s and about 1 s of asking the other ranks; mpirun itself ends
# once the login node (tdm0) gives up sending to tdm2, ~13 s later (hosts.sh).
train down -- --train.epochs=100 --comm.timeout_s=10 &
job=$!
started down
sleep 1
t0=$(now)
mn_link tdm2 down
seen=""
while kill -0 $job 2>/dev/null; do
  [[ -z $seen ]] && grep -q "not done after" "$WORK/down.log" && seen=$(elapsed "$t0")
  sleep 0.1
done
rc=0
wait $job || rc=$?
took=$(elapsed "$t0")
grep -Eq "comm: mpi [a-z]+ #[0-9]+ \(world\) on rank [01] \(tdm1\) not done after 10 s \(comm.timeout_s\): no answer from rank 2 \(tdm2\), rank 3 \(tdm2\)(; .*)?; aborting the job" \
  "$WORK/down.log" || fail "no watchdog line naming tdm2: $(grep -v '^\[tdm0' "$WORK/down.log" | tail -n 5)"
[[ $rc == 4 ]] || fail "link down: exit $rc, expected 4"
less_than "${seen:-99}" 18 || fail "link down: the watchdog spoke after ${seen:-never} s"
less_than "$took" 45 || fail "link down: the job took $took s to end"
pass "tdm2's link down for good, comm.timeout_s=10: the watchdog named ranks 2 and 3 on tdm2 after $seen s, the job ended after $took s (exit 4)"
mn_kill_host tdm2  # unreachable, so never told to stop
mn_link tdm2 up

# A link down for 10 s, then back.
train flap -- --train.epochs=6 --comm.timeout_s=60 &
job=$!
started flap
sleep 1
mn_link tdm2 down
sleep 10
mn_link tdm2 up
wait $job || fail "the run did not survive a 10 s outage: $(tail -n 5 "$WORK/flap.log")"
stall=$(grep -Eo "took [0-9.]+ s: a peer or its link stalled" "$WORK/flap.log" | head -n 1)
[[ -n $stall ]] || fail "the 10 s outage was not logged"
[[ $(digest flap 846) == "$(digest ref6 846)" ]] || fail "after the outage: other bits"
pass "tdm2's link down for 10 s: training went on (logged: '$stall'), the same bits"

# Latency and loss on tdm2's link.
for fault in "1 0" "5 0" "0 5"; do
  read -r ms loss <<<"$fault"
  mn_delay tdm2 "$ms" "$loss"
  t0=$(now)
  train "slow$ms-$loss" -- || fail "+$ms ms, $loss% loss: $(tail -n 5 "$WORK/slow$ms-$loss.log")"
  took=$(elapsed "$t0")
  mn_undelay
  [[ $(digest "slow$ms-$loss" 141) == "$(digest ref1 141)" ]] || fail "+$ms ms, $loss% loss: other bits"
  pass "$((2 * ms)) ms added round trip, $loss% loss on tdm2's link: the same bits ($took s)"
done
echo "all passed"
