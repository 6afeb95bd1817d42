"""A LOSO experiment from a config and a token cache: the model (D-FACE's token classifier,
optionally fine-tuning the tokenizer jointly, or an image baseline: the pixel CNN,
STSTNet, OFF-ApexNet), its inputs (token order as cached or shuffled per clip; the
baselines' images from the cache) and the EDCLIP text anchors."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np

from dface_jax.configs import ConfigError
from dface_jax.loso.step import LosoData, LosoModel, LosoTrainConfig
from dface_jax.models.edclip import anchor_rows, class_prompts
from dface_jax.models.flow_baselines import OFFApexNet, OFFApexNetConfig, STSTNet, STSTNetConfig
from dface_jax.models.pixel_baseline import PixelBaselineCNN, PixelBaselineConfig
from dface_jax.models.text_encoder import encode_prompts
from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
from dface_jax.tokens.cache import TokenCacheError, require_flow


@dataclasses.dataclass(frozen=True)
class ImageBaseline:
    """A baseline CNN trained by the LOSO loop from images in the token cache.

    Attributes:
      module: the Linen module class, built as ``module(config)``.
      config: its frozen config dataclass, read from the LOSO config section named like
        the model kind (``config.pixel``, ``config.ststnet``, ``config.off_apexnet``).
      inputs: ``(cache, source) -> float32 [N, h, w, C]``; ``source`` names the cache
        file in errors.
    """

    module: type
    config: type
    inputs: Callable[[dict, str], np.ndarray]


def _flow_inputs(with_strain: bool) -> Callable[[dict, str], np.ndarray]:
    def inputs(cache: dict, source: str) -> np.ndarray:
        require_flow(cache, source)
        fields = [cache["optical_flow"]] + ([cache["optical_strain"]] if with_strain else [])
        return np.concatenate([np.asarray(f, np.float32) for f in fields], axis=-1)
    return inputs


IMAGE_BASELINES = {
    "pixel": ImageBaseline(PixelBaselineCNN, PixelBaselineConfig,
                           lambda cache, source: np.asarray(cache["frame_difference"], np.float32)),
    "ststnet": ImageBaseline(STSTNet, STSTNetConfig, _flow_inputs(with_strain=True)),
    "off_apexnet": ImageBaseline(OFFApexNet, OFFApexNetConfig, _flow_inputs(with_strain=False)),
}

MODEL_KINDS = ("dface",) + tuple(IMAGE_BASELINES)

TOKEN_ORDERS = ("original", "shuffled_per_clip")


@dataclasses.dataclass
class LosoExperiment:
    """Everything one sweep needs, built from a config and a token cache."""

    model: LosoModel
    train_config: LosoTrainConfig
    data: LosoData
    anchors: np.ndarray | None
    text_encoder: dict | None  # encode_prompts' info (model, semantic, warning) or None


def shuffle_tokens_per_clip(action_vectors: np.ndarray, seed: int) -> np.ndarray:
    """[N, L, D] -> [N, L, D] with each clip's L positions permuted by its own fixed random
    permutation (drawn once from ``seed``; the same at training and test time).

    Per-clip, not one permutation for all clips: with learned position embeddings, one
    global permutation is only a relabelling of positions the model can learn equally
    well, so it would not test whether token order carries information.
    """
    rng = np.random.default_rng(seed)
    orders = np.argsort(rng.random(action_vectors.shape[:2]), axis=1)
    return np.take_along_axis(action_vectors, orders[:, :, None], axis=1)


def build_experiment(config, cache: dict, *, text_encoder_dir: str | None = None,
                     source: str = "token cache") -> LosoExperiment:
    """Builds the model, data and text anchors of ``config`` (a LOSO config, see
    ``experiments/configs/loso_composite.py``) over the token ``cache`` (read from
    ``source``, named in errors); the EDCLIP anchors come from ``text_encoder_dir``, else
    the config's ``text_encoder_dir``."""
    if config.model not in MODEL_KINDS:
        raise ConfigError(f"config.model={config.model!r}; expected one of {MODEL_KINDS}")
    if config.token_order not in TOKEN_ORDERS:
        raise ConfigError(f"config.token_order={config.token_order!r}; expected one of "
                          f"{TOKEN_ORDERS}")
    label_names = tuple(str(n) for n in cache["label_names"])
    num_classes = len(label_names)
    train_config = LosoTrainConfig.from_dict(config.train.to_dict())
    anchors, text_info, pretrained = None, None, None
    if config.model in IMAGE_BASELINES:
        baseline = IMAGE_BASELINES[config.model]
        if train_config.edclip_weight > 0:
            raise ConfigError(f"the {config.model} baseline has no text head: set "
                              "train.edclip_weight=0")
        if config.token_order != "original":
            raise ConfigError(f"token_order applies to token models, not the {config.model} "
                              "baseline")
        if config.model not in config:  # a config file written before this baseline existed
            raise ConfigError(f"config has no {config.model!r} section (the {config.model} "
                              "baseline's settings); add it as experiments/configs/"
                              "loso_composite.py does")
        module = baseline.module(baseline.config.from_dict(
            dict(config[config.model].to_dict(), num_classes=num_classes)))
        inputs = baseline.inputs(cache, source)
    else:
        text_encoder_dir = text_encoder_dir or (config.text_encoder_dir or None)
        try:  # a config.json of a run made before prompt sets existed has no prompt_set
            prompts = class_prompts(label_names, config.get("prompt_set", ""))
        except KeyError as err:
            raise ConfigError(str(err.args[0])) from None
        anchors, text_info = encode_prompts(prompts, text_encoder_dir,
                                            random_width=config.text_random_width)
        vectors = np.asarray(cache["action_vectors"], np.float32)
        classifier_config = ClassifierConfig.from_dict(dict(
            config.classifier.to_dict(), num_classes=num_classes, seq_len=vectors.shape[1],
            input_dim=vectors.shape[2], text_dim=anchors.shape[1]))
        if finetunes_tokenizer(config):
            module, inputs, pretrained = _joint_model(config, cache, classifier_config)
        else:
            inputs = vectors
            if config.token_order == "shuffled_per_clip":
                inputs = shuffle_tokens_per_clip(inputs, config.token_shuffle_seed)
            module = TokenClassifier(classifier_config)
    data = LosoData(jnp.asarray(inputs), jnp.asarray(cache["labels"], jnp.int32),
                    jnp.asarray(anchor_rows(label_names)))
    return LosoExperiment(LosoModel(module, num_classes, pretrained), train_config, data,
                          None if anchors is None else np.asarray(anchors, np.float32), text_info)


def finetunes_tokenizer(config) -> bool:
    """Whether a LOSO config (or a run's saved config.json) fine-tunes the tokenizer jointly."""
    return bool(config.finetune_tokenizer)


def _joint_model(config, cache: dict, classifier_config):
    """(TokenizerAndClassifier, pair frames [N, 2, H, W, C], {"tokenizer": params}) for
    ``config.finetune_tokenizer``: the tokenizer of ``config.tokenizer_workdir`` (default:
    the one that wrote the cache) trains on with the classifier (models/joint.py)."""
    from dface_jax.models.joint import TokenizerAndClassifier
    from dface_jax.workdir import restore_tokenizer

    if config.token_order != "original":
        raise ConfigError("finetune_tokenizer encodes the frames on the fly; the token-order "
                         "ablation applies to cached tokens only (token_order='original')")
    if "pair_frames" not in cache:
        raise TokenCacheError("the token cache has no 'pair_frames': finetune_tokenizer needs "
                              "the clips' frames; write the cache with `dface-jax "
                              "extract-tokens --keep-frames`")
    workdir = config.tokenizer_workdir or str(cache["tokenizer_workdir"])
    params, tokenizer_config = restore_tokenizer(workdir)
    module = TokenizerAndClassifier(tokenizer_config, classifier_config)
    return module, np.asarray(cache["pair_frames"], np.float32), {"tokenizer": params}


def resolved_config(config, experiment: LosoExperiment):
    """``config`` with ``classifier`` completed by the fields taken from the data
    (num_classes, seq_len, input_dim, text_dim), so ``ClassifierConfig.from_dict(
    config.classifier)`` of the saved config.json rebuilds the trained model."""
    resolved = config.copy_and_resolve_references()
    module = experiment.model.module
    if config.model == "dface" and finetunes_tokenizer(config):
        resolved.classifier = ml_collections.ConfigDict(module.classifier_config.to_dict())
        resolved.tokenizer = ml_collections.ConfigDict(module.tokenizer_config.to_dict())
    elif config.model == "dface":
        resolved.classifier = ml_collections.ConfigDict(module.config.to_dict())
    else:
        resolved[config.model] = ml_collections.ConfigDict(
            dataclasses.asdict(experiment.model.module.config))
    return resolved

