#!/usr/bin/env bash
# Paper-scale pretraining on ONE GPU. UNTESTED HERE: this machine has no GPU. The code path
# is the one tested on CPU (jit over a 1-device mesh); what is untested is the CUDA install,
# bf16 numerics at this scale and the throughput.
#   pip install -U "jax[cuda12]>=0.10,<0.11"      # instead of the CPU wheel
#   experiments/launch/single_gpu.sh /data/voxceleb_shards runs/voxceleb_gpu1
set -euo pipefail
SHARDS="${1:?usage: single_gpu.sh SHARD_DIR WORKDIR}"
WORKDIR="${2:?usage: single_gpu.sh SHARD_DIR WORKDIR}"
shift 2
# Let XLA take most of the GPU memory up front (its default) but leave room for Grain workers.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
dface-jax pretrain --config experiments/configs/pretrain_voxceleb.py:gpu1 --workdir "$WORKDIR" \
  --config.data.dir="$SHARDS" "$@"
