"""Converters from the authors' released PyTorch checkpoints to dface-jax parameters.

- :mod:`dface_jax.convert.state_dict`: read a state dict from ``.npz`` / ``.safetensors``
  (numpy only) or ``.pt`` (needs ``pip install dface-jax[torch]``) and check its keys and
  shapes against what a model expects.
- :mod:`dface_jax.convert.tokenizer`: ``LatentActionQuantization`` -> ``ActionTokenizer``.
- :mod:`dface_jax.convert.classifier`: ``VQCodeTransformer`` -> ``TokenClassifier``.
"""

from dface_jax.convert.state_dict import (StateDictMismatchError, check_keys_and_shapes,
                                          load_state_dict, strip_prefix)

__all__ = ["StateDictMismatchError", "check_keys_and_shapes", "load_state_dict", "strip_prefix"]
