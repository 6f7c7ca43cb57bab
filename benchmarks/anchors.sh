#!/usr/bin/env bash
# Tandem against the strongest CPU anchors, side by side in one run:
#   benchmarks/anchors.sh [ROUNDS=3] [SAMPLES=400000] [BATCHES="256 2048 8192"]
# The quickstart model (configs/quickstart.ini: 26 tables of 20,000 x 16, MLPs
# 64-32 / 64-32, Adagrad 0.05) on the same generated data: 200,000 training rows and
# 20,000 held-out rows. Each run trains SAMPLES samples (steps = SAMPLES / batch).
#   1 rank x all cores: Tandem (model.kernels=tandem) against the current PyTorch
#     (benchmarks/anchors_env.sh) with one sparse nn.EmbeddingBag per table, one
#     stacked sparse nn.EmbeddingBag, FBGEMM's table-batched embedding with fused
#     row-wise Adagrad, and TorchRec's FusedEmbeddingBagCollection;
#   2 ranks x half the cores: Tandem under mpirun against PyTorch DDP over gloo with
#     the stacked sparse nn.EmbeddingBag, the fastest embedding DDP can replicate
#     (one sparse table per table all-reduces 26 sparse gradients: 4-5x slower).
# The anchors' data is parsed into memory before timing; Tandem parses as it trains.
# Rounds interleave every variant; figures are medians over rounds. Samples/s is
# the harmonic mean of Tandem's logged windows after the first, and for PyTorch its
# timed steps after a warm-up of a tenth. Beside the speed: the mean training loss
# over the first and last tenth of the steps and the log loss on the held-out rows.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
samples=${2:-400000}
batches=(${3:-256 2048 8192})
source benchmarks/anchors_env.sh
launch/build.sh tandem_cli >/dev/null
bin=${TANDEM_BUILD_DIR:-$repo/build}/bin/tandem
out=benchmarks/out/anchors
mkdir -p "$out"
if [[ ! -s $out/eval.tsv ]]; then
  "$bin" generate --rows 220000 --seed 7 --cardinalities 20000 --out "$out/all.tsv" >/dev/null
  head -n 200000 "$out/all.tsv" >"$out/train.tsv"
  tail -n 20000 "$out/all.tsv" >"$out/eval.tsv"
  rm "$out/all.tsv"
fi
cores=$(nproc)
results=$out/results.jsonl
: >"$results"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)

tandem_run() {  # ranks batch
  local ranks=$1 batch=$2 steps=$((samples / $2)) threads=$((cores / $1)) run=$out/tandem-r$1-b$2
  local window=$(((samples / batch + 9) / 10))
  local args=(train --config configs/quickstart.ini --data.train="$out/train.tsv"
              --data.eval="$out/eval.tsv" --run.dir="$run" --run.threads="$threads"
              --train.batch_size="$batch" --train.steps="$steps"
              --train.eval_every=0 --train.log_every="$window" --ckpt.at_end=false
              --run.overwrite=true)
  if ((ranks > 1)); then
    TANDEM_BIN=$bin launch/mpirun.sh "$ranks" "${args[@]}" >"$run.log" 2>&1
  else
    "$bin" "${args[@]}" >"$run.log" 2>&1
  fi || { echo "anchors: tandem at $ranks rank(s), batch $batch failed: $(tail -n 2 "$run.log")" >&2; exit 1; }
  "$anchors_py" - "$run/metrics.jsonl" "$ranks" "$batch" "$threads" <<'PY' >>"$results"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
train = [e for e in ev if e.get("event") == "train"]
rates = [e["samples_per_s"] for e in train][1:]
final = [e for e in ev if e.get("event") == "final"][-1]
print(json.dumps({"impl": "tandem", "ranks": int(sys.argv[2]), "batch": int(sys.argv[3]),
                  "threads": int(sys.argv[4]), "samples_per_s": len(rates) / sum(1 / r for r in rates),
                  "first_loss": train[0]["loss"], "last_loss": train[-1]["loss"],
                  "eval_logloss": final["logloss"]}))
PY
}

pytorch_run() {  # ranks batch embedding
  local steps=$((samples / $2))
  "$anchors_py" benchmarks/dlrm_pytorch.py --data "$out/train.tsv" --eval "$out/eval.tsv" \
    --rows-limit 200000 --ranks "$1" --threads $((cores / $1)) --batch "$2" \
    --steps $((steps - (steps + 9) / 10)) --warmup $(((steps + 9) / 10)) --embedding "$3" \
    >>"$results" 2>"$out/pytorch.err" ||
    { echo "anchors: PyTorch $3 at $1 rank(s), batch $2 failed: $(tail -n 2 "$out/pytorch.err")" >&2; exit 1; }
}

for ((r = 1; r <= rounds; ++r)); do
  for batch in "${batches[@]}"; do
    echo "anchors: round $r/$rounds, batch $batch" >&2
    tandem_run 1 "$batch"
    for e in sparse stacked tbe torchrec; do pytorch_run 1 "$batch" $e; done
    tandem_run 2 "$batch"
    pytorch_run 2 "$batch" stacked
  done
done

"$anchors_py" - "$results" "$cores" "$cpu" "${batches[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cores, cpu, batches = int(sys.argv[2]), sys.argv[3], [int(b) for b in sys.argv[4:]]
torch_v = next(r["torch"] for r in rows if r["impl"] == "pytorch")
def pick(name, ranks, batch):
    impl, emb = ("tandem", None) if name == "tandem" else ("pytorch", name)
    return [r for r in rows if r["impl"] == impl and r["ranks"] == ranks and r["batch"] == batch
            and (emb is None or r["embedding"] == emb)]
def med(name, ranks, batch, key="samples_per_s"):
    v = [r[key] for r in pick(name, ranks, batch)]
    return statistics.median(v) if v else float("nan")
names = {1: ["tandem", "sparse", "stacked", "tbe", "torchrec"], 2: ["tandem", "stacked"]}
label = {"tandem": "Tandem", "sparse": "EmbeddingBag per table", "stacked": "stacked EmbeddingBag",
         "tbe": "FBGEMM TBE", "torchrec": "TorchRec FusedEBC"}
print(f"CPU: {cpu}, {cores} cores; PyTorch {torch_v}; medians of {len(pick('tandem', 1, batches[0]))} rounds")
for ranks in (1, 2):
    cols = names[ranks]
    print(f"\n{ranks} rank(s) x {cores // ranks} thread(s){', PyTorch under DDP (gloo)' if ranks > 1 else ''}: samples/s")
    print("| batch | " + " | ".join(label[c] for c in cols) + " | Tandem / best |")
    print("|---:|" + "---:|" * (len(cols) + 1))
    for b in batches:
        rates = [med(c, ranks, b) for c in cols]
        print(f"| {b} | " + " | ".join(f"{v:,.0f}" for v in rates) + f" | {rates[0] / max(rates[1:]):.2f}x |")
    print(f"\n{ranks} rank(s): loss over the first / last tenth of the steps, held-out log loss (medians)")
    print("| batch | " + " | ".join(label[c] for c in cols) + " |")
    print("|---:|" + "---|" * len(cols))
    for b in batches:
        cells = [f"{med(c, ranks, b, 'first_loss'):.3f} / {med(c, ranks, b, 'last_loss'):.3f} / "
                 f"{med(c, ranks, b, 'eval_logloss'):.4f}" for c in cols]
        print(f"| {b} | " + " | ".join(cells) + " |")
PY
