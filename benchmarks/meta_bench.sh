#!/usr/bin/env bash
# Meta-learning benchmarks, side by side in one run:
#   benchmarks/meta_bench.sh [ROUNDS=3]
# 1. Speed: second-order MAML meta-iterations per second on the paper's sinusoid
#    setting (MLP 1-40-40-1, meta-batch 25, K=10), 1 thread, against PyTorch eager
#    (Debian's python3-torch: the same LibTorch 1.13 Tandem links), written two ways
#    (benchmarks/maml_pytorch.py): the usual loop over the meta-batch's tasks (the
#    anchor), and all tasks batched as Tandem does. Rounds are interleaved; each
#    figure is the median.
# 2. Peak memory of one meta-iteration (bytes held by tensors, counted by
#    meta_bench's allocator) for MAML and FOMAML with 1, 5 and 10 inner steps.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
rounds=${1:-3}
source benchmarks/pytorch_env.sh
launch/build.sh meta_bench >/dev/null
bench=${TANDEM_BUILD_DIR:-$repo/build}/bin/meta_bench
out=benchmarks/out
mkdir -p "$out"
results=$out/meta.jsonl
: >"$results"

for ((r = 0; r < rounds; r++)); do
  for steps in 1 5; do
    "$bench" --algorithm maml --inner-steps $steps --iterations $((1000 / steps)) >>"$results"
    $py benchmarks/maml_pytorch.py --inner-steps $steps --iterations $((100 / steps)) >>"$results"
    $py benchmarks/maml_pytorch.py --batched --inner-steps $steps --iterations $((500 / steps)) >>"$results"
  done
done
for algorithm in maml fomaml; do
  for steps in 1 5 10; do
    "$bench" --algorithm $algorithm --inner-steps $steps --iterations 20 >>"$results"
  done
done

$py - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
torch_v = next(r["torch"] for r in rows if r["impl"].startswith("pytorch"))
def med(impl, steps, algorithm="maml"):
    return statistics.median(r["iterations_per_s"] for r in rows if r["impl"] == impl
                             and r["inner_steps"] == steps and r.get("algorithm", "maml") == algorithm)
print(f"# second-order MAML, sinusoid, meta-batch 25, K=10, 1 thread; PyTorch {torch_v}")
print("| inner steps | Tandem it/s | PyTorch loop it/s | PyTorch batched it/s | Tandem / loop (anchor) | Tandem / batched |")
print("|---:|---:|---:|---:|---:|---:|")
for steps in (1, 5):
    t, l, b = med("tandem", steps), med("pytorch-loop", steps), med("pytorch-batched", steps)
    print(f"| {steps} | {t:.0f} | {l:.1f} | {b:.0f} | {t / l:.1f}x | {t / b:.2f}x |")
print()
print("# peak bytes held by tensors during one meta-iteration (meta-batch 25, K=10)")
print("| inner steps | MAML | FOMAML |")
print("|---:|---:|---:|")
peak = {(r["algorithm"], r["inner_steps"]): r["peak_bytes"] for r in rows if "peak_bytes" in r}
for steps in (1, 5, 10):
    print(f"| {steps} | {peak[('maml', steps)] / 2**20:.2f} MiB | {peak[('fomaml', steps)] / 2**20:.2f} MiB |")
PY
