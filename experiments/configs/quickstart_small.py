"""The quickstart at CPU scale: the whole method on SynthFACS in minutes on 2 CPU cores.

``dface-jax quickstart --out DIR`` (``--size small``, the default) uses this file.
Choices, all to fit a budget of minutes on a 2-core CPU (12.0 min measured), none tuned to
the results table:
  * 64 px gray frames everywhere (SynthFACS renders, the TFDS build, the tokenizer);
  * the tokenizer of ``pretrain_synthetic.py`` as it is (1600 steps of batch 16 on 768
    SynthFACS talking clips, about 9 minutes here); a narrower 300-step tokenizer fitted
    a 5-minute budget but collapsed to 2 codes, which made the LOSO step meaningless;
  * LOSO over the 68 composite subjects with the ``loso_composite.py:synth`` model on a
    10-epoch fixed schedule, and the comparison (D-FACE, ablations, pixel baseline) with
    one seed.

Variants: ``quickstart_small.py:tiny`` shrinks every stage further (32 px, a handful of
steps and epochs, one seed); it exists for the slow end-to-end test and proves only that
the pipeline runs.
"""

import ml_collections

from dface_jax.configs import load_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "tiny"):
        raise ValueError(f"unknown quickstart_small variant {arg!r}; use 'tiny' or nothing")
    tiny = arg == "tiny"
    image_size = 32 if tiny else 64

    config = ml_collections.ConfigDict()
    config.size = "small"
    config.synth = ml_collections.ConfigDict(dict(seed=0, image_size=image_size))
    config.prepare = ml_collections.ConfigDict(dict(image_size=image_size, apex_rule="middle"))

    config.pretrain = load_config("pretrain_synthetic.py:tiny" if tiny else "pretrain_synthetic.py")
    config.pretrain.tokenizer.image_size = image_size
    config.extract = ml_collections.ConfigDict(dict(batch_size=64, difference_size=32))
    config.loso = load_config("loso_composite.py:tiny" if tiny else "loso_composite.py:synth")
    if not tiny:
        # 10 epochs instead of the synth variant's 30: five sweeps (D-FACE, three ablations,
        # the pixel baseline) must fit the budget; measured, one 30-epoch sweep alone took
        # 860 s wall on this (heavily shared) 2-core machine.
        config.loso.train.epochs = 10
    # One seed for the time budget, so the table's spreads are 0 and its "loses" verdicts
    # are single-run comparisons; --config.loso.compare.seeds=(0,1,2) gives the spread.
    config.loso.compare.seeds = (0,)

    config.report = ml_collections.ConfigDict(dict(top_k=4, num_faces=4))
    return config
