#!/usr/bin/env bash
# Tokenizer pretraining on this CPU (tested here): SynthFACS clips are rendered into
# $WORKDIR/data on the first run, then ~10 minutes of training on 2 cores, then the
# held-out evaluation. Re-running resumes from the latest checkpoint in $WORKDIR.
#   experiments/launch/cpu.sh [WORKDIR] [--config.field=value ...]
set -euo pipefail
WORKDIR="${1:-runs/pretrain_synthetic}"
shift || true
export JAX_PLATFORMS=cpu
dface-jax pretrain --config experiments/configs/pretrain_synthetic.py --workdir "$WORKDIR" "$@"
dface-jax eval-tokenizer --workdir "$WORKDIR" --out "$WORKDIR/eval_tokenizer.json"
