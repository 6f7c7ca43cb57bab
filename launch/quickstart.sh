#!/usr/bin/env bash
# The main job, from a fresh clone: installs what is missing, builds, generates
# Criteo-format data, and trains the DLRM-style model on 2 MPI ranks with an
# evaluation at the end. Each run starts over (run.overwrite: the previous run's
# checkpoints in checkpoints/quickstart are replaced). Extra arguments override
# config keys, e.g.
#   launch/quickstart.sh --train.epochs=2
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
launch/install-deps.sh
launch/build.sh tandem_cli
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
data=checkpoints/quickstart-data/train.tsv  # configs/quickstart.ini reads it
if [[ ! -s $data ]]; then
  "$bin" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$data"
fi
TANDEM_BIN=$bin launch/mpirun.sh 2 train --config configs/quickstart.ini --run.overwrite=true "$@"
