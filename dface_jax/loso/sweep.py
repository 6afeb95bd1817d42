"""Training every LOSO fold: all at once (one vmapped, jit-compiled program) or one after
another (the reference the vmapped sweep is tested against).

All folds train together: one pure per-fold program (init, then a ``lax.scan`` over
epochs, each a ``lax.scan`` over steps followed by an evaluation of the held-out clips) is
``jax.vmap``-ed over the fold axis and ``jax.jit``-compiled once, so a 68-fold sweep is one
XLA program instead of a Python loop over 68 trainings. Given several devices (an 8-GPU
host, a TPU slice), the fold axis is split over a ``folds`` mesh axis: each device trains
its share of the folds in the same program (:func:`sweep_program`). :func:`train_folds_sequential`
runs the same per-fold pieces with Python loops, one fold after another. The held-out
clips of every fold are scored after every epoch (one small forward pass), so the
protocol module can report the literature's oracle epoch beside the honest final epoch.
Measured speed on CPU and why: docs/results/loso_speed.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dface_jax.loso.folds import FoldArrays, fold_keys, make_folds, steps_per_epoch
from dface_jax.loso.step import (LosoData, LosoModel, LosoTrainConfig, fold_class_weights,
                                 fold_functions)
from dface_jax.runtime import mesh as mesh_lib

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LosoRun:
    """What a sweep produced (host numpy arrays).

    Attributes:
      held_out_subjects: F subject names, fold f holds out ``held_out_subjects[f]``.
      fold_params: the final params of every fold, leading axis F.
      fold_state: the final non-param variables of every fold (``{"batch_stats": ...}``
        for a model with BatchNorm, else ``{}``), leading axis F.
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
    fold_state: dict = dataclasses.field(default_factory=dict)


def _prepare(model, config, data, folds):
    num_steps = steps_per_epoch(folds, config.batch_size)
    pieces = fold_functions(model, config, data.inputs[:1], num_steps)
    keys = fold_keys(config.seed, folds.train_mask.shape[0])
    return num_steps, pieces, keys


def _assemble(held_out, folds, params, model_state, test_logits, attention, train_loss,
              num_steps, num_clips) -> LosoRun:
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
                   clip_attention, np.asarray(train_loss, np.float32), num_steps,
                   jax.tree_util.tree_map(np.asarray, dict(model_state)))


def pad_folds(keys: jax.Array, folds: FoldArrays, multiple: int) -> tuple[jax.Array, FoldArrays]:
    """Pads the fold axis to a multiple of ``multiple`` (the devices the folds are split
    over) by repeating fold 0. Folds are independent under ``vmap``, so a padding fold
    changes no real fold's result; the caller drops the padding from the outputs.

    keys: [F, 2]; folds: :class:`FoldArrays` with leading axis F. Returns the same with
    leading axis ``ceil(F / multiple) * multiple``."""
    num_folds = keys.shape[0]
    padding = -num_folds % multiple
    if not padding:
        return keys, folds
    rows = np.concatenate([np.arange(num_folds), np.zeros(padding, np.int64)])
    return jnp.asarray(keys)[rows], FoldArrays(*(np.asarray(a)[rows] for a in folds))


def sweep_program(pieces, config: LosoTrainConfig, num_classes: int,
                  mesh: jax.sharding.Mesh | None = None, on_epoch=None):
    """The one program of a sweep: every fold's init, ``config.epochs`` epochs of ``lax.scan`` over
    steps and the held-out evaluation after each epoch, ``vmap``-ed over folds and jitted.

    Called as ``program(keys [F, 2], train_mask [F, N], test_index [F, T], data, anchors,
    pretrained)``; returns ``(params (leading axis F), model_state (its BatchNorm statistics,
    leading axis F; empty for models without), test_logits [F, E, T, K], attention [F, T, L]
    or None, train_loss [F, E])``. With ``mesh`` (one axis, see
    ``runtime.mesh.make_mesh(devices, FOLDS_AXIS)``) the per-fold inputs and every output
    are split along the fold axis over its devices and the shared data, anchors and
    pretrained params are replicated, so each device trains F / devices folds with no
    communication; F must then be a multiple of the device count (:func:`pad_folds`).
    ``on_epoch(epoch)``, if given, is called from the program after each epoch (once or
    once per device: it must be idempotent).
    """

    def run_fold(fold_key, train_mask, test_index, data, anchors, pretrained):
        weights = fold_class_weights(config, train_mask, data.labels, num_classes)

        def one_step(state, batch_index):
            return pieces.train_step(state, batch_index, fold_key, weights, data, anchors)

        def one_epoch(state, epoch):
            batch_indices = pieces.batches(fold_key, epoch, train_mask)
            state, losses = jax.lax.scan(one_step, state, batch_indices)
            logits = pieces.evaluate(state.params, state.model_state, test_index, data)["logits"]
            if on_epoch is not None:  # the epoch index is not batched: one call per epoch
                jax.debug.callback(on_epoch, epoch)
            return state, (losses.mean(), logits)

        state = pieces.init(fold_key, pretrained)
        state, (epoch_loss, epoch_logits) = jax.lax.scan(one_epoch, state, jnp.arange(config.epochs))
        final = pieces.evaluate(state.params, state.model_state, test_index, data)
        return state.params, state.model_state, epoch_logits, final.get("attention"), epoch_loss

    vmapped = jax.vmap(run_fold, in_axes=(0, 0, 0, None, None, None))
    if mesh is None:
        return jax.jit(vmapped)
    per_fold, shared = mesh_lib.leading_axis_sharded(mesh), mesh_lib.replicated(mesh)
    return jax.jit(vmapped, in_shardings=(per_fold, per_fold, per_fold, shared, shared, shared),
                   out_shardings=per_fold)


def train_folds(model: LosoModel, config: LosoTrainConfig, data: LosoData, subjects: Sequence[str],
                anchors: jax.Array | None = None, timings: dict | None = None,
                progress: bool = False, devices: Sequence[jax.Device] | None = None) -> LosoRun:
    """Trains every LOSO fold at once: one jit-compiled, fold-vmapped program.

    Args:
      model: the classifier (see :class:`LosoModel`).
      config: optimisation and loss settings.
      data: all N clips. subjects: [N] subject of each clip.
      anchors: [K, D_text] EDCLIP text anchors (needed when ``config.edclip_weight > 0``).
      timings: if a dict, receives ``compile_seconds`` and ``run_seconds`` (the program is
        compiled ahead of time to separate them).
      progress: log the compilation and show a bar of finished epochs (all folds advance
        together; the program reports each epoch with ``jax.debug.callback``).
      devices: split the folds over these devices (a ``folds`` mesh axis; the fold axis is
        padded to a multiple of their count and the padding dropped from the results).
        None: one device, no sharding.
    Returns:
      A :class:`LosoRun`.
    """
    held_out, folds = make_folds(subjects)
    num_steps, pieces, keys = _prepare(model, config, data, folds)
    bar = on_epoch = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=config.epochs, desc=f"LOSO, {len(held_out)} folds", unit="epoch",
                   dynamic_ncols=True, delay=0.1)

        def on_epoch(epoch):  # idempotent: each device of a sharded sweep may report it
            bar.update(max(0, int(epoch) + 1 - bar.n))

    mesh = None if devices is None else mesh_lib.make_mesh(list(devices), mesh_lib.FOLDS_AXIS)
    padded_keys, padded = (keys, folds) if mesh is None else pad_folds(keys, folds, mesh.size)
    sweep = sweep_program(pieces, config, model.num_classes, mesh, on_epoch)
    arguments = (padded_keys, jnp.asarray(padded.train_mask), jnp.asarray(padded.test_index),
                 data, anchors, model.pretrained)
    start = time.perf_counter()
    if progress:
        logger.info("compiling the sweep of %d folds x %d epochs x %d steps%s", len(held_out),
                    config.epochs, num_steps,
                    "" if mesh is None else f" over {mesh.size} devices")
    compiled = sweep.lower(*arguments).compile()
    compiled_at = time.perf_counter()
    try:
        outputs = jax.block_until_ready(compiled(*arguments))
    finally:
        if bar is not None:
            bar.close()
    if timings is not None:
        timings.update(compile_seconds=compiled_at - start,
                       run_seconds=time.perf_counter() - compiled_at)
    # Padding folds (a multiple of the device count) are dropped here.
    params, model_state, test_logits, attention, train_loss = jax.tree.map(
        lambda x: np.asarray(x)[:len(held_out)], outputs)
    return _assemble(held_out, folds, params, model_state, test_logits, attention, train_loss,
                     num_steps, data.labels.shape[0])


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
    fold_weights = jax.jit(lambda mask, labels, num_classes: fold_class_weights(
        config, mask, labels, num_classes), static_argnums=2)
    num_folds = len(held_out) if max_folds is None else min(max_folds, len(held_out))
    all_params, all_states, all_logits, all_attention, all_loss = [], [], [], [], []
    fold_seconds = []
    for fold in range(num_folds):
        fold_start = time.perf_counter()
        train_mask = jnp.asarray(folds.train_mask[fold])
        test_index = jnp.asarray(folds.test_index[fold])
        weights = fold_weights(train_mask, data.labels, model.num_classes)
        state = init(keys[fold], model.pretrained)
        fold_logits, fold_loss = [], []
        for epoch in range(config.epochs):
            batch_indices = batches(keys[fold], epoch, train_mask)
            losses = []
            for step in range(num_steps):
                state, loss = train_step(state, batch_indices[step], keys[fold], weights,
                                         data, anchors)
                losses.append(loss)
            fold_loss.append(np.mean(np.asarray(losses)))
            fold_logits.append(np.asarray(evaluate(state.params, state.model_state, test_index,
                                                   data)["logits"]))
        final = evaluate(state.params, state.model_state, test_index, data)
        all_params.append(state.params)
        all_states.append(state.model_state)
        all_logits.append(np.stack(fold_logits))
        all_attention.append(final.get("attention"))
        all_loss.append(fold_loss)
        jax.block_until_ready(state.params)
        fold_seconds.append(time.perf_counter() - fold_start)
    if timings is not None:
        timings["fold_seconds"] = fold_seconds
    params = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *all_params)
    model_state = jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *all_states)
    attention = None if all_attention[0] is None else np.stack(all_attention)
    used = FoldArrays(folds.train_mask[:num_folds], folds.test_index[:num_folds],
                      folds.test_valid[:num_folds])
    return _assemble(held_out[:num_folds], used, params, model_state, np.stack(all_logits),
                     attention, np.asarray(all_loss), num_steps, data.labels.shape[0])

