"""Tokenizer pretraining: the train state, one pure update, and their jit over a ``Mesh``.

The state is a plain dict (big_vision style)::

    {"params": ..., "opt_state": ..., "step": int32 [], "rng": uint32 [2],
     "code_counts": int32 [K]}  # code usage summed since the last dead-code restart

and the update is ``jax.jit(train_step, donate_argnums=0, out_shardings=...)``: the batch is
sharded over the mesh's ``data`` axis, everything in the state is replicated, and XLA
inserts the gradient all-reduce. Per-step randomness is ``fold_in(rng, step)``, so a
resumed run draws the same numbers as an uninterrupted one. Init is shape-first:
``eval_shape`` -> shardings -> ``jit(init, out_shardings)``, and the same abstract state is
the restore target.

The step is generic over a :class:`TrainTask` (a Flax module whose ``__call__(source,
driving, *, train)`` returns ``{"losses": {"total", ...}, "metrics": {...}}``, the
:class:`~dface_jax.models.tokenizer.ActionTokenizer` contract), so tests can drive it with
any small model.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from dface_jax.configs import dataclass_from_dict
from dface_jax.runtime import mesh as mesh_lib

State = dict[str, Any]
LOGGED_METRICS = ("perplexity", "codes_in_use")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The ``train`` section of a pretraining config; defaults are the release's
    (LAPA / phenaki-pytorch: AdamW lr 3e-4, betas (0.9, 0.99), weight decay 0, clip 0.5) and
    our paper-scale schedule (800k steps of a global batch of 256).

    batch_size is global (divided over processes and devices). The learning rate warms up
    linearly for ``warmup_steps``, then decays by a cosine to ``end_learning_rate_ratio``
    of its peak at ``num_steps``. Codes unused over the last ``restart_dead_codes_every``
    steps get a current encoder output (0 = never).
    """

    batch_size: int = 256
    num_steps: int = 800_000
    learning_rate: float = 3e-4
    warmup_steps: int = 5_000
    end_learning_rate_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 0.5
    adam_b1: float = 0.9
    adam_b2: float = 0.99
    log_every: int = 100
    checkpoint_every: int = 5_000
    keep_checkpoints: int = 3
    restart_dead_codes_every: int = 1_000

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "OptimizerConfig":
        return dataclass_from_dict(cls, values)


@dataclasses.dataclass(frozen=True)
class TrainTask:
    """What the step needs to know about a model.

    Attributes:
      model: Linen module; ``model.apply({"params": p}, source, driving, train=True,
        rngs=...)`` returns ``{"losses": {"total", "recon", "vq"}, "metrics":
        {"perplexity", "codes_in_use"}, "code_counts" int32 [K], "action_latents" [B, N, D]}``
        (the last two only when ``restart_codes`` is set).
      rng_names: rng streams the model draws from in training (e.g. ``"nsvq"``).
      restart_codes: ``(params, code_counts, action_latents, rng) -> (params,
        num_restarted)``; dead-code restart, or None.
      num_codes: codebook size K (needed to count code usage for restarts).
    """

    model: nn.Module
    rng_names: tuple[str, ...] = ()
    restart_codes: Callable[..., tuple[Any, jax.Array]] | None = None
    num_codes: int = 0


def tokenizer_task(tokenizer_config: dict | Any) -> TrainTask:
    """The :class:`TrainTask` of the C-VQ-VAE action tokenizer from its config."""
    from dface_jax.models import tokenizer as tokenizer_lib
    from dface_jax.models import vq

    if not isinstance(tokenizer_config, tokenizer_lib.TokenizerConfig):
        tokenizer_config = tokenizer_lib.TokenizerConfig.from_dict(dict(tokenizer_config))
    return TrainTask(model=tokenizer_lib.ActionTokenizer(tokenizer_config),
                     rng_names=(vq.NSVQ_RNG, "dropout"), restart_codes=vq.restart_dead_codes,
                     num_codes=tokenizer_config.codebook_size)


def optimizer_schedule(train_config: Any) -> optax.Schedule:
    """Linear warm-up then cosine decay (see :class:`OptimizerConfig`)."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=train_config.learning_rate,
        warmup_steps=train_config.warmup_steps,
        decay_steps=max(train_config.num_steps, train_config.warmup_steps + 1),
        end_value=train_config.learning_rate * train_config.end_learning_rate_ratio)


def make_optimizer(train_config: Any) -> optax.GradientTransformation:
    """AdamW with global-norm clipping on :func:`optimizer_schedule`."""
    return optax.chain(
        optax.clip_by_global_norm(train_config.grad_clip),
        optax.adamw(optimizer_schedule(train_config), b1=train_config.adam_b1,
                    b2=train_config.adam_b2, weight_decay=train_config.weight_decay))


def init_state(rng: jax.Array, example_batch: dict, *, task: TrainTask,
               optimizer: optax.GradientTransformation) -> State:
    """A fresh train state. ``example_batch`` only gives shapes (it may be abstract)."""
    init_rng, model_rng, train_rng = jax.random.split(rng, 3)
    rngs = {"params": init_rng, **{name: model_rng for name in task.rng_names}}
    frames = {name: jnp.zeros(spec.shape, spec.dtype) for name, spec in example_batch.items()}
    params = task.model.init(rngs, frames["source"], frames["driving"], train=False)["params"]
    state = {"params": params, "opt_state": optimizer.init(params),
             "step": jnp.zeros((), jnp.int32), "rng": train_rng}
    if task.restart_codes is not None:
        state["code_counts"] = jnp.zeros((task.num_codes,), jnp.int32)
    return state


def train_step(state: State, batch: dict, *, task: TrainTask,
               optimizer: optax.GradientTransformation) -> tuple[State, dict]:
    """One optimizer update on a (global) batch ``{"source", "driving": [B, H, W, C]}``.

    The compute dtype is the model's (``config.tokenizer.dtype``: bfloat16 on TPU/GPU);
    parameters and optimizer state stay float32 either way (Flax ``param_dtype``).
    Returns the new state and scalar metrics (replicated).
    """
    step_rng = jax.random.fold_in(state["rng"], state["step"])
    rngs = {name: jax.random.fold_in(step_rng, i) for i, name in enumerate(task.rng_names)}

    def loss_fn(params):
        outputs = task.model.apply({"params": params}, batch["source"], batch["driving"],
                                   train=True, rngs=rngs)
        return outputs["losses"]["total"].astype(jnp.float32), outputs

    (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_state = {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1}
    losses, model_metrics = outputs["losses"], outputs["metrics"]
    metrics = {"loss": loss,
               "recon_loss": jnp.asarray(losses.get("recon", jnp.nan), jnp.float32),
               "vq_loss": jnp.asarray(losses.get("vq", jnp.nan), jnp.float32),
               "grad_norm": optax.global_norm(grads),
               # NaN parameters show here even when this step's loss was still finite.
               "param_norm": optax.global_norm(params)}
    for name in LOGGED_METRICS:
        if name in model_metrics:
            metrics[name] = jnp.asarray(model_metrics[name], jnp.float32)
    if "code_counts" in state:
        new_state["code_counts"] = state["code_counts"] + outputs["code_counts"]
    return new_state, metrics


def restart_step(state: State, batch: dict, *, task: TrainTask) -> tuple[State, jax.Array]:
    """Dead-code restart: codes unused since the last restart get current encoder outputs.

    Uses the window's ``code_counts`` and this batch's ``action_latents``; resets the counts.
    """
    outputs = task.model.apply({"params": state["params"]}, batch["source"], batch["driving"],
                               train=False)
    rng = jax.random.fold_in(jax.random.fold_in(state["rng"], state["step"]), 0x5EED)
    params, restarted = task.restart_codes(state["params"], state["code_counts"],
                                           outputs["action_latents"], rng)
    return {**state, "params": params,
            "code_counts": jnp.zeros_like(state["code_counts"])}, restarted


def example_batch_spec(image_size: int, channels: int, global_batch_size: int) -> dict:
    shape = (global_batch_size, image_size, image_size, channels)
    return {"source": jax.ShapeDtypeStruct(shape, jnp.float32),
            "driving": jax.ShapeDtypeStruct(shape, jnp.float32)}


@dataclasses.dataclass(frozen=True)
class TrainFunctions:
    """The compiled pieces of a run on one mesh.

    Attributes:
      abstract_state: the state's ``ShapeDtypeStruct`` s with shardings: the restore target.
      state_sharding: the state's shardings (all replicated).
      init: ``rng -> state``, jit-compiled with ``out_shardings``.
      update: ``(state, batch) -> (state, metrics)``, the jit-compiled
        :func:`train_step`; donates the old state.
      restart: the jit-compiled :func:`restart_step`, or None if the task has none.
    """

    abstract_state: Any
    state_sharding: Any
    init: Callable[[jax.Array], State]
    update: Callable[[State, dict], tuple[State, dict]]
    restart: Callable[[State, dict], tuple[State, jax.Array]] | None


def make_train_functions(task: TrainTask, optimizer: optax.GradientTransformation,
                         mesh: jax.sharding.Mesh, batch_spec: dict) -> TrainFunctions:
    """Shape-first init (``eval_shape`` -> shardings -> ``jit(init, out_shardings)``) and the
    jitted update for ``mesh``; ``batch_spec`` gives the global batch's shapes."""
    init_fn = functools.partial(init_state, example_batch=batch_spec, task=task,
                                optimizer=optimizer)
    abstract_state = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    replicated = mesh_lib.replicated(mesh)
    state_sharding = jax.tree.map(lambda _: replicated, abstract_state)
    abstract_state = jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        abstract_state, state_sharding)
    update = jax.jit(functools.partial(train_step, task=task, optimizer=optimizer),
                     donate_argnums=0, out_shardings=(state_sharding, replicated))
    restart = None
    if task.restart_codes is not None:
        restart = jax.jit(functools.partial(restart_step, task=task), donate_argnums=0,
                          out_shardings=(state_sharding, replicated))
    return TrainFunctions(abstract_state=abstract_state, state_sharding=state_sharding,
                          init=jax.jit(init_fn, out_shardings=state_sharding),
                          update=update, restart=restart)
