#!/usr/bin/env bash
# The GPU machine's check, in one go: one NVIDIA GPU, PyTorch's LibTorch (2.x, CUDA),
# no apt, MPI, Boost or GoogleTest there. It unpacks the Debian packages carried in
# .deps/ (launch/fetch-gpu-deps.sh makes them) under /tmp, builds Tandem against
# PyTorch's LibTorch with MPI off, runs the CTest suite (the kernel tests then run
# on the GPU too), the kernel and NCCL tests once more on their own to show that
# CUDA was not skipped, the GPU kernel benchmark, the NCCL table at world size 1, a
# GPU training over 5 seeds that must learn and match the CPU's NE, and training throughput on
# the GPU against PyTorch eager with the step-time breakdown; prints one table.
#   device run: carry [".deps"], command "launch/gpu-check.sh", timeout_s 400
#   GPU_CHECK=tests launch/gpu-check.sh: the build and the tests only (a rerun after
#   a fix: 259 s there, 98 of them the build)
#   (on an H200 machine with 16 cores, 2026-12-04: 324 s, 89 of them the build)
# Output also goes to $OUT (when set): gpu-check.log, and every step's log in logs.tgz.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-/tmp/tandem-gpu-check}
logs=/tmp/tandem-gpu-logs  # packed into $out/logs.tgz at the end: $OUT returns 8 files at most
rm -rf "$logs"
mkdir -p "$out" "$logs"
exec > >(tee "$out/gpu-check.log") 2>&1
py=${PYTHON:-python3}
deps=/tmp/tandem-deps
build=/tmp/tandem-gpu-build

# Debian packages are ar archives holding data.tar.*; unpack them without dpkg.
"$py" - "$deps" .deps/*.deb <<'PY'
import io, sys, tarfile
dest = sys.argv[1]
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    pos = 8  # "!<arch>\n"
    while pos < len(data):
        name = data[pos:pos + 16].decode().strip().rstrip("/")
        size = int(data[pos + 48:pos + 58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            tarfile.open(fileobj=io.BytesIO(body)).extractall(dest)
        pos += 60 + size + (size & 1)
PY
arch=$deps/usr/lib/x86_64-linux-gnu
torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')
# The NCCL PyTorch loads (its pip package), so one NCCL serves both.
nccl_home=$("$py" -c 'import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null) &&
  [[ -f $nccl_home/include/nccl.h ]] && export NCCL_HOME=$nccl_home
echo "== machine: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
echo "== torch: $("$py" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())')"
echo "== compiler: $(c++ --version | head -n 1); nvcc: $(nvcc --version | tail -n 1)"
echo "== NCCL: ${NCCL_HOME:-from the CUDA toolkit}"

only_tests=$([[ ${GPU_CHECK:-all} == tests ]] && echo 1 || echo 0)
step() { echo "-- $(date +%T) $*"; }  # progress, in case the run is cut short
t0=$(date +%s)
step configure and build
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_WITH_MPI=OFF -DTANDEM_WITH_HDF5=OFF \
  -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DBoost_DIR="$arch/cmake/Boost-1.74.0" -Dfmt_DIR="$arch/cmake/fmt" \
  -Dnlohmann_json_DIR="$deps/usr/share/cmake/nlohmann_json" -DGTest_DIR="$arch/cmake/GTest" \
  -Dbenchmark_DIR="$arch/cmake/benchmark" >"$logs/configure.log" 2>&1
configure=$?
build_rc=1
if ((configure == 0)); then
  cmake --build "$build" --parallel "$(nproc)" \
    --target tandem_cli tandem_tests $( ((only_tests)) || echo kernels_cuda_bench comm_bench) \
    >"$logs/build.log" 2>&1
  build_rc=$?
fi
t1=$(date +%s)
export LD_LIBRARY_PATH=$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
test_rc=1
if ((build_rc == 0)); then
  step ctest
  (cd "$build" && ctest -j 4 --output-on-failure >"$logs/ctest.log" 2>&1)
  test_rc=$?
fi
kernels_rc=1 bench_rc=1 nccl_rc=1 train_rc=1 tput_rc=1
tandem=$build/bin/tandem
if ((build_rc == 0)); then
  "$build/tests/tandem_tests" \
    --gtest_filter='EmbeddingBag*:LayerNorm*:Interaction*:Moments*:KernelBackends*:NcclComm*' \
    >"$logs/kernel-tests.log" 2>&1
  kernels_rc=$?
fi
if ((only_tests)); then
  bench_rc=0 nccl_rc=0 train_rc=0 tput_rc=0
elif ((build_rc == 0)); then
  step kernel benchmark and NCCL table
  "$build/bin/kernels_cuda_bench" >"$logs/kernels-cuda-bench.md" 2>&1
  bench_rc=$?
  "$build/bin/comm_bench" --backend nccl --table-only --max-mb 256 >"$logs/nccl-table.txt" 2>&1
  nccl_rc=$?

  # End to end on the GPU: the quickstart model on 200k generated rows must learn,
  # and train as well as on the CPU. Same math, other summation order: over seeds
  # 1-5, paired by seed, |mean(NE on GPU - NE on CPU)| < 0.02. The CPU's NE over
  # seeds 1-12 (Intel Xeon model 207, 2026-11-29) had sd 0.0068; two runs of one
  # seed that differ only in rounding differ by at most as much as two seeds do, so
  # the paired difference has sd <= sqrt(2) * 0.0068 and its mean over 5 seeds a
  # standard error <= 0.0043: 0.02 is 4.6 of them.
  step GPU and CPU training
  data=/tmp/tandem-gpu-data/train.tsv
  "$tandem" generate --rows 200000 --seed 7 --cardinalities 20000 --out "$data" >/dev/null
  : >"$logs/gpu-cpu-ne.txt"
  final_ne() { tail -n 1 "$1/metrics.jsonl" 2>/dev/null | "$py" -c 'import json,sys; print(json.load(sys.stdin)["ne"])' 2>/dev/null; }
  for seed in 1 2 3 4 5; do
    for device in cuda cpu; do
      "$tandem" train --config configs/quickstart.ini --data.train="$data" --run.seed=$seed \
        --run.dir=/tmp/tandem-$device-run-$seed --train.device=$device --ckpt.at_end=false --run.overwrite=true \
        >"$logs/$device-train-$seed.log" 2>&1
    done
    echo "$seed $(final_ne /tmp/tandem-cuda-run-$seed) $(final_ne /tmp/tandem-cpu-run-$seed)" >>"$logs/gpu-cpu-ne.txt"
  done
  train_summary=$("$py" - "$logs/gpu-cpu-ne.txt" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
if any(len(r) != 3 for r in rows) or len(rows) != 5:
    print("a run failed"); sys.exit(1)
gpu, cpu = [float(r[1]) for r in rows], [float(r[2]) for r in rows]
d = sum(g - c for g, c in zip(gpu, cpu)) / len(rows)
print(f"NE GPU {' '.join(f'{g:.4f}' for g in gpu)}; CPU {' '.join(f'{c:.4f}' for c in cpu)}; mean GPU - CPU {d:+.4f}")
sys.exit(0 if sum(gpu) / 5 < 0.9 and max(gpu) < 0.98 and abs(d) < 0.02 else 1)
PY
) && train_rc=0

  # Throughput: Tandem (streaming and parsing its input) against PyTorch eager with the
  # data already on the GPU, sparse and dense embedding gradients; same model and batch.
  tput_rc=0
  : >"$logs/throughput.jsonl"
  # tandem_rate NAME BATCH [OPTION...]: 200 steps; the harmonic mean of the logged
  # windows after the first (warm-up).
  tandem_rate() {
    local name=$1 batch=$2 run=/tmp/tandem-gpu-tput-$1-$2
    shift 2
    "$tandem" train --config configs/quickstart.ini --data.train="$data" --run.dir="$run" \
      --train.device=cuda --train.batch_size=$batch --train.steps=200 --train.eval_every=0 \
      --train.log_every=50 --ckpt.at_end=false --run.overwrite=true "$@" >"$logs/tput-$name-$batch.log" 2>&1 || return 1
    "$py" - "$run/metrics.jsonl" "$name" $batch >>"$logs/throughput.jsonl" <<'PY'
import json, sys
rates = [e["samples_per_s"] for e in map(json.loads, open(sys.argv[1])) if e.get("event") == "train"][1:]
print(json.dumps({"impl": sys.argv[2], "batch": int(sys.argv[3]), "samples_per_s": len(rates) / sum(1 / r for r in rates)}))
PY
  }
  for batch in 4096 16384; do
    step throughput at batch $batch
    tandem_rate tandem $batch || tput_rc=1
    tandem_rate tandem-1-parser $batch --data.parse_threads=1 || tput_rc=1
    for sparse in --sparse ""; do
      "$py" benchmarks/dlrm_pytorch.py --data "$data" --device cuda --batch $batch --steps 100 \
        --rows-limit 100000 $sparse >>"$logs/throughput.jsonl" 2>>"$logs/pytorch.log" || tput_rc=1
    done
    "$tandem" train --config configs/quickstart.ini --data.train="$data" --run.dir=/tmp/tandem-gpu-profile-$batch \
      --train.device=cuda --train.batch_size=$batch --train.steps=100 --train.eval_every=0 \
      --train.log_every=100 --train.profile=true --ckpt.at_end=false --run.overwrite=true >"$logs/profile-$batch.log" 2>&1
  done
fi
t2=$(date +%s)

echo "== results"
printf '%-34s %-8s %s\n' "step" "result" "detail"
printf '%-34s %-8s %s\n' "configure (MPI off, PyTorch LibTorch)" "$([[ $configure == 0 ]] && echo ok || echo FAIL)" "$(grep -o 'Tandem .*' "$logs/configure.log" | head -n 1)"
printf '%-34s %-8s %s\n' "build" "$([[ $build_rc == 0 ]] && echo ok || echo FAIL)" "$((t1 - t0)) s (the checks after it: $((t2 - t1)) s)"
if [[ -f $logs/ctest.log ]]; then
  grep -E '^ *[0-9]+/[0-9]+ Test' "$logs/ctest.log" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //' |
    awk '{ r = /Passed/ ? "ok" : /Skipped/ ? "skipped" : "FAIL"; printf "%-34s %-8s %s %s\n", "test " $1, r, $(NF-1), $NF }'
  grep -E 'tests passed' "$logs/ctest.log"
  grep -E '^FAIL|^\[  FAILED  \]|Failure$|Error' "$logs/ctest.log" | head -n 20
fi
if [[ -f $logs/kernel-tests.log ]]; then
  skipped='^\[  SKIPPED \] [A-Za-z0-9_.]+$'  # GoogleTest's summary lines, not the per-test ones
  printf '%-34s %-8s %s\n' "kernel tests (CPU + CUDA)" "$([[ $kernels_rc == 0 ]] && echo ok || echo FAIL)" \
    "$(grep -E '^\[  PASSED  \]' "$logs/kernel-tests.log") $(grep -cE "$skipped" "$logs/kernel-tests.log") skipped"
  grep -E "$skipped|^\[  FAILED  \]|Failure|Expected|actual" "$logs/kernel-tests.log" | head -n 20
fi
if [[ -f $logs/kernels-cuda-bench.md ]]; then
  echo "== kernels_cuda_bench"
  cat "$logs/kernels-cuda-bench.md"
fi
if [[ -f $logs/nccl-table.txt ]]; then
  echo "== NCCL collectives, world size 1 ($([[ $nccl_rc == 0 ]] && echo ok || echo FAIL))"
  cat "$logs/nccl-table.txt"
fi
if [[ -f $logs/gpu-cpu-ne.txt ]]; then
  printf '%-34s %-8s %s\n' "GPU training, 5 seeds (learns, = CPU)" "$([[ $train_rc == 0 ]] && echo ok || echo FAIL)" "${train_summary:-?}"
  grep -E "bound to GPU" "$logs/cuda-train-1.log"
fi
if [[ -s $logs/throughput.jsonl ]]; then
  echo "== GPU training samples/s, quickstart model ($([[ $tput_rc == 0 ]] && echo ok || echo FAIL))"
  "$py" - "$logs/throughput.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| batch | tandem | tandem, 1 parser | pytorch sparse | pytorch dense | tandem / best pytorch |")
print("|---:|---:|---:|---:|---:|---:|")
for b in sorted({r["batch"] for r in rows}):
    get = lambda impl, sparse=None: next((r["samples_per_s"] for r in rows if r["batch"] == b and r["impl"] == impl and (sparse is None or r["sparse"] == sparse)), float("nan"))
    t, t1, s, d = get("tandem"), get("tandem-1-parser"), get("pytorch", True), get("pytorch", False)
    print(f"| {b} | {t:.0f} | {t1:.0f} | {s:.0f} | {d:.0f} | {t / max(s, d):.2f}x |")
PY
  grep "step time" "$logs"/profile-*.log | sed -E 's/.*profile-([0-9]+).log:/  batch \1:/'
fi
[[ -x $build/bin/tandem ]] && echo "== $("$build/bin/tandem" --version)"
tar czf "$out/logs.tgz" -C "$logs" .
if ((configure != 0)); then tail -n 30 "$logs/configure.log"; fi
if ((configure == 0 && build_rc != 0)); then grep -E 'error|FAILED' "$logs/build.log" | head -n 30; fi
exit $((configure || build_rc || test_rc || kernels_rc || bench_rc || nccl_rc || train_rc || tput_rc))
