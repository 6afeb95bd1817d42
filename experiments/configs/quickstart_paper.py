"""The quickstart at paper scale: the released model's sizes on SynthFACS.

``dface-jax quickstart --workdir DIR --scale paper`` uses this file. It runs the same steps as
``quickstart_small.py`` with the paper-scale tokenizer (256 px, patch 16, width 512,
6 + 6 + 6 blocks of 8 heads; ``TokenizerConfig``'s defaults) pretrained for 100k steps and
the released classifier and LOSO schedule (``loso_composite.py``: 120 epochs, batch 16)
over 3 seeds. It needs an accelerator (hours on one GPU; untested on this project's
CPU-only machines). SynthFACS is grayscale, so the tokenizer reads 1 channel; the released
checkpoint reads RGB (see README "Use the released pretrained tokenizer").
"""

import ml_collections

from dface_jax.configs import load_config

IMAGE_SIZE = 256


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg is not None:
        raise ValueError(f"quickstart_paper has no variants, got {arg!r}")
    config = ml_collections.ConfigDict()
    config.scale = "paper"
    config.synth = ml_collections.ConfigDict(dict(seed=0, image_size=IMAGE_SIZE))
    config.prepare = ml_collections.ConfigDict(dict(image_size=IMAGE_SIZE, apex_rule="middle"))

    config.pretrain = load_config("pretrain_synthetic.py")
    config.pretrain.tokenizer.update(image_size=IMAGE_SIZE, channels=1, patch_size=16, dim=512,
                                     spatial_depth=6, temporal_depth=6, decoder_depth=6,
                                     heads=8, dim_head=64, dtype="bfloat16")
    config.pretrain.data.num_clips = 20000
    config.pretrain.data.num_frames = 32
    config.pretrain.data.min_gap = 8
    config.pretrain.data.max_gap = 15
    config.pretrain.train.num_steps = 100_000
    config.pretrain.train.warmup_steps = 2000
    config.pretrain.train.log_every = 100
    config.pretrain.train.checkpoint_every = 5000

    config.extract = ml_collections.ConfigDict(dict(batch_size=64, difference_size=64))
    config.loso = load_config("loso_composite.py")  # released settings, seeds 0, 1, 2

    config.report = ml_collections.ConfigDict(dict(top_k=4, num_faces=6))
    return config
