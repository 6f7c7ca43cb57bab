# Sourced by benchmarks/anchors.sh: $anchors_py is a Python in a virtual environment
# (benchmarks/out/anchors-venv, made once and kept) with the current PyTorch from
# the Python package index and the embedding libraries CTR models use on CPUs:
# FBGEMM's CPU build (fbgemm-gpu-cpu) and TorchRec. PyPI's torch wheel is its CUDA
# build and imports only with its nvidia-* libraries, so the environment takes about
# 8 GB (a one-time download of about 4 GB); nothing in it needs a GPU.
anchor_versions=(torch==2.14.1 fbgemm-gpu-cpu==1.9.0 torchrec==1.9.2)
anchors_venv=${ANCHORS_VENV:-$repo/benchmarks/out/anchors-venv}
anchors_py=$anchors_venv/bin/python
anchors_ready=$anchors_venv/.ready-$(IFS=-; echo "${anchor_versions[*]}")
if [[ ! -f $anchors_ready ]]; then
  echo "anchors: installing ${anchor_versions[*]} into $anchors_venv (once)" >&2
  if ! python3 -m venv --help >/dev/null 2>&1; then
    sudo_=""; [[ $(id -u) == 0 ]] || sudo_=sudo
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  rm -rf "$anchors_venv"
  python3 -m venv "$anchors_venv"
  pip_=("$anchors_py" -m pip install -q --disable-pip-version-check)
  "${pip_[@]}" "${anchor_versions[0]}" "${anchor_versions[1]}"
  # TorchRec's own dependencies, but not fbgemm-gpu (the CUDA build), which would
  # overwrite fbgemm-gpu-cpu's files.
  "${pip_[@]}" --no-deps "${anchor_versions[2]}"
  "${pip_[@]}" pyre-extensions tensordict torchmetrics tqdm
  "$anchors_py" -c "import torch, fbgemm_gpu, torchrec" >&2
  touch "$anchors_ready"
fi
