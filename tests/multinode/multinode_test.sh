# Tandem across hosts, under the documented cluster launch (launch/mpirun.sh with
# a hostfile and TANDEM_NET), over TCP between network-namespace hosts
# (tests/multinode/hosts.sh):
# - 2 hosts x 2 ranks end with the bits of 4 ranks on one host, and the ranks'
#   bytes crossed the hosts' links;
# - the start names every rank's host and its node-local rank;
# - a run killed after step 60 resumes, on another host layout (rank 0 elsewhere),
#   to the same bits as the uninterrupted run;
# - the parameter server with its servers on one host and its workers on
#   another ends with the bits of replicated training.
source "$(dirname "$0")/../lib.sh"
source "$REPO/tests/multinode/hosts.sh"
mn_test 3

"$TANDEM" generate --rows 20000 --seed 8 --cardinalities 5000 --out "$WORK/d.tsv" >/dev/null
small_config "$WORK/d.tsv" "$WORK/run" >"$WORK/c.ini"
printf '[ckpt]\nevery_steps = 30\n' >>"$WORK/c.ini"
run() {  # run NAME HOST:SLOTS... -- [options]: training on those hosts, into $WORK/NAME
  local name=$1
  shift
  mn_train "$WORK/$name" "$WORK/c.ini" "$@"
}
digest() { "$TANDEM" inspect --hash "$WORK/$1/checkpoints/step-000000141.h5"; }

run one tdm1:4 -- || fail "4 ranks on one host: $(tail -n 5 "$WORK/one.log")"
before=$(ip -s link show vtdm2 | awk 'f { print $1; exit } /RX:/ { f = 1 }')
run two tdm1:2 tdm2:2 -- || fail "2 hosts x 2 ranks: $(tail -n 5 "$WORK/two.log")"
after=$(ip -s link show vtdm2 | awk 'f { print $1; exit } /RX:/ { f = 1 }')
grep -q "^tandem: hosts: tdm1 = ranks 0,1 (local 0,1); tdm2 = ranks 2,3 (local 0,1)$" "$WORK/two.log" ||
  fail "no hosts line: $(grep hosts "$WORK/two.log")"
grep -q "^tandem: hosts: tdm1 = ranks 0,1,2,3 (local 0,1,2,3)$" "$WORK/one.log" || fail "one host: $(grep hosts "$WORK/one.log")"
pass "the start names each rank's host and node-local rank"
((after - before > 1000000)) || fail "only $((after - before)) bytes crossed tdm2's link"
[[ $(digest two) == "$(digest one)" ]] || fail "2 hosts x 2 ranks differ from 4 ranks on one host"
pass "2 hosts x 2 ranks (TCP, $(((after - before) / 1000)) kB into tdm2): the bits of 4 ranks on one host"

# A job killed after step 60 (its checkpoints were written by rank 0 on tdm1)
# resumes with rank 0 on tdm2 and another split of the ranks over hosts.
rc=0
TANDEM_KILL_AFTER_STEP=70 run moved tdm1:2 tdm2:2 -- || rc=$?
[[ $rc != 0 ]] || fail "the killed run did not die"
run moved tdm2:1 tdm3:3 -- --resume auto || fail "resume on tdm2 + tdm3: $(tail -n 5 "$WORK/moved.log")"
grep -q "resume: .*step-000000060.h5 at step 60" "$WORK/moved.log" || fail "no resume from step 60: $(grep resume "$WORK/moved.log")"
grep -q "^tandem: hosts: tdm2 = rank 0 (local 0); tdm3 = ranks 1,2,3 (local 0,1,2)$" "$WORK/moved.log" ||
  fail "resume layout: $(grep hosts "$WORK/moved.log")"
[[ $(digest moved) == "$(digest one)" ]] || fail "the resumed run differs from the uninterrupted one"
pass "killed after step 70 on tdm1 + tdm2, resumed at step 60 on tdm2 + tdm3: the same bits"

# The parameter server across hosts: workers (ranks 0, 1) on tdm1, servers
# (ranks 2, 3) on tdm2, so every pull and push crosses the link.
run replicated tdm1:2 -- || fail "replicated: $(tail -n 5 "$WORK/replicated.log")"
run ps tdm1:2 tdm2:2 -- --ps.servers=2 || fail "ps across hosts: $(tail -n 5 "$WORK/ps.log")"
grep -q "^ps: ranks 0-1 train, ranks 2-3 serve (dedicated), BSP$" "$WORK/ps.log" ||
  fail "no roles line: $(grep '^ps:' "$WORK/ps.log")"
[[ $(digest ps) == "$(digest replicated)" ]] || fail "BSP across hosts differs from replicated training"
pass "parameter server, 2 servers on tdm2 + 2 workers on tdm1, BSP: the bits of replicated training"
echo "all passed"
