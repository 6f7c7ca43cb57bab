# Shared helpers for the shell tests. CTest sets TANDEM (the binary), REPO, MPIRUN
# and WITH_MPI; run by hand, they default to the build tree.
set -euo pipefail
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
TANDEM=${TANDEM:-$REPO/build/bin/tandem}
MPIRUN=${MPIRUN:-mpirun --oversubscribe --bind-to none --allow-run-as-root}
WITH_MPI=${WITH_MPI:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-shell-test.XXXXXX")
trap '[[ -n ${KEEP_WORK:-} ]] || rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE PATTERN CMD...: runs CMD, checks its exit code, and that its
# stderr is exactly one line matching PATTERN (an extended regex).
expect_exit() { expect_exit_lines . "$@"; }
# expect_mpi_exit CODE PATTERN CMD...: the same for mpirun, which adds a banner of
# its own: exactly one of Tandem's error lines, matching PATTERN.
expect_mpi_exit() { expect_exit_lines "tandem: error" "$@"; }
expect_exit_lines() {  # LINES CODE PATTERN CMD...: LINES selects the lines counted
  local lines=$1 code=$2 pattern=$3
  shift 3
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [[ $rc == "$code" ]] || fail "'$*' exited $rc, expected $code; stderr: $(cat "$WORK/err")"
  [[ $(grep -c -- "$lines" "$WORK/err") == 1 ]] || fail "'$*' printed $(grep -c -- "$lines" "$WORK/err") error lines, expected one: $(cat "$WORK/err")"
  grep -Eq -- "$pattern" "$WORK/err" || fail "'$*' stderr lacks /$pattern/: $(cat "$WORK/err")"
  pass "exit $code: $*"
}

# A small, fast training config over $1 (data file), writing to $2 (run dir).
small_config() {
  cat <<INI
[run]
dir = $2
seed = 3
threads = 1
[data]
train = $1
eval_fraction = 0.1
block_rows = 512
[model]
embedding_dim = 8
bottom_mlp = 32
top_mlp = 32,16
embedding_rows = 5000
[optim]
name = adagrad
lr = 0.1
[train]
epochs = 1
batch_size = 128
log_every = 100
INI
}

# final_metric RUN_DIR KEY: KEY of the last line of RUN_DIR/metrics.jsonl.
final_metric() {
  tail -n 1 "$1/metrics.jsonl" | sed -E "s/.*\"$2\":([^,}]*).*/\1/"
}

# less_than A B: true when the number A < B.
less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
