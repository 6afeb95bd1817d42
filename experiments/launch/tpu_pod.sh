#!/usr/bin/env bash
# Paper-scale pretraining on a multi-host Cloud TPU slice. UNTESTED HERE: this machine has no
# TPU. What is tested on CPU is the same program: jit over a `data` mesh (8 forced devices
# equal 1 device to 1e-5) and two processes with jax.distributed.initialize, each feeding its
# own shard of every batch, ending with equal parameters (tests/test_sharding.py).
#
# Every host runs the same command; `--distributed` calls jax.distributed.initialize(), which
# finds the coordinator from the TPU metadata. The workdir and the shards are gs:// URIs (or
# a filesystem every host mounts at the same path): Orbax writes one checkpoint together
# from all hosts, each host saves its own Grain iterator position, process 0 alone writes
# the config, manifest and metrics, and a preempted slice resumes from the bucket.
# gs:// is tested against a fake bucket (tests/test_gcs.py), not a real one. Write the shards
# once with `dface-jax prepare-voxceleb --manual-dir VOX --data-dir gs://...` (its input tree is local).
#
#   TPU_NAME=my-v5e-32 ZONE=us-west4-a SHARDS=gs://my-bucket/voxceleb \
#     WORKDIR=gs://my-bucket/runs/tok experiments/launch/tpu_pod.sh
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}" "${SHARDS:?set SHARDS}" "${WORKDIR:?set WORKDIR}"
REPO_URL="${REPO_URL:-https://github.com/your-org/dface-jax.git}"

gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone "$ZONE" --worker=all --command "
  set -e
  test -d dface-jax || git clone $REPO_URL dface-jax
  cd dface-jax
  pip install -q -e '.[gcs]' 'jax[tpu]>=0.10,<0.11' -f https://storage.googleapis.com/jax-releases/libtpu_releases.html
  dface-jax pretrain --distributed --no-progress \
    --config experiments/configs/pretrain_voxceleb.py --workdir '$WORKDIR' \
    --config.data.dir='$SHARDS' $*
"
