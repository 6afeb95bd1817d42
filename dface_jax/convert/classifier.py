"""Released ``VQCodeTransformer`` state_dict -> :class:`TokenClassifier` parameters.

The release (models/Exp_CLIP.py) names its weights after PyTorch modules; this maps each key
to our tree and transposes Linear weights ([out, in] -> kernel [in, out]). PyTorch's fused
``in_proj_weight`` ([3*dim, dim], q then k then v) is our ``qkv`` Dense kernel transposed.
Keys may carry the ``module.`` prefix that ``DataParallel`` adds. A state dict whose keys or
shapes do not match the config is refused with the first mismatches listed.

The number of heads cannot be read from the weights (it only splits the fused projection),
so it is an argument; every other size is inferred.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dface_jax.convert.state_dict import (StateDictMismatchError, check_keys_and_shapes,
                                          linear_kernel, load_state_dict, strip_prefix)
from dface_jax.models.token_classifier import ClassifierConfig

_LAYER_PREFIX = "transformer.layers."


def expected_classifier_shapes(config: ClassifierConfig) -> dict[str, tuple[int, ...]]:
    """The released state_dict keys and PyTorch shapes for ``config``."""
    dim, mlp = config.dim, config.mlp_dim
    shapes = {
        "pos_embed": (1, config.seq_len, dim),
        "token_embed.weight": (dim, config.input_dim), "token_embed.bias": (dim,),
        "sparse_pool.query": (dim,), "sparse_pool.ln.weight": (dim,), "sparse_pool.ln.bias": (dim,),
        "clip_proj.0.weight": (config.text_dim, dim), "clip_proj.0.bias": (config.text_dim,),
        "cls_proj.0.weight": (config.num_classes, dim), "cls_proj.0.bias": (config.num_classes,),
    }
    for index in range(config.depth):
        prefix = f"{_LAYER_PREFIX}{index}."
        shapes.update({
            prefix + "self_attn.in_proj_weight": (3 * dim, dim),
            prefix + "self_attn.in_proj_bias": (3 * dim,),
            prefix + "self_attn.out_proj.weight": (dim, dim),
            prefix + "self_attn.out_proj.bias": (dim,),
            prefix + "linear1.weight": (mlp, dim), prefix + "linear1.bias": (mlp,),
            prefix + "linear2.weight": (dim, mlp), prefix + "linear2.bias": (dim,),
            prefix + "norm1.weight": (dim,), prefix + "norm1.bias": (dim,),
            prefix + "norm2.weight": (dim,), prefix + "norm2.bias": (dim,),
        })
    return shapes


def classifier_config_from_state_dict(state_dict: Mapping[str, np.ndarray], *, heads: int = 8,
                                      **overrides) -> ClassifierConfig:
    """Infers sizes (classes, seq_len, widths, depth, FFN) from the weights' shapes.

    ``heads`` (8 in the release) and any other field (``dropout``, ``pooling``) are given.
    """
    state_dict = strip_prefix(state_dict)
    needed = ("pos_embed", "token_embed.weight", "clip_proj.0.weight", "cls_proj.0.weight",
              f"{_LAYER_PREFIX}0.linear1.weight")
    missing = [key for key in needed if key not in state_dict]
    if missing:
        raise StateDictMismatchError(
            f"classifier state_dict lacks {missing}; is this a VQCodeTransformer "
                         f"checkpoint? (first keys: {sorted(state_dict)[:5]})")
    layer_indices = {int(key[len(_LAYER_PREFIX):].split(".")[0])
                     for key in state_dict if key.startswith(_LAYER_PREFIX)}
    _, seq_len, dim = state_dict["pos_embed"].shape
    values = dict(
        num_classes=state_dict["cls_proj.0.weight"].shape[0], seq_len=seq_len,
        input_dim=state_dict["token_embed.weight"].shape[1], dim=dim,
        depth=max(layer_indices) + 1, heads=heads,
        mlp_dim=state_dict[f"{_LAYER_PREFIX}0.linear1.weight"].shape[0],
        text_dim=state_dict["clip_proj.0.weight"].shape[0])
    values.update(overrides)
    return ClassifierConfig(**{key: (int(v) if isinstance(v, np.integer) else v)
                               for key, v in values.items()})


def _dense_params(state_dict: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    return {"kernel": linear_kernel(state_dict[key + ".weight"]), "bias": state_dict[key + ".bias"]}


def _norm_params(state_dict: Mapping[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    return {"scale": state_dict[key + ".weight"], "bias": state_dict[key + ".bias"]}


def convert_classifier(state_dict: Mapping[str, np.ndarray],
                       config: ClassifierConfig) -> dict:
    """Released state_dict (numpy arrays) -> ``{"params": ...}`` for ``TokenClassifier(config)``.

    Raises ``StateDictMismatchError`` (a ValueError) naming the first mismatching keys/shapes.
    """
    state_dict = {key: np.asarray(value, np.float32)
                  for key, value in strip_prefix(state_dict).items()}
    check_keys_and_shapes(expected_classifier_shapes(config), state_dict,
                          "VQCodeTransformer classifier")
    params = {
        "token_embed": _dense_params(state_dict, "token_embed"),
        "pos_embed": state_dict["pos_embed"],
        "sparse_pool": {"query": state_dict["sparse_pool.query"],
                        "ln": _norm_params(state_dict, "sparse_pool.ln")},
        "cls_proj": _dense_params(state_dict, "cls_proj.0"),
        "clip_proj": _dense_params(state_dict, "clip_proj.0"),
    }
    for index in range(config.depth):
        prefix = f"{_LAYER_PREFIX}{index}."
        params[f"layers_{index}"] = {
            "self_attn": {
                "qkv": {"kernel": linear_kernel(state_dict[prefix + "self_attn.in_proj_weight"]),
                        "bias": state_dict[prefix + "self_attn.in_proj_bias"]},
                "out": _dense_params(state_dict, prefix + "self_attn.out_proj"),
            },
            "norm1": _norm_params(state_dict, prefix + "norm1"),
            "norm2": _norm_params(state_dict, prefix + "norm2"),
            "linear1": _dense_params(state_dict, prefix + "linear1"),
            "linear2": _dense_params(state_dict, prefix + "linear2"),
        }
    return {"params": params}


def load_released_classifier(path, *, heads: int = 8, prefix: str = "",
                             **overrides) -> tuple[ClassifierConfig, dict]:
    """Reads a released classifier state dict (``.npz``, ``.safetensors`` or a torch file, see
    ``state_dict.load_state_dict``) -> (config, ``{"params": ...}``).

    ``prefix`` selects keys inside a larger archive (``"classifier/"`` in the parity fixture).
    """
    state_dict = load_state_dict(path, prefix=prefix)
    config = classifier_config_from_state_dict(state_dict, heads=heads, **overrides)
    return config, convert_classifier(state_dict, config)
