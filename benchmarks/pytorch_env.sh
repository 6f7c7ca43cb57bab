# Sourced by the benchmarks that compare against PyTorch: $py is Debian's Python
# with python3-torch (the same LibTorch 1.13 Tandem links), installed if missing.
py=/usr/bin/python3
if ! $py -c "import torch" 2>/dev/null; then
  sudo_=""; [[ $(id -u) == 0 ]] || sudo_=sudo
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends python3-torch >/dev/null
fi
