#!/usr/bin/env bash
# Training throughput, Tandem against PyTorch, side by side in one run.
#   benchmarks/throughput.sh [ROUNDS=3] [STEPS=300]
# Same DLRM model (configs/quickstart.ini sizes), same generated data, same global
# batch and threads per rank; 1 rank and 2 ranks. PyTorch is Debian's python3-torch
# (the same LibTorch 1.13 Tandem links), run eagerly with DDP over gloo at 2 ranks,
# with dense and with sparse embedding gradients (Adagrad takes both); the faster
# is the anchor. Tandem runs with its own kernels and with ATen's (model.kernels).
# Rounds are interleaved and each figure is the median over rounds.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
steps=${2:-300}
source benchmarks/pytorch_env.sh
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
out=benchmarks/out
mkdir -p "$out"
data=$out/train.tsv
[[ -s $data ]] || "$bin" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$data" >/dev/null
cores=$(nproc)
results=$out/throughput.jsonl
: >"$results"

tandem_run() {  # ranks batch kernels
  local ranks=$1 batch=$2 kernels=$3 threads=$((cores / $1)) run=$out/tandem-$3-r$1-b$2
  local cmd=("$bin" train --config configs/quickstart.ini --data.train="$data" --run.dir="$run"
             --run.threads="$threads" --train.batch_size="$batch" --train.steps="$steps"
             --train.eval_every=0 --train.log_every=50 --model.kernels="$kernels"
             --run.overwrite=true)
  if ((ranks > 1)); then
    TANDEM_BIN=$bin launch/mpirun.sh "$ranks" "${cmd[@]:1}" >/dev/null
  else
    "${cmd[@]}" >/dev/null
  fi
  # Mean rate over the logged windows after the first (warm-up).
  $py - "$run/metrics.jsonl" "$ranks" "$batch" "$threads" "$kernels" <<'PY' >>"$results"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
rates = [e["samples_per_s"] for e in ev if e.get("event") == "train"][1:]
impl = "tandem" if sys.argv[5] == "tandem" else "tandem_aten"
print(json.dumps({"impl": impl, "ranks": int(sys.argv[2]), "batch": int(sys.argv[3]),
                  "threads": int(sys.argv[4]), "samples_per_s": len(rates) / sum(1 / r for r in rates)}))
PY
}

pytorch_run() {  # ranks batch sparse-flag
  local ranks=$1 batch=$2
  $py benchmarks/dlrm_pytorch.py --data "$data" --ranks "$ranks" --threads $((cores / ranks)) \
    --batch "$batch" --steps "$steps" --rows-limit 120000 ${3:-} >>"$results" 2>/dev/null
}

for ((r = 1; r <= rounds; ++r)); do
  for batch in 256 2048; do
    for ranks in 1 2; do
      tandem_run $ranks $batch tandem
      tandem_run $ranks $batch aten
      pytorch_run $ranks $batch --sparse
      pytorch_run $ranks $batch
    done
  done
done

$py - "$results" "$cores" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(impl, ranks, batch, sparse=None):
    v = [r["samples_per_s"] for r in rows if r["impl"] == impl and r["ranks"] == ranks
         and r["batch"] == batch and (sparse is None or r.get("sparse") == sparse)]
    return statistics.median(v) if v else float("nan")
torch_v = next(r["torch"] for r in rows if r["impl"] == "pytorch")
print(f"# training samples/s, DLRM quickstart model, {sys.argv[2]} cores; PyTorch {torch_v}")
print(f"# {'batch':>6} {'ranks':>5} {'thr/rank':>8} {'tandem':>10} {'t. aten':>10} {'pt sparse':>10} {'pt dense':>10} {'ratio':>7}")
for batch in (256, 2048):
    for ranks in (1, 2):
        t, ta = med("tandem", ranks, batch), med("tandem_aten", ranks, batch)
        s, d = med("pytorch", ranks, batch, True), med("pytorch", ranks, batch, False)
        print(f"  {batch:>6} {ranks:>5} {int(sys.argv[2]) // ranks:>8} {t:>10.0f} {ta:>10.0f} {s:>10.0f} {d:>10.0f} {t / max(s, d):>7.2f}")
print("# tandem: Tandem's kernels (default); t. aten: model.kernels=aten")
print("# ratio = tandem / the faster PyTorch variant (median of interleaved rounds)")
PY
