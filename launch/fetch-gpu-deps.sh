#!/usr/bin/env bash
# Here (a Debian machine with apt): downloads into .deps/ the Debian packages that
# the GPU machine lacks (Boost.Program_options, fmt, nlohmann-json, GoogleTest,
# Google Benchmark), for launch/gpu-check.sh to unpack there. .deps/ is git-ignored;
# name it in the device run's `carry`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$repo/.deps"
cd "$repo/.deps"
rm -f ./*.deb
apt-get download libboost1.74-dev libboost-program-options1.74-dev libboost-program-options1.74.0 \
  nlohmann-json3-dev libfmt-dev libfmt9 libgtest-dev libbenchmark-dev libbenchmark1debian 2>/dev/null
ls -1 "$repo/.deps"
