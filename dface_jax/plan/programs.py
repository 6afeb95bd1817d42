"""The exact programs a run executes, built by the runs' own code for given devices, with
abstract (``ShapeDtypeStruct``) arguments: nothing is allocated and no data is read.

- Tokenizer pretraining: the jitted update of ``pretrain.step.make_train_functions`` on a
  ``data`` mesh over the devices (batch sharded, state replicated), as ``pretrain`` runs it.
- LOSO: the all-folds program of ``loso.sweep.sweep_program`` (init, every epoch's
  ``lax.scan`` over steps, the held-out evaluations), on one device or with its folds split
  over a ``folds`` mesh, as ``loso`` runs it. XLA counts a loop body once, so the sweep's
  time comes from two more programs compiled alone: one training step of all the folds a
  device holds, and one evaluation of their held-out clips.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from dface_jax.loso.step import LosoData, LosoModel, LosoTrainConfig, fold_functions
from dface_jax.loso.sweep import sweep_program
from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
from dface_jax.pretrain import step as step_lib
from dface_jax.runtime import mesh as mesh_lib


@dataclasses.dataclass(frozen=True)
class Program:
    """A jitted function and the abstract arguments to compile it at."""

    jitted: Any
    arguments: tuple


def _with_sharding(tree: Any, sharding: Any) -> Any:
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
                        tree)


def pretrain_update(config: Any, devices: Sequence[Any], global_batch: int) -> Program:
    """The pretraining update of ``config`` (a ``pretrain_*.py`` config) for a global batch
    of ``global_batch`` pairs split over ``devices``; arguments: (state, batch
    ``{"source", "driving": [B, H, W, C] float32}``)."""
    mesh = mesh_lib.make_mesh(list(devices))
    if global_batch % mesh.size:
        raise ValueError(f"global batch {global_batch} does not divide over {mesh.size} devices")
    task = step_lib.tokenizer_task(config.tokenizer)
    optimizer = step_lib.make_optimizer(config.train)
    spec = step_lib.example_batch_spec(config.tokenizer.image_size, config.tokenizer.channels,
                                       global_batch)
    functions = step_lib.make_train_functions(task, optimizer, mesh, spec)
    batch = _with_sharding(spec, mesh_lib.batch_sharded(mesh))
    return Program(functions.update, (functions.abstract_state, batch))


@dataclasses.dataclass(frozen=True)
class LosoShapes:
    """The sizes a LOSO sweep's programs depend on.

    num_clips N, num_subjects F (= folds), max_subject_clips T (held-out clips of the
    largest fold, the evaluation's width), min_subject_clips (fixes the steps per epoch,
    ceil((N - min) / batch)), seq_len and input_dim of the action vectors, num_classes K,
    text_dim of the EDCLIP anchors (one anchor per class here, ``others`` has none).
    """

    num_clips: int
    num_subjects: int
    max_subject_clips: int
    min_subject_clips: int
    seq_len: int = 16
    input_dim: int = 512
    num_classes: int = 3
    text_dim: int = 768


# The composite set (CASME II + SMIC-HS + SAMM): 442 clips of 68 subjects, 3 classes; 16
# tokens of width 512 from the paper tokenizer; CLIP ViT-L/14 text anchors (768). The
# largest and smallest subject (29 and 1 clips) are those of the SynthFACS composite set
# (seed 0), the stand-in for the real set; they set only the evaluation's width and the
# steps per epoch (28 at batch 16 for any smallest subject of up to 10 clips).
COMPOSITE = LosoShapes(num_clips=442, num_subjects=68, max_subject_clips=29, min_subject_clips=1)


def loso_model(config: Any, shapes: LosoShapes) -> tuple[LosoModel, LosoTrainConfig]:
    """The D-FACE token classifier of a LOSO config (``loso_composite.py``) completed with
    the data's sizes, as ``loso.experiment.build_experiment`` completes it."""
    if config.model != "dface" or config.finetune_tokenizer:
        raise ValueError("the plan covers the token classifier (model='dface' on cached tokens)")
    classifier = ClassifierConfig.from_dict(dict(
        config.classifier.to_dict(), num_classes=shapes.num_classes, seq_len=shapes.seq_len,
        input_dim=shapes.input_dim, text_dim=shapes.text_dim))
    return (LosoModel(TokenClassifier(classifier), shapes.num_classes),
            LosoTrainConfig.from_dict(config.train.to_dict()))


def steps_per_epoch(shapes: LosoShapes, batch_size: int) -> int:
    """``loso.folds.steps_per_epoch`` from the sizes: the largest training set once."""
    return max(1, math.ceil((shapes.num_clips - shapes.min_subject_clips) / batch_size))


def padded_folds(shapes: LosoShapes, num_devices: int) -> int:
    """Folds the sweep runs: F rounded up to a multiple of the devices (``sweep.pad_folds``)."""
    return -(-shapes.num_subjects // num_devices) * num_devices


@dataclasses.dataclass(frozen=True)
class LosoPrograms:
    """The sweep (memory), one step of all folds and one evaluation (time)."""

    sweep: Program
    step: Program
    evaluate: Program
    folds: int              # folds run, padding included
    steps_per_epoch: int
    epochs: int
    batch_size: int


def loso_programs(config: Any, devices: Sequence[Any], shapes: LosoShapes = COMPOSITE
                  ) -> LosoPrograms:
    """The programs of a LOSO sweep of ``config`` over ``devices`` (one device: no mesh
    sharding, exactly as ``loso`` runs on one chip; several: folds split over them)."""
    model, train_config = loso_model(config, shapes)
    num_steps = steps_per_epoch(shapes, train_config.batch_size)
    example = jnp.zeros((1, shapes.seq_len, shapes.input_dim), jnp.float32)
    pieces = fold_functions(model, train_config, example, num_steps)
    mesh = mesh_lib.make_mesh(list(devices), mesh_lib.FOLDS_AXIS)
    per_fold, shared = mesh_lib.leading_axis_sharded(mesh), mesh_lib.replicated(mesh)
    num_folds = padded_folds(shapes, mesh.size)
    n, k = shapes.num_clips, shapes.num_classes
    keys = jax.ShapeDtypeStruct((num_folds, 2), jnp.uint32, sharding=per_fold)
    train_mask = jax.ShapeDtypeStruct((num_folds, n), jnp.bool_, sharding=per_fold)
    test_index = jax.ShapeDtypeStruct((num_folds, shapes.max_subject_clips), jnp.int32,
                                      sharding=per_fold)
    data = _with_sharding(LosoData(
        jax.ShapeDtypeStruct((n, shapes.seq_len, shapes.input_dim), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32), jax.ShapeDtypeStruct((k,), jnp.int32)), shared)
    anchors = None
    if train_config.edclip_weight > 0:
        anchors = jax.ShapeDtypeStruct((k, shapes.text_dim), jnp.float32, sharding=shared)
    # On one device the mesh only places the program there: the same computation.
    sweep = sweep_program(pieces, train_config, k, mesh)

    state = _with_sharding(jax.eval_shape(jax.vmap(pieces.init, in_axes=(0, None)),
                                          jax.ShapeDtypeStruct((num_folds, 2), jnp.uint32), None),
                           per_fold)
    batch_index = jax.ShapeDtypeStruct((num_folds, train_config.batch_size), jnp.int32,
                                       sharding=per_fold)
    weights = jax.ShapeDtypeStruct((num_folds, k), jnp.float32, sharding=per_fold)
    step = jax.jit(jax.vmap(pieces.train_step, in_axes=(0, 0, 0, 0, None, None)),
                   out_shardings=per_fold)
    evaluate = jax.jit(jax.vmap(pieces.evaluate, in_axes=(0, 0, 0, None)),
                       out_shardings=per_fold)
    return LosoPrograms(
        sweep=Program(sweep, (keys, train_mask, test_index, data, anchors, None)),
        step=Program(step, (state, batch_index, keys, weights, data, anchors)),
        evaluate=Program(evaluate, (state.params, state.model_state, test_index, data)),
        folds=num_folds, steps_per_epoch=num_steps, epochs=train_config.epochs,
        batch_size=train_config.batch_size)

