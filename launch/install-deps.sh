#!/usr/bin/env bash
# Installs, from Debian's packages, exactly the build and runtime dependencies that are
# missing. Idempotent: when everything is present it installs nothing and exits 0.
# No recommended packages are pulled in. CUDA/NCCL are not installed here: the build
# uses them from /usr/local/cuda when they are already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev                 # LibTorch 1.13 (CPU)
  libopenblas0-openmp          # Debian's default BLAS is the slow reference one
  openmpi-bin libopenmpi-dev
  libhdf5-dev                  # checkpoints
  libxxhash-dev                # their per-dataset checksum (XXH3, header-only use)
  python3-h5py python3-xxhash  # the interoperability test reads and checks them in Python
  libboost-program-options-dev
  libgtest-dev googletest
  libbenchmark-dev
  nlohmann-json3-dev
  libfmt-dev
  libprotobuf-dev protobuf-compiler  # TensorBoard event files
)
# Optional extras: Slurm for the real srun launcher tests; ip, unshare and nsenter
# for the multi-host tests' namespace hosts.
if [[ "${TANDEM_WITH_SLURM_TEST:-1}" == 1 ]]; then
  PACKAGES+=(slurmd slurmctld slurm-client munge)
fi
PACKAGES+=(iproute2 util-linux)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
