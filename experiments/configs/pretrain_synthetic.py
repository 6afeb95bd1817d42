"""Pretrain the action tokenizer on SynthFACS talking-face clips (the VoxCeleb stand-in).

Variants (``--config pretrain_synthetic.py:VARIANT``):
  (none)  64 px gray, a small tokenizer; 800 steps train in about 4 minutes on a shared
          2-core CPU and give the model ``eval-tokenizer`` scores against the issue's targets.
  tiny    32 px, one block per Transformer, a few steps: for tests.

If ``data.dir`` is empty the clips are generated into ``WORKDIR/data`` on the first run.

Departures from the release in the default (each a TokenizerConfig field; see
dface_jax/models/tokenizer.py): ``predict_residual`` (the decoder outputs driving -
source), ``still_pair_reference`` (action latent minus the (source, source) latent),
straight-through quantizer with ``commitment_beta`` 0.005: with the pixel MSE of an
action at ~1e-3, the default beta 0.25 made the commitment term ~100x the reconstruction
term and squeezed the encoder's latents onto a few codes.

Measured 2026-11-24 on this machine (2 cores shared with other jobs; clips of
data.synth_seed 1, the default; ``dface-jax eval-tokenizer``, 24 held-out people, talking
nuisance): 800 steps in 3 min 57 s wall, 177 s user + 75 s system CPU, 1.4 GB RSS.
  recon_l1 0.0129 (copying the source: 0.0046); on the pixels the action moved
  (3.7 %): 0.1145 (copying: 0.1199); still_pair_l1 0.0077
  transfer_error_ratio 1.077 (target <= 0.5; l1 ratio 2.77)
  action_probe_accuracy 0.69 (target >= 0.9; chance 0.10)
  codes_in_use 32 (target >= 24), perplexity 8.0
Targets 1-3 of the issue are NOT met: the decoder barely moves the action's pixels, and
away from them it adds noise-sized changes (it learns to denoise the source: training
pairs have independent sensor noise and a head drift that talking_clips does not let us
turn off, while eval pairs share their noise and do not drift). Before these changes
(1500 steps, frame-predicting decoder, beta 0.25): recon_l1 0.100, probe 0.04, transfer
ratio 15.9, 32 codes.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.dir = ""  # clip shards; "" = WORKDIR/data, generated from SynthFACS
    config.data.synthetic = True  # generate SynthFACS clips when the shard dir is empty
    config.data.num_clips = 768
    config.data.num_frames = 16
    config.data.clips_per_shard = 128
    config.data.synth_seed = 1
    # Frame-to-frame head jitter of the rendered clips (1 = SynthFACS's default nuisance).
    config.data.pose_jitter = 0.0
    # Slow head drift across a clip (1 = SynthFACS's talking_clips default).
    config.data.pose_drift = 1.0
    # Pair sampling: the paper takes VoxCeleb frames 8-15 apart (25 fps); SynthFACS
    # actions change faster per frame, so short clips use shorter gaps.
    config.data.min_gap = 2
    config.data.max_gap = 10
    config.data.flip_prob = 0.5
    config.data.brightness = 0.05
    config.data.num_workers = 0
    config.data.seed = 0

    # Small enough for a 2-core CPU: 8x8 patches of 8 px, width 64, one spatial and one
    # temporal block, two decoder blocks (about 8 GFLOP per step of 32 pairs, XLA count).
    config.tokenizer = ml_collections.ConfigDict(dict(
        image_size=64, channels=1, patch_size=8, dim=64, quant_dim=32, codebook_size=32,
        spatial_depth=1, temporal_depth=1, decoder_depth=2, heads=2, dim_head=32,
        code_seq_len=16, ff_mult=4.0, num_null_kv=2, released_token_layout=False,
        released_temporal_peg=False, quantizer="straight_through", codebook_update="loss",
        commitment_beta=0.005, ema_decay=0.99, recon_loss="mse",
        # 30 raised the probe to 0.33 but tripled the error on still faces (800-step runs
        # with the nsvq quantizer, no still-pair reference).
        recon_change_weight=0.0,
        predict_residual=True, still_pair_reference=True,
        dtype="float32"))  # "bfloat16" on TPU/GPU; params stay float32

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 16  # global; divided over processes and devices
    config.train.num_steps = 800
    # The released defaults are lr 3e-4, wd 0, clip 0.5 (pretrain_voxceleb.py keeps them);
    # this small model on a CPU budget of minutes trains faster with 1e-3.
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 50
    config.train.end_learning_rate_ratio = 0.1
    config.train.weight_decay = 0.0
    config.train.grad_clip = 0.5
    config.train.adam_b1 = 0.9
    config.train.adam_b2 = 0.99  # the LAPA / phenaki-pytorch optimizer default betas (0.9, 0.99)
    config.train.log_every = 50
    config.train.checkpoint_every = 100
    config.train.keep_checkpoints = 2
    # Codes unused over the last 20 steps get a current encoder output: with longer windows
    # a codebook that collapses after the first steps still counts its early uses as alive.
    config.train.restart_dead_codes_every = 20  # 0 = never

    # eval-tokenizer: held-out SynthFACS identities.
    config.eval = ml_collections.ConfigDict()
    config.eval.identity_seed = 12345  # identities never drawn for training clips
    config.eval.num_identities = 24
    config.eval.probe_train_identities = 16
    config.eval.intensity = 1.0
    config.eval.nuisance = "talking"  # "clean" or "talking" (the training clips' nuisance)
    config.eval.batch_size = 64

    if arg == "tiny":
        config.data.num_clips = 24
        config.data.num_frames = 8
        config.data.clips_per_shard = 8
        config.data.min_gap = 1
        config.data.max_gap = 4
        config.tokenizer.update(image_size=32, patch_size=8, dim=32, spatial_depth=1,
                                temporal_depth=1, decoder_depth=1, heads=2, dim_head=16)
        config.train.batch_size = 8
        config.train.num_steps = 20
        config.train.warmup_steps = 2
        config.train.log_every = 5
        config.train.checkpoint_every = 10
        config.train.restart_dead_codes_every = 10
        config.eval.num_identities = 6
        config.eval.probe_train_identities = 4
        config.eval.batch_size = 32
    elif arg is not None:
        raise ValueError(f"unknown pretrain_synthetic variant {arg!r}; use 'tiny' or nothing")
    return config
