"""Leave-one-subject-out (LOSO) training of micro-expression classifiers, all folds at once.

Fold ``f`` holds out subject ``f`` (subjects sorted by name) and trains a fresh model on
every other subject. All folds train together: one pure per-fold program (init, then a
``lax.scan`` over epochs, each a ``lax.scan`` over steps followed by an evaluation of the
held-out clips) is ``jax.vmap``-ed over the fold axis and ``jax.jit``-compiled once, so a
68-fold sweep is one XLA program instead of a Python loop over 68 trainings.
:func:`train_folds_sequential` runs the same per-fold pieces with Python loops, one fold
after another; it exists only as the reference the vmapped sweep is tested against.

Minibatches (decision, so every fold does the same work per step):
  * ``class_balance="loss"`` or ``"none"``: each epoch, each fold draws its own random
    permutation of its *training* clips (per-fold rng); step ``s`` takes positions
    ``s*B .. s*B+B-1`` of it, modulo the fold's training count. Every fold runs
    ``ceil(max_f n_train_f / B)`` steps per epoch, so folds with fewer training clips
    (their held-out subject had more clips) revisit a few clips from the start of their
    permutation in the last step. With ``"loss"`` the cross-entropy is weighted by the
    fold's class-balanced weights ``n_train / (K * n_c)`` (a weighted mean, as PyTorch's
    ``CrossEntropyLoss(weight=...)``).
  * ``class_balance="sampling"``: each step draws ``B`` training clips with replacement
    with probability proportional to ``1 / n_c`` of their class; plain cross-entropy.

Protocol: a fixed schedule and the prediction of the final epoch (honest). The held-out
clips of every fold are also scored after every epoch, which costs one small forward pass,
so :func:`oracle_epochs` can reproduce the literature's per-subject choice of the epoch
with the best *test* result (the released D-FACE script: most correct, ties broken by the
subject's UAR + UF1; we break remaining ties by the earliest epoch). That number is
reported beside the honest one and labelled as such; it is not a valid estimate.

Random keys: ``fold_key = fold_in(PRNGKey(seed), f)``; from it the init key, the
per-epoch sampling key ``fold_in(sample_key, epoch)`` and the per-step dropout key
``fold_in(dropout_key, global_step)``. Both the vmapped and the sequential paths derive
them the same way, so they give the same result to float tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

CLASS_BALANCE_MODES = ("loss", "sampling", "none")


@dataclasses.dataclass(frozen=True)
class LosoTrainConfig:
    """Optimisation and loss settings shared by every fold (released defaults).

    Attributes:
      epochs: passes over each fold's training set (fixed schedule).
      batch_size: clips per step per fold.
      learning_rate, beta1, beta2, weight_decay: AdamW.
      class_balance: ``"loss"`` (class-weighted CE), ``"sampling"`` (class-balanced
        sampling, plain CE) or ``"none"``.
      sparsity_weight: weight of the model's ``sparsity`` output (pooling entropy).
      edclip_weight: weight of the EDCLIP loss (0 disables it).
      edclip_temperature, others_margin, others_weight: EDCLIP parameters.
      seed: root of every fold's rng.
    """

    epochs: int = 120
    batch_size: int = 16
    learning_rate: float = 2e-4
    beta1: float = 0.85
    beta2: float = 0.98
    weight_decay: float = 1e-5
    class_balance: str = "loss"
    sparsity_weight: float = 1e-3
    edclip_weight: float = 0.3
    edclip_temperature: float = 0.07
    others_margin: float = 0.2
    others_weight: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if self.class_balance not in CLASS_BALANCE_MODES:
            raise ValueError(f"train.class_balance must be one of {CLASS_BALANCE_MODES}, "
                             f"got {self.class_balance!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"train.epochs and train.batch_size must be >= 1, got "
                             f"{self.epochs} and {self.batch_size}")

    @classmethod
    def from_dict(cls, values: dict) -> "LosoTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config.train has unknown fields {unknown}; fields are {sorted(known)}")
        return cls(**values)


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


class FoldArrays(NamedTuple):
    """Per-fold index sets, leading axis F (one fold per held-out subject).

    Attributes:
      train_mask: bool [F, N], True where clip n trains fold f.
      test_index: int32 [F, T] indices of fold f's held-out clips, padded with 0 up to
        T = the largest number of clips of one subject.
      test_valid: bool [F, T], False on padding.
    """

    train_mask: np.ndarray
    test_index: np.ndarray
    test_valid: np.ndarray


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array


@dataclasses.dataclass(frozen=True)
class LosoModel:
    """A Linen module the loop can train: ``module(inputs, train=...)`` returns logits
    [B, K] or a dict with ``logits`` and optionally ``text_features`` [B, D_text],
    ``attention`` [B, L] and ``sparsity`` (scalar); dropout uses the ``"dropout"`` rng."""

    module: nn.Module
    num_classes: int

    def apply(self, params, inputs: jax.Array, *, train: bool, dropout_key: jax.Array | None = None
              ) -> dict[str, jax.Array]:
        rngs = {"dropout": dropout_key} if dropout_key is not None else {}
        raw = self.module.apply({"params": params}, inputs, train=train, rngs=rngs)
        outputs = dict(raw) if isinstance(raw, dict) else {"logits": raw}
        if "logits" not in outputs:
            raise ValueError(f"{type(self.module).__name__} returned {sorted(outputs)}; "
                             "the LOSO loop needs a 'logits' entry")
        # A model without attention pooling (the pixel baseline) has no sparsity term.
        outputs.setdefault("sparsity", jnp.zeros((), jnp.float32))
        return outputs


@dataclasses.dataclass
class LosoRun:
    """What a sweep produced (host numpy arrays).

    Attributes:
      held_out_subjects: F subject names, fold f holds out ``held_out_subjects[f]``.
      fold_params: the final params of every fold, leading axis F.
      epoch_logits: float32 [E, N, K], each clip's logits after every epoch, from the one
        fold that held it out.
      attention: float32 [N, L] final pooling weights of each clip (None if the model
        has no attention output).
      train_loss: float32 [F, E] mean training loss of each fold and epoch.
      steps_per_epoch: steps every fold ran per epoch.
    """

    held_out_subjects: list[str]
    fold_params: Any
    epoch_logits: np.ndarray
    attention: np.ndarray | None
    train_loss: np.ndarray
    steps_per_epoch: int


# ----------------------------------------------------------------------------- folds

def make_folds(subjects: Sequence[str]) -> tuple[list[str], FoldArrays]:
    """One fold per distinct subject (sorted), holding that subject's clips out.

    Args:
      subjects: [N] subject name of each clip.
    Returns:
      (held-out subject of each fold, :class:`FoldArrays`).
    """
    subjects = np.asarray(subjects).astype(str)
    held_out = sorted(set(subjects.tolist()))
    if len(held_out) < 2:
        raise ValueError(f"LOSO needs at least 2 subjects, the cache has {held_out}")
    test_mask = subjects[None, :] == np.asarray(held_out)[:, None]
    max_test = int(test_mask.sum(axis=1).max())
    test_index = np.zeros((len(held_out), max_test), np.int32)
    test_valid = np.zeros((len(held_out), max_test), bool)
    for fold, mask in enumerate(test_mask):
        members = np.flatnonzero(mask)
        test_index[fold, :len(members)] = members
        test_valid[fold, :len(members)] = True
    return held_out, FoldArrays(~test_mask, test_index, test_valid)


def steps_per_epoch(folds: FoldArrays, batch_size: int) -> int:
    """Steps per epoch for every fold: enough to see the largest training set once."""
    return max(1, math.ceil(int(folds.train_mask.sum(axis=1).max()) / batch_size))


def fold_keys(seed: int, num_folds: int) -> jax.Array:
    """[F] per-fold keys ``fold_in(PRNGKey(seed), f)``."""
    root = jax.random.PRNGKey(seed)
    return jax.vmap(lambda f: jax.random.fold_in(root, f))(jnp.arange(num_folds))


# ------------------------------------------------------------------- per-fold pieces

def class_statistics(train_mask: jax.Array, labels: jax.Array, num_classes: int
                     ) -> tuple[jax.Array, jax.Array]:
    """Class-balanced weights [K] (``n_train / (K n_c)``, 0 for absent classes) and the
    per-clip sampling probabilities [N] (training clips only, each class equally likely)."""
    one_hot = jax.nn.one_hot(labels, num_classes) * train_mask[:, None]
    counts = one_hot.sum(axis=0)
    present = counts > 0
    weights = jnp.where(present, train_mask.sum() / (num_classes * jnp.maximum(counts, 1.0)), 0.0)
    per_clip = jnp.where(train_mask, weights[labels], 0.0)
    return weights, per_clip / per_clip.sum()


def epoch_batches(epoch_key: jax.Array, train_mask: jax.Array, sample_probs: jax.Array,
                  num_steps: int, batch_size: int, class_balance: str) -> jax.Array:
    """int32 [num_steps, batch_size] clip indices of one epoch of one fold (see module doc)."""
    num_clips = train_mask.shape[0]
    if class_balance == "sampling":
        flat = jax.random.choice(epoch_key, num_clips, (num_steps * batch_size,),
                                 replace=True, p=sample_probs)
        return flat.reshape(num_steps, batch_size).astype(jnp.int32)
    # A random permutation of the training clips: held-out clips sort after every
    # training clip (score 2 > any uniform draw), so the first n_train entries are it.
    scores = jnp.where(train_mask, jax.random.uniform(epoch_key, (num_clips,)), 2.0)
    order = jnp.argsort(scores)
    positions = jnp.arange(num_steps * batch_size) % jnp.maximum(train_mask.sum(), 1)
    return order[positions].reshape(num_steps, batch_size).astype(jnp.int32)


def loss_terms(outputs: dict[str, jax.Array], labels: jax.Array, class_weights: jax.Array,
               anchors: jax.Array | None, label_to_anchor: jax.Array, config: LosoTrainConfig
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Total = class-weighted CE + sparsity_weight * sparsity + edclip_weight * EDCLIP
    (``edclip.total_loss``; ``others`` clips are those with ``label_to_anchor < 0``).

    Args:
      outputs: the model's dict for a batch (logits [B, K], text_features, sparsity).
      labels: int32 [B]. class_weights: [K] (all ones for unweighted CE).
      anchors: [A, D_text] emotion anchors, or None when EDCLIP is off.
      label_to_anchor: int32 [K] anchor row of each class (``edclip.anchor_rows``).
    Returns:
      (scalar total, dict of the scalar terms).
    """
    from dface_jax.models.edclip import total_loss
    return total_loss(outputs, labels, anchors if config.edclip_weight > 0 else None,
                      label_to_anchor, class_weights=class_weights,
                      sparsity_weight=config.sparsity_weight, edclip_weight=config.edclip_weight,
                      temperature=config.edclip_temperature, others_margin=config.others_margin,
                      others_weight=config.others_weight)


class FoldFunctions(NamedTuple):
    """The pure single-fold pieces; both sweep orchestrations are built from them."""

    init: Callable          # (fold_key) -> TrainState
    batches: Callable       # (fold_key, epoch, train_mask, sample_probs) -> int32 [S, B]
    train_step: Callable    # (state, batch_index [B], fold_key, class_weights, data, anchors) -> (state, loss)
    evaluate: Callable      # (params, test_index [T], data) -> dict(logits [T, K], attention?)


def fold_functions(model: LosoModel, config: LosoTrainConfig, example_input: jax.Array,
                   num_steps: int) -> FoldFunctions:
    """Builds the per-fold pieces for ``model`` (``example_input``: one clip [1, ...])."""
    if config.edclip_weight > 0:
        probe = jax.eval_shape(lambda: model.apply(
            model.module.init(jax.random.PRNGKey(0), example_input, train=False)["params"],
            example_input, train=False))
        if "text_features" not in probe:
            raise ValueError(f"train.edclip_weight={config.edclip_weight} but "
                             f"{type(model.module).__name__} has no text_features output; "
                             "set --config.train.edclip_weight=0 for this model")
    optimizer = optax.adamw(config.learning_rate, b1=config.beta1, b2=config.beta2,
                            weight_decay=config.weight_decay)

    def split_key(fold_key):
        init_key, sample_key, dropout_key = jax.random.split(fold_key, 3)
        return init_key, sample_key, dropout_key

    def init(fold_key):
        init_key, _, _ = split_key(fold_key)
        params = model.module.init(init_key, example_input, train=False)["params"]
        return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def batches(fold_key, epoch, train_mask, sample_probs):
        _, sample_key, _ = split_key(fold_key)
        return epoch_batches(jax.random.fold_in(sample_key, epoch), train_mask, sample_probs,
                             num_steps, config.batch_size, config.class_balance)

    def train_step(state, batch_index, fold_key, class_weights, data, anchors):
        _, _, dropout_key = split_key(fold_key)
        step_key = jax.random.fold_in(dropout_key, state.step)
        inputs, labels = data.inputs[batch_index], data.labels[batch_index]

        def objective(params):
            outputs = model.apply(params, inputs, train=True, dropout_key=step_key)
            return loss_terms(outputs, labels, class_weights, anchors, data.label_to_anchor, config)

        (loss, _), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), loss

    def evaluate(params, test_index, data):
        outputs = model.apply(params, data.inputs[test_index], train=False)
        kept = {"logits": outputs["logits"].astype(jnp.float32)}
        if "attention" in outputs:
            kept["attention"] = outputs["attention"].astype(jnp.float32)
        return kept

    return FoldFunctions(init, batches, train_step, evaluate)


def _loss_class_weights(config: LosoTrainConfig, weights: jax.Array) -> jax.Array:
    return weights if config.class_balance == "loss" else jnp.ones_like(weights)


# ---------------------------------------------------------------- the two sweeps

def _prepare(model, config, data, folds):
    num_steps = steps_per_epoch(folds, config.batch_size)
    pieces = fold_functions(model, config, data.inputs[:1], num_steps)
    keys = fold_keys(config.seed, folds.train_mask.shape[0])
    return num_steps, pieces, keys


def _assemble(held_out, folds, params, test_logits, attention, train_loss, num_steps, num_clips
              ) -> LosoRun:
    """Scatters per-fold held-out outputs back to clip order.

    test_logits: [F, E, T, K]; attention: [F, T, L] or None; train_loss: [F, E].
    """
    test_logits = np.asarray(test_logits)
    num_epochs, num_classes = test_logits.shape[1], test_logits.shape[3]
    epoch_logits = np.zeros((num_epochs, num_clips, num_classes), np.float32)
    clip_attention = None if attention is None else np.zeros(
        (num_clips, np.asarray(attention).shape[-1]), np.float32)
    for fold in range(len(held_out)):
        valid = folds.test_valid[fold]
        members = folds.test_index[fold][valid]
        epoch_logits[:, members] = test_logits[fold][:, valid]
        if clip_attention is not None:
            clip_attention[members] = np.asarray(attention)[fold][valid]
    return LosoRun(held_out, jax.tree_util.tree_map(np.asarray, params), epoch_logits,
                   clip_attention, np.asarray(train_loss, np.float32), num_steps)


def train_folds(model: LosoModel, config: LosoTrainConfig, data: LosoData, subjects: Sequence[str],
                anchors: jax.Array | None = None) -> LosoRun:
    """Trains every LOSO fold at once: one jit-compiled, fold-vmapped program.

    Args:
      model: the classifier (see :class:`LosoModel`).
      config: optimisation and loss settings.
      data: all N clips. subjects: [N] subject of each clip.
      anchors: [K, D_text] EDCLIP text anchors (needed when ``config.edclip_weight > 0``).
    Returns:
      A :class:`LosoRun`.
    """
    held_out, folds = make_folds(subjects)
    num_steps, pieces, keys = _prepare(model, config, data, folds)
    num_classes = model.num_classes

    def run_fold(fold_key, train_mask, test_index, data, anchors):
        weights, sample_probs = class_statistics(train_mask, data.labels, num_classes)
        class_weights = _loss_class_weights(config, weights)

        def one_step(state, batch_index):
            return pieces.train_step(state, batch_index, fold_key, class_weights, data, anchors)

        def one_epoch(state, epoch):
            batch_indices = pieces.batches(fold_key, epoch, train_mask, sample_probs)
            state, losses = jax.lax.scan(one_step, state, batch_indices)
            logits = pieces.evaluate(state.params, test_index, data)["logits"]
            return state, (losses.mean(), logits)

        state = pieces.init(fold_key)
        state, (epoch_loss, epoch_logits) = jax.lax.scan(one_epoch, state, jnp.arange(config.epochs))
        final = pieces.evaluate(state.params, test_index, data)
        return state.params, epoch_logits, final.get("attention"), epoch_loss

    sweep = jax.jit(jax.vmap(run_fold, in_axes=(0, 0, 0, None, None)))
    params, test_logits, attention, train_loss = sweep(
        keys, jnp.asarray(folds.train_mask), jnp.asarray(folds.test_index), data, anchors)
    return _assemble(held_out, folds, params, test_logits, attention, train_loss, num_steps,
                     data.labels.shape[0])


def train_folds_sequential(model: LosoModel, config: LosoTrainConfig, data: LosoData,
                           subjects: Sequence[str], anchors: jax.Array | None = None,
                           max_folds: int | None = None) -> LosoRun:
    """The reference: folds one after another, Python loops over epochs and steps, each
    step one jit-compiled call. Same keys and pieces as :func:`train_folds`, no vmap, no
    scan. ``max_folds`` runs only the first folds (for timing); the others are left out
    of the returned arrays' fold axis but still occupy zeros in ``epoch_logits``."""
    held_out, folds = make_folds(subjects)
    num_steps, pieces, keys = _prepare(model, config, data, folds)
    init, batches = jax.jit(pieces.init), jax.jit(pieces.batches)
    train_step, evaluate = jax.jit(pieces.train_step), jax.jit(pieces.evaluate)
    stats = jax.jit(class_statistics, static_argnums=2)
    num_folds = len(held_out) if max_folds is None else min(max_folds, len(held_out))
    all_params, all_logits, all_attention, all_loss = [], [], [], []
    for fold in range(num_folds):
        train_mask = jnp.asarray(folds.train_mask[fold])
        test_index = jnp.asarray(folds.test_index[fold])
        weights, sample_probs = stats(train_mask, data.labels, model.num_classes)
        class_weights = _loss_class_weights(config, weights)
        state = init(keys[fold])
        fold_logits, fold_loss = [], []
        for epoch in range(config.epochs):
            batch_indices = batches(keys[fold], epoch, train_mask, sample_probs)
            losses = []
            for step in range(num_steps):
                state, loss = train_step(state, batch_indices[step], keys[fold], class_weights,
                                         data, anchors)
                losses.append(loss)
            fold_loss.append(np.mean(np.asarray(losses)))
            fold_logits.append(np.asarray(evaluate(state.params, test_index, data)["logits"]))
        final = evaluate(state.params, test_index, data)
        all_params.append(state.params)
        all_logits.append(np.stack(fold_logits))
        all_attention.append(final.get("attention"))
        all_loss.append(fold_loss)
    params = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *all_params)
    attention = None if all_attention[0] is None else np.stack(all_attention)
    used = FoldArrays(folds.train_mask[:num_folds], folds.test_index[:num_folds],
                      folds.test_valid[:num_folds])
    return _assemble(held_out[:num_folds], used, params, np.stack(all_logits), attention,
                     np.asarray(all_loss), num_steps, data.labels.shape[0])


# ------------------------------------------------------------ protocol and scores

ORACLE_LABEL = "oracle epoch (as in the literature)"
HONEST_PROTOCOL = ("LOSO, honest: fixed schedule of {epochs} epochs, every fold scored by the "
                   "prediction of its final epoch; no choice by test result")
ORACLE_NOTE = ("For each left-out subject the epoch with the most correct test predictions "
               "(ties: higher UAR + UF1 on that subject, then the earliest epoch), as the "
               "released D-FACE script and HTNet do. It selects on the test data, so it "
               "overestimates; shown only for comparison with published numbers.")


def oracle_epochs(run: LosoRun, labels: np.ndarray, subjects: Sequence[str]) -> np.ndarray:
    """int [F]: per held-out subject, the epoch (0-based) with the best test result.

    Best = most correct; ties broken by the subject's UAR + UF1 (``dface_jax.metrics``),
    then by the earliest epoch (see ``ORACLE_NOTE``).
    """
    from dface_jax import metrics

    subjects = np.asarray(subjects).astype(str)
    predictions = run.epoch_logits.argmax(-1)  # [E, N]
    num_classes = run.epoch_logits.shape[-1]
    chosen = np.zeros(len(run.held_out_subjects), np.int64)
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        truth = labels[members]
        best_key = None
        for epoch, predicted in enumerate(predictions[:, members]):
            key = (int(np.sum(predicted == truth)),
                   metrics.uar(truth, predicted, num_classes) + metrics.uf1(truth, predicted, num_classes))
            if best_key is None or key > best_key:  # strict: the earliest epoch wins ties
                best_key, chosen[fold] = key, epoch
    return chosen


def oracle_predictions(run: LosoRun, subjects: Sequence[str], chosen: np.ndarray) -> np.ndarray:
    """int [N]: each clip's prediction at its held-out subject's oracle epoch."""
    subjects = np.asarray(subjects).astype(str)
    predictions = run.epoch_logits[-1].argmax(-1)
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        predictions[members] = run.epoch_logits[chosen[fold], members].argmax(-1)
    return predictions


def score_predictions(labels: np.ndarray, predicted: np.ndarray, datasets: Sequence[str],
                      label_names: Sequence[str]) -> dict:
    """MEGC 2019 scores over all folds together plus the per-dataset breakdown (JSON-ready)."""
    from dface_jax import metrics

    overall = metrics.mer_scores(labels, predicted, label_names=label_names)
    by_dataset = metrics.scores_by_group(labels, predicted, np.asarray(datasets).astype(str),
                                         label_names=label_names)
    overall["per_dataset"] = {name: {"uf1": s["uf1"], "uar": s["uar"], "count": s["count"]}
                              for name, s in by_dataset.items()}
    return overall


def epoch_curve(run: LosoRun, labels: np.ndarray) -> list[dict]:
    """Per-epoch records: mean training loss over folds, pooled test accuracy and UF1."""
    from dface_jax import metrics

    records = []
    for epoch in range(run.epoch_logits.shape[0]):
        predicted = run.epoch_logits[epoch].argmax(-1)
        records.append({"epoch": epoch + 1,
                        "train_loss": float(run.train_loss[:, epoch].mean()),
                        "test_accuracy": float(np.mean(predicted == labels)),
                        "test_uf1": metrics.uf1(labels, predicted, run.epoch_logits.shape[-1])})
    return records
