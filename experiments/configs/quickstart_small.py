"""The quickstart at CPU scale: the whole method on SynthFACS in minutes on 2 CPU cores.

``dface-jax quickstart --workdir DIR`` (``--size small``, the default) uses this file.
Choices, all to fit a budget of minutes on a 2-core CPU, none tuned to the results table:
64 px gray frames everywhere (SynthFACS renders, the TFDS build, the tokenizer); the
tokenizer of ``pretrain_synthetic.py`` as it is; LOSO over the 68 composite subjects with
the ``loso_composite.py:synth`` model, and the comparison (D-FACE, ablations, pixel CNN,
STSTNet, OFF-ApexNet) with one seed (``--config.loso.compare.seeds=(0,1,2)`` gives the
spread). ``loso.text_encoder_dir`` is empty: the quickstart then uses the installed
all-MiniLM-L6-v2 package if there is one (``dface_jax.quickstart.choose_text_encoder``).

Variant ``tiny`` shrinks every stage further (32 px, a handful of steps and epochs); it
exists for the end-to-end test and proves only that the pipeline runs.
"""

import ml_collections

from dface_jax.configs import load_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "tiny"):
        raise ValueError(f"unknown quickstart_small variant {arg!r}; use 'tiny' or nothing")
    tiny = arg == "tiny"
    image_size = 32 if tiny else 64

    config = ml_collections.ConfigDict()
    config.scale = "small"
    config.synth = ml_collections.ConfigDict(dict(seed=0, image_size=image_size))
    config.prepare = ml_collections.ConfigDict(dict(image_size=image_size, apex_rule="middle"))

    config.pretrain = load_config("pretrain_synthetic.py:tiny" if tiny else "pretrain_synthetic.py")
    config.pretrain.tokenizer.image_size = image_size
    config.extract = ml_collections.ConfigDict(dict(batch_size=64, difference_size=32))
    config.loso = load_config("loso_composite.py:tiny" if tiny else "loso_composite.py:synth")
    # One seed for the time budget, so the table's spreads are 0 and its "loses" verdicts
    # are single-run comparisons; --config.loso.compare.seeds=(0,1,2) gives the spread.
    config.loso.compare.seeds = (0,)

    config.report = ml_collections.ConfigDict(dict(top_k=4, num_faces=4))
    return config
