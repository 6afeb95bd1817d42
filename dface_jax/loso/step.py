"""One LOSO fold's training pieces: the settings, the model contract, the loss and the
pure per-fold functions (init, batches, train step, evaluation).

Both sweeps (:mod:`dface_jax.loso.sweep`: all folds vmapped, and the sequential
reference) are built from the same :class:`FoldFunctions`, with the keys of
:mod:`dface_jax.loso.folds`, so they give the same result to float tolerance.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dface_jax.configs import ConfigError, dataclass_from_dict
from dface_jax.loso.folds import class_weights as balanced_class_weights
from dface_jax.loso.folds import epoch_batches
from dface_jax.models.losses import classifier_loss


LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class LosoTrainConfig:
    """Optimisation and loss settings shared by every fold (released defaults).

    Attributes:
      epochs: passes over each fold's training set (fixed schedule).
      batch_size: clips per step per fold.
      learning_rate, beta1, beta2, weight_decay: AdamW.
      lr_schedule: ``"constant"`` (the release) or ``"cosine"`` (decays to 0 over the
        whole schedule, so the final epoch, which the honest protocol scores, is trained
        with a small step).
      pooling_entropy_weight: weight of the model's ``pooling_entropy`` output (the
        release's "sparsity" penalty).
      edclip_weight: weight of the EDCLIP loss (0 disables it).
      edclip_temperature, others_margin, others_weight: EDCLIP parameters.
      tokenizer_loss_weight: weight of the tokenizer's own loss (reconstruction + quantizer)
        when the model fine-tunes the tokenizer jointly (the release's 0.1); unused otherwise.
      class_weights: fixed cross-entropy weights [K], in label order, for every fold (the
        released CAS(ME)^3 script's [3.84, 1.16, 0.46, 1.39]); empty: each fold's own
        class-balanced weights ``n_train / (K n_c)`` (``folds.class_weights``).
      seed: root of every fold's rng.
    """

    epochs: int = 120
    batch_size: int = 16
    learning_rate: float = 2e-4
    beta1: float = 0.85
    beta2: float = 0.98
    weight_decay: float = 1e-5
    lr_schedule: str = "constant"
    pooling_entropy_weight: float = 1e-3
    edclip_weight: float = 0.3
    edclip_temperature: float = 0.07
    others_margin: float = 0.2
    others_weight: float = 0.2
    tokenizer_loss_weight: float = 0.1
    class_weights: tuple[float, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"train.epochs and train.batch_size must be >= 1, got "
                             f"{self.epochs} and {self.batch_size}")
        # A config read back from JSON gives a list; the frozen dataclass must stay hashable.
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if any(w < 0 for w in self.class_weights):
            raise ValueError(f"train.class_weights must be >= 0, got {self.class_weights}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got "
                             f"{self.lr_schedule!r}")

    @classmethod
    def from_dict(cls, values: dict) -> "LosoTrainConfig":
        return dataclass_from_dict(cls, values)


class LosoData(NamedTuple):
    """The clips every fold reads (device arrays, shared by all folds).

    Attributes:
      inputs: float32 [N, ...] model inputs (action vectors [N, 16, D] or frame
        differences [N, h, w, C]).
      labels: int32 [N] class indices.
      label_to_anchor: int32 [K] EDCLIP anchor row of each class, -1 for ``others``
        (``edclip.anchor_rows(label_names)``).
    """

    inputs: jax.Array
    labels: jax.Array
    label_to_anchor: jax.Array


class TrainState(NamedTuple):
    """One fold's training state; ``model_state`` holds the model's variable collections
    other than params (``{"batch_stats": ...}`` for STSTNet's BatchNorm, ``{}`` for the
    others), updated by training steps, not by the optimizer."""

    params: Any
    opt_state: Any
    step: jax.Array
    model_state: Any


@dataclasses.dataclass(frozen=True)
class LosoModel:
    """A Linen module the loop can train: ``module(inputs, train=...)`` returns logits
    [B, K] or a dict with ``logits`` and optionally ``text_features`` [B, D_text],
    ``attention`` [B, L], ``pooling_entropy`` (scalar) and ``tokenizer_loss`` (scalar, training
    only); dropout uses the ``"dropout"`` rng, the NSVQ quantizer the ``"nsvq"`` rng.

    ``pretrained`` maps top-level param names to params that replace the random init of
    every fold (the pretrained tokenizer when it is fine-tuned jointly). The sweeps pass it
    to their compiled programs as an argument, so a large tokenizer is not baked into the
    program as constants."""

    module: nn.Module
    num_classes: int
    pretrained: dict | None = None

    def init_variables(self, key: jax.Array, example_input: jax.Array,
                       pretrained: dict | None = None) -> tuple[dict, dict]:
        """Every fold's initial (params, model_state): the module's init, with
        ``pretrained`` (default ``self.pretrained``) swapped into the params;
        ``model_state`` is every other variable collection (e.g. ``batch_stats``), ``{}``
        for most models."""
        variables = dict(self.module.init(key, example_input, train=False))
        params = dict(variables.pop("params"))
        pretrained = self.pretrained if pretrained is None else pretrained
        for name, value in (pretrained or {}).items():
            if name not in params:
                raise KeyError(f"pretrained params {name!r} do not belong to "
                               f"{type(self.module).__name__} (its params: {sorted(params)})")
            params[name] = jax.tree.map(jnp.asarray, value)
        return params, variables

    def init_params(self, key: jax.Array, example_input: jax.Array,
                    pretrained: dict | None = None) -> dict:
        """The params of :meth:`init_variables`."""
        return self.init_variables(key, example_input, pretrained)[0]

    def apply(self, params, inputs: jax.Array, *, train: bool, dropout_key: jax.Array | None = None,
              model_state: dict | None = None) -> dict[str, jax.Array]:
        """The model's outputs (a dict with ``logits``). With a non-empty ``model_state``
        and ``train``, the updated state (new BatchNorm running statistics) is returned
        under ``"model_state"``."""
        rngs = ({} if dropout_key is None else
                {"dropout": dropout_key, "nsvq": jax.random.fold_in(dropout_key, 1)})
        model_state = dict(model_state or {})
        mutable = sorted(model_state) if train and model_state else False
        raw = self.module.apply({"params": params, **model_state}, inputs, train=train,
                                rngs=rngs, mutable=mutable)
        updated = None
        if mutable:
            raw, updated = raw
        outputs = dict(raw) if isinstance(raw, dict) else {"logits": raw}
        if updated is not None:
            outputs["model_state"] = dict(updated)
        if "logits" not in outputs:
            raise ValueError(f"{type(self.module).__name__} returned {sorted(outputs)}; "
                             "the LOSO loop needs a 'logits' entry")
        # A model without attention pooling (the pixel baseline) has no entropy term.
        outputs.setdefault("pooling_entropy", jnp.zeros((), jnp.float32))
        return outputs


def loss_terms(outputs: dict[str, jax.Array], labels: jax.Array, class_weights: jax.Array,
               anchors: jax.Array | None, label_to_anchor: jax.Array, config: LosoTrainConfig
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total = class-weighted CE + pooling_entropy_weight * pooling entropy + edclip_weight *
    EDCLIP (``losses.classifier_loss``; ``others`` clips are those with ``label_to_anchor < 0``)
    + tokenizer_loss_weight * the model's ``tokenizer_loss`` when it has one (joint
    fine-tuning; its action vectors are detached, so this term trains the tokenizer only).

    Args:
      outputs: the model's dict for a batch (logits [B, K], text_features, pooling_entropy).
      labels: int32 [B]. class_weights: [K] (all ones for unweighted CE).
      anchors: [A, D_text] emotion anchors, or None when EDCLIP is off.
      label_to_anchor: int32 [K] anchor row of each class (``edclip.anchor_rows``).
    Returns:
      (scalar total, dict of the scalar terms).
    """
    total, terms = classifier_loss(outputs, labels, anchors if config.edclip_weight > 0 else None,
                                   label_to_anchor, class_weights=class_weights,
                                   pooling_entropy_weight=config.pooling_entropy_weight,
                                   edclip_weight=config.edclip_weight,
                                   temperature=config.edclip_temperature,
                                   others_margin=config.others_margin,
                                   others_weight=config.others_weight)
    if "tokenizer_loss" in outputs:
        terms = {**terms, "tokenizer": outputs["tokenizer_loss"]}
        total = total + config.tokenizer_loss_weight * outputs["tokenizer_loss"]
    return total, terms


def fold_class_weights(config: LosoTrainConfig, train_mask: jax.Array, labels: jax.Array,
                       num_classes: int) -> jax.Array:
    """float32 [K] cross-entropy weights of one fold: ``config.class_weights`` when given,
    else the fold's class-balanced weights (train_mask bool [N], labels int32 [N])."""
    if config.class_weights:
        return jnp.asarray(config.class_weights, jnp.float32)
    return balanced_class_weights(train_mask, labels, num_classes)


class FoldFunctions(NamedTuple):
    """The pure single-fold pieces; both sweep orchestrations are built from them."""

    init: Callable          # (fold_key, pretrained) -> TrainState
    batches: Callable       # (fold_key, epoch, train_mask) -> int32 [S, B]
    train_step: Callable    # (state, batch_index [B], fold_key, class_weights, data, anchors) -> (state, loss)
    # (params, model_state, test_index [T], data) -> dict(logits [T, K], attention?)
    evaluate: Callable


def fold_functions(model: LosoModel, config: LosoTrainConfig, example_input: jax.Array,
                   num_steps: int) -> FoldFunctions:
    """Builds the per-fold pieces for ``model`` (``example_input``: one clip [1, ...])."""
    if config.class_weights and len(config.class_weights) != model.num_classes:
        raise ConfigError(f"train.class_weights has {len(config.class_weights)} weights; the "
                          f"token cache has {model.num_classes} classes (one weight per class, "
                          "in label order)")
    if config.edclip_weight > 0:
        def probe_outputs():
            params, model_state = model.init_variables(jax.random.PRNGKey(0), example_input)
            return model.apply(params, example_input, train=False, model_state=model_state)

        probe = jax.eval_shape(probe_outputs)
        if "text_features" not in probe:
            raise ValueError(f"train.edclip_weight={config.edclip_weight} but "
                             f"{type(model.module).__name__} has no text_features output; "
                             "set --config.train.edclip_weight=0 for this model")
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = optax.cosine_decay_schedule(config.learning_rate,
                                                    decay_steps=config.epochs * num_steps)
    optimizer = optax.adamw(learning_rate, b1=config.beta1, b2=config.beta2,
                            weight_decay=config.weight_decay)

    def split_key(fold_key):
        init_key, sample_key, dropout_key = jax.random.split(fold_key, 3)
        return init_key, sample_key, dropout_key

    def init(fold_key, pretrained):
        init_key, _, _ = split_key(fold_key)
        params, model_state = model.init_variables(init_key, example_input, pretrained)
        return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), model_state)

    def batches(fold_key, epoch, train_mask):
        _, sample_key, _ = split_key(fold_key)
        return epoch_batches(jax.random.fold_in(sample_key, epoch), train_mask, num_steps,
                             config.batch_size)

    def train_step(state, batch_index, fold_key, class_weights, data, anchors):
        _, _, dropout_key = split_key(fold_key)
        step_key = jax.random.fold_in(dropout_key, state.step)
        inputs, labels = data.inputs[batch_index], data.labels[batch_index]

        def objective(params):
            outputs = model.apply(params, inputs, train=True, dropout_key=step_key,
                                  model_state=state.model_state)
            model_state = outputs.pop("model_state", state.model_state)
            loss, _ = loss_terms(outputs, labels, class_weights, anchors, data.label_to_anchor,
                                 config)
            return loss, model_state

        (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1, model_state), loss

    def evaluate(params, model_state, test_index, data):
        outputs = model.apply(params, data.inputs[test_index], train=False,
                              model_state=model_state)
        kept = {"logits": outputs["logits"].astype(jnp.float32)}
        if "attention" in outputs:
            kept["attention"] = outputs["attention"].astype(jnp.float32)
        return kept

    return FoldFunctions(init, batches, train_step, evaluate)

