#!/usr/bin/env bash
# The GPU machine's check, in one go: one NVIDIA GPU, PyTorch's LibTorch (2.x, CUDA),
# no apt, MPI, Boost or GoogleTest there. It unpacks the Debian packages carried in
# .deps/ (launch/fetch-gpu-deps.sh makes them) under /tmp, builds Tandem against
# PyTorch's LibTorch with MPI off, runs the CTest suite (the kernel tests then run
# on the GPU too), the kernel tests once more on their own to show that CUDA was
# not skipped, and the GPU kernel benchmark, and prints one table.
#   device run: carry [".deps"], command "launch/gpu-check.sh"
# Output also goes to $OUT (when set): gpu-check.log and the CTest log.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-/tmp/tandem-gpu-check}
mkdir -p "$out"
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
echo "== machine: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
echo "== torch: $("$py" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available())')"
echo "== compiler: $(c++ --version | head -n 1); nvcc: $(nvcc --version | tail -n 1)"

t0=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_WITH_MPI=OFF \
  -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DBoost_DIR="$arch/cmake/Boost-1.74.0" -Dfmt_DIR="$arch/cmake/fmt" \
  -Dnlohmann_json_DIR="$deps/usr/share/cmake/nlohmann_json" -DGTest_DIR="$arch/cmake/GTest" \
  -Dbenchmark_DIR="$arch/cmake/benchmark" >"$out/configure.log" 2>&1
configure=$?
build_rc=1
if ((configure == 0)); then
  cmake --build "$build" --parallel "$(nproc)" >"$out/build.log" 2>&1
  build_rc=$?
fi
t1=$(date +%s)
export LD_LIBRARY_PATH=$arch${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
test_rc=1
if ((build_rc == 0)); then
  (cd "$build" && ctest --output-on-failure >"$out/ctest.log" 2>&1)
  test_rc=$?
fi
kernels_rc=1 bench_rc=1
if ((build_rc == 0)); then
  "$build/tests/tandem_tests" --gtest_filter='EmbeddingBag*:LayerNorm*:Moments*:KernelBackends*' \
    >"$out/kernel-tests.log" 2>&1
  kernels_rc=$?
  "$build/bin/kernels_cuda_bench" >"$out/kernels-cuda-bench.md" 2>&1
  bench_rc=$?
fi
t2=$(date +%s)

echo "== results"
printf '%-34s %-8s %s\n' "step" "result" "detail"
printf '%-34s %-8s %s\n' "configure (MPI off, PyTorch LibTorch)" "$([[ $configure == 0 ]] && echo ok || echo FAIL)" "$(grep -o 'Tandem .*' "$out/configure.log" | head -n 1)"
printf '%-34s %-8s %s\n' "build" "$([[ $build_rc == 0 ]] && echo ok || echo FAIL)" "$((t1 - t0)) s"
if [[ -f $out/ctest.log ]]; then
  grep -E '^ *[0-9]+/[0-9]+ Test' "$out/ctest.log" | sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: //' |
    awk '{ r = /Passed/ ? "ok" : /Skipped/ ? "skipped" : "FAIL"; printf "%-34s %-8s %s %s\n", "test " $1, r, $(NF-1), $NF }'
  grep -E 'tests passed' "$out/ctest.log"
fi
if [[ -f $out/kernel-tests.log ]]; then
  printf '%-34s %-8s %s\n' "kernel tests (CPU + CUDA)" "$([[ $kernels_rc == 0 ]] && echo ok || echo FAIL)" \
    "$(grep -E '^\[  PASSED  \]' "$out/kernel-tests.log") $(grep -cE '^\[  SKIPPED \] [A-Za-z]' "$out/kernel-tests.log") skipped"
  grep -E '^\[  (FAILED|SKIPPED) \] [A-Za-z]|Failure|Expected|actual' "$out/kernel-tests.log" | head -n 20
fi
if [[ -f $out/kernels-cuda-bench.md ]]; then
  echo "== kernels_cuda_bench"
  cat "$out/kernels-cuda-bench.md"
fi
[[ -x $build/bin/tandem ]] && echo "== $("$build/bin/tandem" --version)"
if ((configure != 0)); then tail -n 30 "$out/configure.log"; fi
if ((configure == 0 && build_rc != 0)); then grep -E 'error|FAILED' "$out/build.log" | head -n 30; fi
exit $((configure || build_rc || test_rc || kernels_rc || bench_rc))
