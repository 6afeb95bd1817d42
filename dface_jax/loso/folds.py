"""Leave-one-subject-out folds and the per-fold data order.

Fold ``f`` holds out subject ``f`` (subjects sorted by name) and trains on every other
subject. Minibatches, so every fold does the same work per step: each epoch, each fold
draws its own random permutation of its *training* clips (per-fold rng); step ``s`` takes
positions ``s*B .. s*B+B-1`` of it, modulo the fold's training count. Every fold runs
``ceil(max_f n_train_f / B)`` steps per epoch, so folds with fewer training clips (their
held-out subject had more clips) revisit a few clips from the start of their permutation in
the last step. The cross-entropy is weighted by the fold's class-balanced weights
``n_train / (K * n_c)`` (a weighted mean, as PyTorch's ``CrossEntropyLoss(weight=...)``).

Random keys: ``fold_key = fold_in(PRNGKey(seed), f)``; from it the init key, the
per-epoch sampling key ``fold_in(sample_key, epoch)`` and the per-step dropout key
``fold_in(dropout_key, global_step)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


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


def class_weights(train_mask: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Class-balanced loss weights [K] of one fold: ``n_train / (K n_c)``, 0 for classes
    the fold does not train on."""
    one_hot = jax.nn.one_hot(labels, num_classes) * train_mask[:, None]
    counts = one_hot.sum(axis=0)
    present = counts > 0
    return jnp.where(present, train_mask.sum() / (num_classes * jnp.maximum(counts, 1.0)), 0.0)


def epoch_batches(epoch_key: jax.Array, train_mask: jax.Array, num_steps: int,
                  batch_size: int) -> jax.Array:
    """int32 [num_steps, batch_size] clip indices of one epoch of one fold (module doc)."""
    num_clips = train_mask.shape[0]
    # A random permutation of the training clips: held-out clips sort after every
    # training clip (score 2 > any uniform draw), so the first n_train entries are it.
    scores = jnp.where(train_mask, jax.random.uniform(epoch_key, (num_clips,)), 2.0)
    order = jnp.argsort(scores)
    positions = jnp.arange(num_steps * batch_size) % jnp.maximum(train_mask.sum(), 1)
    return order[positions].reshape(num_steps, batch_size).astype(jnp.int32)
