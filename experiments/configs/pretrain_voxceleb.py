"""Paper-scale tokenizer pretraining on VoxCeleb clip shards (the released model's shapes).

The data are the shards `dface-jax prepare-voxceleb --src DIR --out DIR` writes (256 px RGB
face crops); pass their directory with ``--config.data.dir=DIR``. The paper trains on about
1M pairs 8-15 frames apart for 800k steps. The batch size is not published; 256 (global) is
our choice for a TPU v4-32 / v5e-32 slice (see experiments/launch/tpu_pod.sh). This config
has not been run at scale here (no accelerators); the same code is tested on CPU with 8
forced devices and with two processes.

Variant ``gpu1``: one GPU, global batch 32.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dir = ""  # required: the VoxCeleb clip shards
    config.data.synthetic = False
    config.data.num_clips = 0  # unused (only for synthetic generation)
    config.data.num_frames = 0
    config.data.clips_per_shard = 256
    config.data.synth_seed = 0
    config.data.min_gap = 8  # paper: source and driving 8-15 frames apart
    config.data.max_gap = 15
    config.data.flip_prob = 0.5
    config.data.brightness = 0.05
    config.data.num_workers = 8
    config.data.seed = 0

    # The released LatentActionQuantization's shapes.
    config.tokenizer = ml_collections.ConfigDict(dict(
        image_size=256, channels=3, patch_size=16, dim=512, quant_dim=32, codebook_size=32,
        spatial_depth=6, temporal_depth=6, decoder_depth=6, heads=8, dim_head=64,
        code_seq_len=16, ff_mult=4.0, num_null_kv=2, released_token_layout=False,
        released_temporal_peg=False, quantizer="straight_through", codebook_update="loss",
        commitment_beta=0.25, ema_decay=0.99, recon_loss="mse", dtype="bfloat16"))

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 256
    config.train.num_steps = 800_000
    config.train.learning_rate = 3e-4
    config.train.warmup_steps = 5_000
    config.train.end_learning_rate_ratio = 0.1
    config.train.weight_decay = 0.0
    config.train.grad_clip = 0.5
    config.train.adam_b1 = 0.9
    config.train.adam_b2 = 0.99  # the LAPA / phenaki-pytorch optimizer default betas (0.9, 0.99)
    config.train.log_every = 100
    config.train.checkpoint_every = 5_000
    config.train.keep_checkpoints = 3
    config.train.restart_dead_codes_every = 1_000

    config.eval = ml_collections.ConfigDict()
    config.eval.identity_seed = 12345
    config.eval.num_identities = 24
    config.eval.probe_train_identities = 16
    config.eval.intensity = 1.0
    config.eval.nuisance = "clean"
    config.eval.batch_size = 32

    if arg == "gpu1":
        config.train.batch_size = 32
        config.data.num_workers = 4
    elif arg is not None:
        raise ValueError(f"unknown pretrain_voxceleb variant {arg!r}; use 'gpu1' or nothing")
    return config
