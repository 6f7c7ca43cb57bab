#!/usr/bin/env bash
# Compiles every Tandem source against PyTorch 2.x's LibTorch with CUDA (the GPU
# machine's: 2.11.0+cu130), here, without a GPU: the code must build against both
# Debian's LibTorch 1.13 and PyTorch 2.x, and the CUDA-LibTorch paths
# (TANDEM_TORCH_CUDA) only compile there. Downloads the wheel from the Python
# package index into .whl/ (about 530 MB), configures build-torch2/ with CUDA on
# (needs the CUDA toolkit, e.g. /usr/local/cuda) and builds every object file.
# Nothing is linked: the wheel's CUDA libraries (cuDNN, NVSHMEM...) are not here.
#   launch/compile-check-torch2.sh [VERSION=2.11.0]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
version=${1:-2.11.0}
py=${PYTHON:-python3}
mkdir -p .whl
wheel=$(ls .whl/torch-"$version"-*.whl 2>/dev/null | head -n 1 || true)
if [[ -z $wheel ]]; then
  "$py" -m pip download "torch==$version" --no-deps --only-binary=:all: -d .whl >/dev/null
  wheel=$(ls .whl/torch-"$version"-*.whl | head -n 1)
fi
if [[ ! -d .whl/torch-$version/torch ]]; then
  "$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
    "$wheel" ".whl/torch-$version"
fi
build=build-torch2
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$repo/.whl/torch-$version/torch/share/cmake" | grep "Tandem "
objects=$(cd "$build" && ninja -t targets all | grep -oE '^[^:]+\.(cpp|cu)\.o' | sort -u)
(cd "$build" && ninja $objects)
echo "compile check against LibTorch $version: every object built"
