"""Pretrain the action tokenizer on SynthFACS talking-face clips (the VoxCeleb stand-in).

Variants (``--config pretrain_synthetic.py:VARIANT``):
  (none)  64 px gray, a small tokenizer, 1600 steps: the quickstart's tokenizer (minutes on
          a 2-core CPU).
  long    the warping head, each training clip's head at its own spot, 6400 steps.
  tiny    32 px, one block per Transformer, a few steps: for tests.

If ``data.dir`` is empty the clips are rendered into ``WORKDIR/data`` on the first run.
Every run tried, what it changed and what it measured: docs/results/tokenizer_runs.md.
"""

import ml_collections

from data_pipelines.talking_faces.augment import PairAugment
from dface_jax.configs import section
from dface_jax.models.tokenizer import TokenizerConfig
from dface_jax.pretrain.data import DataConfig
from dface_jax.pretrain.evaluate import EvalConfig
from dface_jax.pretrain.step import OptimizerConfig

VARIANTS = (None, "long", "tiny")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in VARIANTS:
        raise ValueError(f"unknown pretrain_synthetic variant {arg!r}; use one of {VARIANTS}")
    config = ml_collections.ConfigDict()
    config.seed = 0
    # Short clips: SynthFACS actions change faster per frame than VoxCeleb's, so the pairs
    # are 2-10 frames apart instead of the paper's 8-15.
    config.data = section(DataConfig, synthetic=True, clips_per_shard=128, min_gap=2,
                          max_gap=10, num_workers=0)
    # Small enough for a 2-core CPU: 8x8 patches of 8 px, width 128 (4 heads of 32), one
    # spatial and one temporal block, two decoder blocks; the decoder predicts the change
    # and the still pair is subtracted. Commitment 0.005, not 0.25: with the pixel MSE of an
    # action at ~1e-3, 0.25 made the commitment term ~100x the reconstruction term and
    # squeezed the encoder's latents onto a few codes.
    config.tokenizer = section(
        TokenizerConfig, image_size=64, channels=1, patch_size=8, dim=128, spatial_depth=1,
        temporal_depth=1, decoder_depth=2, heads=4, dim_head=32, commitment_beta=0.005,
        predict_residual=True, still_pair_reference=True)
    # lr 3e-3 trains this small model faster within minutes than the released 3e-4.
    config.train = section(OptimizerConfig, batch_size=16, num_steps=1600, learning_rate=3e-3,
                           warmup_steps=50, log_every=50, checkpoint_every=100,
                           keep_checkpoints=2, restart_dead_codes_every=20)
    config.augment = section(PairAugment)  # framing, appearance, local motion: all off
    config.eval = section(EvalConfig)
    if arg == "long":
        config.tokenizer.decoder_warp = True
        config.data.head_placement = 1.0
        config.train.num_steps = 6400
    elif arg == "tiny":
        config.data.update(num_clips=24, num_frames=8, clips_per_shard=8, min_gap=1, max_gap=4)
        config.tokenizer.update(image_size=32, dim=32, decoder_depth=1, heads=2, dim_head=16)
        config.train.update(batch_size=8, num_steps=20, learning_rate=1e-3, warmup_steps=2,
                            log_every=5, checkpoint_every=10, restart_dead_codes_every=10)
        config.eval.update(num_identities=6, probe_train_identities=4, batch_size=32)
    return config
