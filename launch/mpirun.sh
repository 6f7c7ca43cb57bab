#!/usr/bin/env bash
# Runs `tandem` on N local ranks with Open MPI's mpirun.
#   launch/mpirun.sh N train --config configs/quickstart.ini [--section.key=value ...]
# Ranks are not bound to cores, so each rank's threads (cores / local ranks by
# default) can run; more ranks than cores are allowed (--oversubscribe).
set -euo pipefail
if [[ $# -lt 2 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 N <tandem command> [args...]" >&2
  exit 2
fi
n=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${TANDEM_BIN:-$repo/build/bin/tandem}
[[ -x $bin ]] || { echo "$0: $bin not found; build first (tests/run.sh or launch/quickstart.sh)" >&2; exit 2; }
flags=(--bind-to none)
((n > $(nproc))) && flags+=(--oversubscribe)
[[ $(id -u) == 0 ]] && flags+=(--allow-run-as-root)
exec mpirun "${flags[@]}" -np "$n" "$bin" "$@"
