"""LOSO on CASME II alone, 5 classes (happiness, disgust, repression, surprise, others; the
label order is the token cache's ``label_names``): 26 subjects, 255 clips in the real set.

The model and training settings are those of ``loso_composite.py`` (same variants: none =
released, ``synth`` = CPU scale, ``tiny`` = tests). ``others`` has no EDCLIP prompt: its
clips are pushed away from every emotion anchor.
"""

import ml_collections

from dface_jax.configs import load_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = load_config("loso_composite.py" if arg is None else f"loso_composite.py:{arg}")
    config.dataset = "casme2"
    return config
