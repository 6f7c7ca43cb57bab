#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, builds, and
# runs every test through CTest (unit tests, multi-rank tests under mpirun, CLI,
# end-to-end and launcher tests). Extra arguments go to ctest, e.g. -R comm.
#   tests/run.sh [--sanitize] [CTEST ARGS...]
# --sanitize builds into build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
# (no CUDA, no benchmarks) and runs the same suite there; any finding in Tandem's
# code fails its test. Third-party leaks are suppressed by tests/sanitizers/lsan.supp
# (each line says why).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ ${1:-} == --sanitize ]]; then
  shift
  export TANDEM_BUILD_DIR=${TANDEM_BUILD_DIR:-$repo/build-asan}
  export TANDEM_CMAKE_ARGS="-DTANDEM_SANITIZE=ON -DTANDEM_WITH_CUDA=OFF -DTANDEM_BUILD_BENCHMARKS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo ${TANDEM_CMAKE_ARGS:-}"
  # keep_modules: Open MPI's unloaded components stay nameable (see its comment).
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:verify_asan_link_order=0}
  export LSAN_OPTIONS=suppressions=$repo/tests/sanitizers/lsan.supp:print_suppressions=0
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export TANDEM_SANITIZE=1  # tests that cannot run under ASan (ulimit -d) skip, saying so
fi
"$repo/launch/install-deps.sh"
"$repo/launch/build.sh"
[[ -z ${TANDEM_SANITIZE:-} ]] || export LD_PRELOAD=$TANDEM_BUILD_DIR/libkeep_modules.so
cd "${TANDEM_BUILD_DIR:-$repo/build}"
ctest --output-on-failure "$@"
