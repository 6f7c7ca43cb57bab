#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, builds, and
# runs every test through CTest (unit tests, multi-rank tests under mpirun, CLI,
# end-to-end and launcher tests). Extra arguments go to ctest, e.g. -R comm.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/launch/install-deps.sh"
"$repo/launch/build.sh"
cd "${TANDEM_BUILD_DIR:-$repo/build}"
ctest --output-on-failure "$@"
