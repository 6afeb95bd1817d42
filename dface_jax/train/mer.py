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

Speed on CPU (measured with ``benchmarks/loso_speed.py``, 2 cores): one training step of
one fold of the ``synth`` Transformer (dim 32, 2 layers, batch 16 x 16 tokens) is ~39 MFLOP
by XLA's cost analysis (forward, backward, AdamW), not ~1 MFLOP, so the sequential per-step
loop is already compute-bound (~2-2.7 ms per step, ~15-19 GFLOP/s) rather than bound by
per-call overhead, which is what vmapping over folds removes. The vmapped sweep reaches
~26-27 GFLOP/s: 1.4-1.8x the sequential loop in steady state, ~1.0-1.1x end to end for the
benchmark's 2 epochs (it compiles for ~9 s against the loop's ~6 s); a full 10-epoch
68-fold sweep takes ~40 s. The ceiling on this machine: a batched GEMM of the sweep's shape
class ([68, 256, 32] x [68, 32, 96], contraction 32) reaches 73-86 GFLOP/s, 4-6x the
sequential loop's rate, so no layout of the same FLOPs reaches 10x here. Of the vmapped
step, ~30% is dropout's threefry draws (1.33 ms per fold-step, 0.94 with dropout off:
``--config.classifier.dropout=0``; ~43% of an unbatched step); the rest runs at
~41 GFLOP/s. The vmapped sweep's value on CPU is one compiled program for all folds (no
Python loop, one device transfer); on a GPU or TPU, where a 39 MFLOP step is far below the
per-call overhead, vmapping is where the speed-up comes from (not measured here: no such
device). Things that were tried and do not help: ``rbg`` / ``unsafe_rbg`` dropout keys
(slower under vmap, ~1.7x, and not equal to the unbatched draws),
``jax_threefry_partitionable`` (no change), host-side batch indices (the per-fold argsort
over N clips is microseconds).

Random keys: ``fold_key = fold_in(PRNGKey(seed), f)``; from it the init key, the
per-epoch sampling key ``fold_in(sample_key, epoch)`` and the per-step dropout key
``fold_in(dropout_key, global_step)``. Both the vmapped and the sequential paths derive
them the same way, so they give the same result to float tolerance.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dface_jax.configs import dataclass_from_dict

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
      tokenizer_loss_weight: weight of the tokenizer's own loss (reconstruction + quantizer)
        when the model fine-tunes the tokenizer jointly (the release's 0.1); unused otherwise.
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
    tokenizer_loss_weight: float = 0.1
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
    ``attention`` [B, L], ``sparsity`` (scalar) and ``tokenizer_loss`` (scalar, training
    only); dropout uses the ``"dropout"`` rng, the NSVQ quantizer the ``"nsvq"`` rng.

    ``pretrained`` maps top-level param names to params that replace the random init of
    every fold (the pretrained tokenizer when it is fine-tuned jointly). The sweeps pass it
    to their compiled programs as an argument, so a large tokenizer is not baked into the
    program as constants."""

    module: nn.Module
    num_classes: int
    pretrained: dict | None = None

    def init_params(self, key: jax.Array, example_input: jax.Array,
                    pretrained: dict | None = None) -> dict:
        """Every fold's initial params: the module's init, with ``pretrained`` (default
        ``self.pretrained``) swapped in."""
        params = dict(self.module.init(key, example_input, train=False)["params"])
        pretrained = self.pretrained if pretrained is None else pretrained
        for name, value in (pretrained or {}).items():
            if name not in params:
                raise KeyError(f"pretrained params {name!r} do not belong to "
                               f"{type(self.module).__name__} (its params: {sorted(params)})")
            params[name] = jax.tree.map(jnp.asarray, value)
        return params

    def apply(self, params, inputs: jax.Array, *, train: bool, dropout_key: jax.Array | None = None
              ) -> dict[str, jax.Array]:
        rngs = ({} if dropout_key is None else
                {"dropout": dropout_key, "nsvq": jax.random.fold_in(dropout_key, 1)})
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
    (``edclip.total_loss``; ``others`` clips are those with ``label_to_anchor < 0``)
    + tokenizer_loss_weight * the model's ``tokenizer_loss`` when it has one (joint
    fine-tuning; its action vectors are detached, so this term trains the tokenizer only).

    Args:
      outputs: the model's dict for a batch (logits [B, K], text_features, sparsity).
      labels: int32 [B]. class_weights: [K] (all ones for unweighted CE).
      anchors: [A, D_text] emotion anchors, or None when EDCLIP is off.
      label_to_anchor: int32 [K] anchor row of each class (``edclip.anchor_rows``).
    Returns:
      (scalar total, dict of the scalar terms).
    """
    from dface_jax.models.edclip import total_loss
    total, terms = total_loss(outputs, labels, anchors if config.edclip_weight > 0 else None,
                              label_to_anchor, class_weights=class_weights,
                              sparsity_weight=config.sparsity_weight,
                              edclip_weight=config.edclip_weight,
                              temperature=config.edclip_temperature,
                              others_margin=config.others_margin,
                              others_weight=config.others_weight)
    if "tokenizer_loss" in outputs:
        terms = {**terms, "tokenizer": outputs["tokenizer_loss"]}
        total = total + config.tokenizer_loss_weight * outputs["tokenizer_loss"]
    return total, terms


class FoldFunctions(NamedTuple):
    """The pure single-fold pieces; both sweep orchestrations are built from them."""

    init: Callable          # (fold_key, pretrained) -> TrainState
    batches: Callable       # (fold_key, epoch, train_mask, sample_probs) -> int32 [S, B]
    train_step: Callable    # (state, batch_index [B], fold_key, class_weights, data, anchors) -> (state, loss)
    evaluate: Callable      # (params, test_index [T], data) -> dict(logits [T, K], attention?)


def fold_functions(model: LosoModel, config: LosoTrainConfig, example_input: jax.Array,
                   num_steps: int) -> FoldFunctions:
    """Builds the per-fold pieces for ``model`` (``example_input``: one clip [1, ...])."""
    if config.edclip_weight > 0:
        probe = jax.eval_shape(lambda: model.apply(
            model.init_params(jax.random.PRNGKey(0), example_input), example_input, train=False))
        if "text_features" not in probe:
            raise ValueError(f"train.edclip_weight={config.edclip_weight} but "
                             f"{type(model.module).__name__} has no text_features output; "
                             "set --config.train.edclip_weight=0 for this model")
    optimizer = optax.adamw(config.learning_rate, b1=config.beta1, b2=config.beta2,
                            weight_decay=config.weight_decay)

    def split_key(fold_key):
        init_key, sample_key, dropout_key = jax.random.split(fold_key, 3)
        return init_key, sample_key, dropout_key

    def init(fold_key, pretrained):
        init_key, _, _ = split_key(fold_key)
        params = model.init_params(init_key, example_input, pretrained)
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
                anchors: jax.Array | None = None, timings: dict | None = None) -> LosoRun:
    """Trains every LOSO fold at once: one jit-compiled, fold-vmapped program.

    Args:
      model: the classifier (see :class:`LosoModel`).
      config: optimisation and loss settings.
      data: all N clips. subjects: [N] subject of each clip.
      anchors: [K, D_text] EDCLIP text anchors (needed when ``config.edclip_weight > 0``).
      timings: if a dict, receives ``compile_seconds`` and ``run_seconds`` (the program is
        compiled ahead of time to separate them).
    Returns:
      A :class:`LosoRun`.
    """
    held_out, folds = make_folds(subjects)
    num_steps, pieces, keys = _prepare(model, config, data, folds)
    num_classes = model.num_classes

    def run_fold(fold_key, train_mask, test_index, data, anchors, pretrained):
        weights, sample_probs = class_statistics(train_mask, data.labels, num_classes)
        class_weights = _loss_class_weights(config, weights)

        def one_step(state, batch_index):
            return pieces.train_step(state, batch_index, fold_key, class_weights, data, anchors)

        def one_epoch(state, epoch):
            batch_indices = pieces.batches(fold_key, epoch, train_mask, sample_probs)
            state, losses = jax.lax.scan(one_step, state, batch_indices)
            logits = pieces.evaluate(state.params, test_index, data)["logits"]
            return state, (losses.mean(), logits)

        state = pieces.init(fold_key, pretrained)
        state, (epoch_loss, epoch_logits) = jax.lax.scan(one_epoch, state, jnp.arange(config.epochs))
        final = pieces.evaluate(state.params, test_index, data)
        return state.params, epoch_logits, final.get("attention"), epoch_loss

    sweep = jax.jit(jax.vmap(run_fold, in_axes=(0, 0, 0, None, None, None)))
    arguments = (keys, jnp.asarray(folds.train_mask), jnp.asarray(folds.test_index), data, anchors,
                 model.pretrained)
    start = time.perf_counter()
    compiled = sweep.lower(*arguments).compile()
    compiled_at = time.perf_counter()
    params, test_logits, attention, train_loss = jax.block_until_ready(compiled(*arguments))
    if timings is not None:
        timings.update(compile_seconds=compiled_at - start,
                       run_seconds=time.perf_counter() - compiled_at)
    return _assemble(held_out, folds, params, test_logits, attention, train_loss, num_steps,
                     data.labels.shape[0])


def train_folds_sequential(model: LosoModel, config: LosoTrainConfig, data: LosoData,
                           subjects: Sequence[str], anchors: jax.Array | None = None,
                           max_folds: int | None = None, timings: dict | None = None) -> LosoRun:
    """The reference: folds one after another, Python loops over epochs and steps, each
    step one jit-compiled call. Same keys and pieces as :func:`train_folds`, no vmap, no
    scan. ``max_folds`` runs only the first folds (for timing); the others are left out
    of the returned arrays' fold axis but still occupy zeros in ``epoch_logits``.
    ``timings``, if a dict, receives ``fold_seconds`` (wall time of each fold; the first
    includes compilation)."""
    held_out, folds = make_folds(subjects)
    num_steps, pieces, keys = _prepare(model, config, data, folds)
    init, batches = jax.jit(pieces.init), jax.jit(pieces.batches)
    train_step, evaluate = jax.jit(pieces.train_step), jax.jit(pieces.evaluate)
    stats = jax.jit(class_statistics, static_argnums=2)
    num_folds = len(held_out) if max_folds is None else min(max_folds, len(held_out))
    all_params, all_logits, all_attention, all_loss = [], [], [], []
    fold_seconds = []
    for fold in range(num_folds):
        fold_start = time.perf_counter()
        train_mask = jnp.asarray(folds.train_mask[fold])
        test_index = jnp.asarray(folds.test_index[fold])
        weights, sample_probs = stats(train_mask, data.labels, model.num_classes)
        class_weights = _loss_class_weights(config, weights)
        state = init(keys[fold], model.pretrained)
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
        jax.block_until_ready(state.params)
        fold_seconds.append(time.perf_counter() - fold_start)
    if timings is not None:
        timings["fold_seconds"] = fold_seconds
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


# -------------------------------------------------------------------- experiments

MODEL_KINDS = ("dface", "pixel")
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


def build_experiment(config, cache: dict, *, clip_dir: str | None = None,
                     anchor_cache_path: str | None = None) -> LosoExperiment:
    """Builds the model, data and text anchors of ``config`` (a LOSO config, see
    ``experiments/configs/loso_composite.py``) over the token ``cache``."""
    from dface_jax.models.edclip import anchor_rows, class_prompts

    if config.model not in MODEL_KINDS:
        raise ValueError(f"config.model={config.model!r}; expected one of {MODEL_KINDS}")
    if config.token_order not in TOKEN_ORDERS:
        raise ValueError(f"config.token_order={config.token_order!r}; expected one of {TOKEN_ORDERS}")
    label_names = tuple(str(n) for n in cache["label_names"])
    num_classes = len(label_names)
    train_config = LosoTrainConfig.from_dict(config.train.to_dict())
    anchors, text_info, pretrained = None, None, None
    if config.model == "pixel":
        from dface_jax.models.pixel_baseline import PixelBaselineCNN, PixelBaselineConfig
        if train_config.edclip_weight > 0:
            raise ValueError("the pixel baseline has no text head: set train.edclip_weight=0")
        if config.token_order != "original":
            raise ValueError("token_order applies to token models, not the pixel baseline")
        module = PixelBaselineCNN(PixelBaselineConfig.from_dict(
            dict(config.pixel.to_dict(), num_classes=num_classes)))
        inputs = np.asarray(cache["frame_difference"], np.float32)
    else:
        from dface_jax.models.text_encoder import encode_prompts
        from dface_jax.models.token_transformer import ClassifierConfig, TokenClassifier
        clip_dir = clip_dir or (config.text_encoder_dir or None)
        anchors, text_info = encode_prompts(class_prompts(label_names), clip_dir,
                                            cache_path=anchor_cache_path,
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
    """Whether a LOSO config (or a run's saved config.json) fine-tunes the tokenizer jointly;
    configs written before the field existed do not."""
    return bool(config.get("finetune_tokenizer", False))


def _joint_model(config, cache: dict, classifier_config):
    """(TokenizerAndClassifier, pair frames [N, 2, H, W, C], {"tokenizer": params}) for
    ``config.finetune_tokenizer``: the tokenizer of ``config.tokenizer_workdir`` (default:
    the one that wrote the cache) trains on with the classifier (models/joint.py)."""
    from dface_jax.models.joint import TokenizerAndClassifier
    from dface_jax.train.extract import restore_tokenizer

    if config.token_order != "original":
        raise ValueError("finetune_tokenizer encodes the frames on the fly; the token-order "
                         "ablation applies to cached tokens only (token_order='original')")
    if "pair_frames" not in cache:
        raise KeyError("finetune_tokenizer needs the clips' frames in the token cache (field "
                       "'pair_frames'); write the cache with `dface-jax extract-tokens "
                       "--keep-frames`")
    workdir = config.get("tokenizer_workdir", "") or str(cache["tokenizer_workdir"])
    params, tokenizer_config = restore_tokenizer(workdir)
    module = TokenizerAndClassifier(tokenizer_config, classifier_config)
    return module, np.asarray(cache["pair_frames"], np.float32), {"tokenizer": params}


def run_experiment(experiment: LosoExperiment, subjects: Sequence[str]) -> LosoRun:
    """The vmapped sweep of ``experiment`` (see :func:`train_folds`)."""
    anchors = None if experiment.anchors is None else jnp.asarray(experiment.anchors)
    return train_folds(experiment.model, experiment.train_config, experiment.data, subjects, anchors)


def summarize_run(run: LosoRun, cache: dict, experiment: LosoExperiment, config) -> dict:
    """results.json content: honest scores, the oracle-epoch block, protocol and settings."""
    labels = np.asarray(cache["labels"])
    label_names = [str(n) for n in cache["label_names"]]
    honest = score_predictions(labels, run.epoch_logits[-1].argmax(-1), cache["datasets"], label_names)
    chosen = oracle_epochs(run, labels, cache["subjects"])
    oracle = score_predictions(labels, oracle_predictions(run, cache["subjects"], chosen),
                               cache["datasets"], label_names)
    text = experiment.text_encoder
    return {
        **{key: honest[key] for key in ("uf1", "uar", "accuracy", "per_dataset",
                                        "per_class_recall", "confusion", "count")},
        "protocol": HONEST_PROTOCOL.format(epochs=experiment.train_config.epochs),
        "oracle_epoch": {"label": ORACLE_LABEL, "note": ORACLE_NOTE,
                         **{key: oracle[key] for key in ("uf1", "uar", "accuracy", "per_dataset",
                                                         "per_class_recall")},
                         "epochs": {subject: int(epoch) + 1
                                    for subject, epoch in zip(run.held_out_subjects, chosen)}},
        "seed": experiment.train_config.seed,
        "model": config.model,
        "pooling": config.classifier.pooling if config.model == "dface" else None,
        "token_order": config.token_order if config.model == "dface" else None,
        "edclip_weight": experiment.train_config.edclip_weight,
        "finetune_tokenizer": finetunes_tokenizer(config),
        "tokenizer_loss_weight": (experiment.train_config.tokenizer_loss_weight
                                  if finetunes_tokenizer(config) else None),
        "class_balance": experiment.train_config.class_balance,
        "text_encoder": None if text is None else {
            "model": text["model"], "semantic": bool(text["semantic"]), "warning": text["warning"]},
        "label_names": label_names,
        "num_folds": len(run.held_out_subjects),
        "num_clips": int(labels.size),
        "epochs": experiment.train_config.epochs,
        "steps_per_epoch": run.steps_per_epoch,
        "tokenizer_workdir": str(cache["tokenizer_workdir"]),
        "apex_rule": str(cache["apex_rule"]),
    }


# ------------------------------------------------------------------------ workdir

def results_markdown(results: dict) -> str:
    """A markdown table of the honest and oracle-epoch scores, overall and per dataset."""
    lines = [f"# LOSO results ({results['model']}, seed {results['seed']})", "",
             f"Protocol: {results['protocol']}.", "",
             "| scores | subset | UF1 | UAR | clips |", "|---|---|---|---|---|"]
    for title, block in (("honest (final epoch)", results), (ORACLE_LABEL, results["oracle_epoch"])):
        lines.append(f"| {title} | all | {block['uf1']:.4f} | {block['uar']:.4f} | {results['count']} |")
        for name, scores in block["per_dataset"].items():
            lines.append(f"| {title} | {name} | {scores['uf1']:.4f} | {scores['uar']:.4f} "
                         f"| {scores['count']} |")
    recalls = ", ".join(f"{name} {value:.3f}" if value is not None else f"{name} n/a"
                        for name, value in results["per_class_recall"].items())
    lines += ["", f"Per-class recall (honest): {recalls}.", "", f"Oracle epoch: {ORACLE_NOTE}"]
    text = results.get("text_encoder")
    if text is not None:
        lines += ["", f"Text encoder: {text['model']} (semantic: {text['semantic']})."]
        if text["warning"]:
            lines.append(f"Warning: {text['warning']}.")
    return "\n".join(lines) + "\n"


def plot_confusion(confusion: Sequence[Sequence[int]], label_names: Sequence[str], path, title: str
                   ) -> None:
    """Writes a confusion-matrix PNG (rows: true class, columns: predicted)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion)
    figure, axis = plt.subplots(figsize=(1.2 * len(label_names) + 2, 1.2 * len(label_names) + 1.5))
    axis.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(label_names))
    axis.set_xticks(ticks, label_names, rotation=30, ha="right")
    axis.set_yticks(ticks, label_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            axis.text(column, row, int(matrix[row, column]), ha="center", va="center",
                      color="white" if matrix[row, column] > matrix.max() / 2 else "black")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_workdir(workdir, run: LosoRun, cache: dict, results: dict, config) -> None:
    """Writes results.json/.md, confusion.png, folds.json, metrics.jsonl, predictions.npz,
    config.json and one Orbax checkpoint of every fold's classifier (leading fold axis)."""
    import json
    import pathlib

    from dface_jax.train.checkpoint import save_params
    from dface_jax.train.metrics_log import MetricsWriter

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(cache["labels"])
    subjects = np.asarray(cache["subjects"]).astype(str)
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    (workdir / "results.md").write_text(results_markdown(results))
    plot_confusion(results["confusion"], results["label_names"], workdir / "confusion.png",
                   f"LOSO {results['model']} (honest), UF1 {results['uf1']:.3f}")
    folds = {"held_out_subjects": list(run.held_out_subjects),
             "folds": [{"fold": fold, "held_out_subject": subject,
                        "test_clips": int(np.sum(subjects == subject)),
                        "train_clips": int(np.sum(subjects != subject))}
                       for fold, subject in enumerate(run.held_out_subjects)]}
    (workdir / "folds.json").write_text(json.dumps(folds, indent=2))
    writer = MetricsWriter(workdir, tensorboard=False)
    for record in epoch_curve(run, labels):
        writer.write(record.pop("epoch"), record)
    writer.close()
    final_logits = run.epoch_logits[-1]
    np.savez(workdir / "predictions.npz", clip_ids=np.asarray(cache["clip_ids"]).astype(str),
             subjects=subjects, datasets=np.asarray(cache["datasets"]).astype(str), labels=labels,
             predicted=final_logits.argmax(-1).astype(np.int32), logits=final_logits,
             attention=(run.attention if run.attention is not None
                        else np.zeros((labels.size, 0), np.float32)),
             label_names=np.asarray(results["label_names"]))
    save_params(workdir, run.fold_params, config, step=results["epochs"])


def resolved_config(config, experiment: LosoExperiment):
    """``config`` with ``classifier`` completed by the fields taken from the data
    (num_classes, seq_len, input_dim, text_dim), so ``ClassifierConfig.from_dict(
    config.classifier)`` of the saved config.json rebuilds the trained model."""
    import ml_collections

    resolved = config.copy_and_resolve_references()
    module = experiment.model.module
    if config.model == "dface" and finetunes_tokenizer(config):
        resolved.classifier = ml_collections.ConfigDict(module.classifier_config.to_dict())
        resolved.tokenizer = ml_collections.ConfigDict(module.tokenizer_config.to_dict())
    elif config.model == "dface":
        resolved.classifier = ml_collections.ConfigDict(module.config.to_dict())
    else:
        resolved.pixel = ml_collections.ConfigDict(
            dataclasses.asdict(experiment.model.module.config))
    return resolved


def run_loso(config, cache: dict, workdir, *, clip_dir: str | None = None,
             log: Callable[[str], None] = print) -> dict:
    """One LOSO sweep of ``config`` on ``cache``, written to ``workdir``; returns results."""
    import pathlib

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    experiment = build_experiment(config, cache, clip_dir=clip_dir,
                                  anchor_cache_path=str(workdir / "text_anchors.npz"))
    if experiment.text_encoder is not None and experiment.text_encoder["warning"]:
        log(f"warning: {experiment.text_encoder['warning']}")
    start = time.perf_counter()
    run = run_experiment(experiment, cache["subjects"])
    seconds = time.perf_counter() - start
    results = summarize_run(run, cache, experiment, config)
    results["train_seconds"] = round(seconds, 2)
    write_workdir(workdir, run, cache, results, resolved_config(config, experiment))
    log(f"{workdir}: UF1 {results['uf1']:.4f} UAR {results['uar']:.4f} (honest); "
        f"{ORACLE_LABEL}: UF1 {results['oracle_epoch']['uf1']:.4f} "
        f"UAR {results['oracle_epoch']['uar']:.4f}; {len(run.held_out_subjects)} folds in {seconds:.1f} s")
    return results


# ------------------------------------------------------------------ comparison

# name -> (title, overrides applied to the base config). D-FACE first: the others are
# compared with it.
COMPARISON_VARIANTS = {
    "dface": ("D-FACE", {}),
    "no_edclip": ("D-FACE without EDCLIP", {"train.edclip_weight": 0.0}),
    "mean_pooling": ("D-FACE with mean pooling", {"classifier.pooling": "mean"}),
    "shuffled_tokens": ("D-FACE, token order shuffled per clip",
                        {"token_order": "shuffled_per_clip"}),
    "pixel": ("pixel baseline (apex - onset CNN)", {"model": "pixel", "train.edclip_weight": 0.0}),
}


def variant_config(base, overrides: dict, seed: int):
    """A copy of ``base`` with dotted-field ``overrides`` and ``train.seed = seed``."""
    config = base.copy_and_resolve_references()
    for dotted, value in {**overrides, "train.seed": seed}.items():
        *parents, leaf = dotted.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value
    return config


def _mean_std(values: Sequence[float]) -> dict:
    array = np.asarray(values, np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "values": [float(v) for v in array]}


def _run_identity(config) -> str:
    """The config of one sweep as JSON, without ``compare`` (which seeds a comparison runs
    does not change any one sweep)."""
    config = config.copy_and_resolve_references()
    if "compare" in config:
        del config["compare"]
    return config.to_json_best_effort(sort_keys=True)


def _finished_run(run_dir, config) -> dict | None:
    """results.json of ``run_dir`` if it finished with exactly ``config``, else None."""
    import json

    results_path, source_path = run_dir / "results.json", run_dir / "source_config.json"
    if results_path.is_file() and source_path.is_file() and \
            source_path.read_text() == _run_identity(config):
        return json.loads(results_path.read_text())
    return None


def _comparison_row(title: str, overrides: dict, per_seed: list[dict], block=None) -> dict:
    """Mean/std over seeds of the honest scores (or of ``block``, e.g. "oracle_epoch")."""
    scores = [r if block is None else r[block] for r in per_seed]
    return {"title": title, "overrides": overrides, "seeds": [r["seed"] for r in per_seed],
            "uf1": _mean_std([s["uf1"] for s in scores]),
            "uar": _mean_std([s["uar"] for s in scores]),
            "per_dataset": {dataset: {metric: _mean_std([s["per_dataset"][dataset][metric]
                                                         for s in scores])
                                      for metric in ("uf1", "uar")}
                            for dataset in scores[0]["per_dataset"]}}


def run_comparison(base_config, cache: dict, workdir, seeds: Sequence[int], *,
                   clip_dir: str | None = None, variants: Sequence[str] | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """D-FACE (honest and oracle epoch), the ablations and the pixel baseline on the same
    folds, each over ``seeds``. Workdirs: ``W/<variant>`` (first seed) and
    ``W/<variant>-seed<s>``. Runs go seed by seed (every model at seed 0, then at seed 1,
    ...) and ``W/comparison.json`` / ``W/comparison.md`` are rewritten after every seed, so
    an interrupted comparison still has a table over the seeds it finished; a rerun skips
    runs whose workdir already holds results of the same config."""
    import json
    import pathlib

    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = list(COMPARISON_VARIANTS) if variants is None else list(variants)
    unknown = [n for n in names if n not in COMPARISON_VARIANTS]
    if unknown:
        raise ValueError(f"unknown comparison variants {unknown}; known: {list(COMPARISON_VARIANTS)}")
    if not seeds:
        raise ValueError("run_comparison needs at least one seed")
    per_variant: dict[str, list[dict]] = {name: [] for name in names}
    comparison = {}
    for index, seed in enumerate(seeds):
        for name in names:
            title, overrides = COMPARISON_VARIANTS[name]
            config = variant_config(base_config, overrides, seed)
            run_dir = workdir / (name if index == 0 else f"{name}-seed{seed}")
            results = _finished_run(run_dir, config)
            if results is None:
                results = run_loso(config, cache, run_dir, clip_dir=clip_dir, log=log)
                (run_dir / "source_config.json").write_text(_run_identity(config))
            else:
                log(f"{run_dir}: already finished, reusing its results.json")
            per_variant[name].append(results)
        rows = {}
        for name in names:
            title, overrides = COMPARISON_VARIANTS[name]
            rows[name] = _comparison_row(title, overrides, per_variant[name])
            if name == "dface":
                rows["dface_oracle"] = _comparison_row(f"D-FACE, {ORACLE_LABEL}", {},
                                                       per_variant[name], "oracle_epoch")
        first = per_variant[names[0]][0]
        text_encoder = next((r[0]["text_encoder"] for r in per_variant.values()
                             if r[0]["text_encoder"] is not None), None)
        comparison = {"rows": rows, "seeds": list(seeds[:index + 1]), "text_encoder": text_encoder,
                      "protocol": first["protocol"], "verdicts": comparison_verdicts(rows),
                      "train_seconds": {name: [r["train_seconds"] for r in per_variant[name]]
                                        for name in names}}
        (workdir / "comparison.json").write_text(json.dumps(comparison, indent=2))
        (workdir / "comparison.md").write_text(comparison_markdown(comparison))
    return comparison


def comparison_verdicts(rows: dict) -> dict:
    """Per ablation/baseline, whether it loses to D-FACE (honest UF1): it loses when its
    mean UF1 is below D-FACE's by more than the larger of the two spreads (std over seeds);
    otherwise the table marks it as not losing."""
    if "dface" not in rows:
        return {}
    reference = rows["dface"]["uf1"]
    verdicts = {}
    for name, row in rows.items():
        if name in ("dface", "dface_oracle"):
            continue
        gap = reference["mean"] - row["uf1"]["mean"]
        spread = max(reference["std"], row["uf1"]["std"])
        verdicts[name] = {"uf1_gap": gap, "spread": spread, "loses": bool(gap > spread)}
    return verdicts


def comparison_markdown(comparison: dict) -> str:
    """The comparison table (mean ± std over seeds) with the notes."""
    rows, verdicts = comparison["rows"], comparison["verdicts"]
    datasets = sorted(next(iter(rows.values()))["per_dataset"])
    header = "| model | UF1 | UAR | " + " | ".join(f"{d} UF1 | {d} UAR" for d in datasets) + " | vs D-FACE |"
    lines = [f"# D-FACE, ablations and pixel baseline (LOSO, seeds {comparison['seeds']})", "",
             f"Protocol: {comparison['protocol']}. Mean ± std (sample std) over seeds.", "",
             header, "|" + "---|" * (4 + 2 * len(datasets))]

    def cell(stats):
        return f"{stats['mean']:.4f} ± {stats['std']:.4f}"

    for name, row in rows.items():
        if name == "dface":
            mark = "reference"
        elif name == "dface_oracle":
            mark = "not comparable (selects epochs on test data)"
        elif name not in verdicts:
            mark = "n/a (D-FACE not in this comparison)"
        else:
            verdict = verdicts[name]
            mark = (f"loses by {verdict['uf1_gap']:.4f} UF1" if verdict["loses"]
                    else f"**does not lose** (gap {verdict['uf1_gap']:+.4f} ≤ spread {verdict['spread']:.4f})")
        per_dataset = " | ".join(f"{cell(row['per_dataset'][d]['uf1'])} | {cell(row['per_dataset'][d]['uar'])}"
                                 for d in datasets)
        lines.append(f"| {row['title']} | {cell(row['uf1'])} | {cell(row['uar'])} | {per_dataset} | {mark} |")
    lines += ["", "Notes:",
              "- An ablation *loses* when its mean honest UF1 is below D-FACE's by more than the "
              "larger of the two spreads; otherwise it is marked **does not lose**.",
              "- Token order shuffled: each clip's 16 tokens get their own fixed random permutation "
              "(a single permutation for all clips would only relabel the learned positions).",
              f"- {ORACLE_LABEL}: {ORACLE_NOTE}"]
    text = comparison.get("text_encoder")
    if text is not None and not text["semantic"]:
        lines.append("- EDCLIP anchors here are NOT semantic (a tiny random text encoder: no local "
                     "CLIP directory was given), so EDCLIP only adds a random-target auxiliary "
                     "loss; removing it is not expected to lose, and the table may show that.")
    elif text is not None:
        lines.append(f"- EDCLIP anchors from {text['model']} (semantic).")
    return "\n".join(lines) + "\n"
