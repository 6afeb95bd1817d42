"""Tokenizer pretraining: one pure jit-compiled train step, data-parallel over a ``Mesh``.

The state is a plain dict (big_vision style)::

    {"params": ..., "opt_state": ..., "step": int32 [], "rng": uint32 [2],
     "model_state": {...}    # non-param collections (the EMA codebook statistics), if any
     "code_counts": int32 [K]}  # code usage summed since the last dead-code restart, if on

and the update is ``jax.jit(train_step, donate_argnums=0, out_shardings=...)``: the batch is
sharded over the mesh's ``data`` axis, everything in the state is replicated, and XLA
inserts the gradient all-reduce. Per-step randomness is ``fold_in(rng, step)``, so a
resumed run draws the same numbers as an uninterrupted one.

The loop is generic over a :class:`TrainTask` (a Flax module whose ``__call__(source,
driving, *, train)`` returns ``{"losses": {"total", ...}, "metrics": {...}}``, the
:class:`~dface_jax.models.tokenizer.ActionTokenizer` contract), so tests can drive it with
any small model.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import pathlib
import time
from typing import Any, Callable, Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dface_jax.train import checkpoint as checkpoint_lib
from dface_jax.train import mesh as mesh_lib
from dface_jax.train.metrics_log import MetricsWriter

logger = logging.getLogger(__name__)

State = dict[str, Any]
# Scalars every metrics.jsonl line carries (INTERFACES.md / the issue).
LOGGED_LOSSES = ("loss", "recon_loss", "vq_loss")
LOGGED_METRICS = ("perplexity", "codes_in_use")


@dataclasses.dataclass(frozen=True)
class TrainTask:
    """What the loop needs to know about a model.

    Attributes:
      model: Linen module; ``model.apply(variables, source, driving, train=True,
        rngs=..., mutable=...)`` returns ``{"losses": {"total", "recon", "vq"}, "metrics":
        {"perplexity", "codes_in_use"}, "code_counts" int32 [K], "action_latents" [B, N, D]}``
        (the last two only when ``restart_codes`` is set).
      rng_names: rng streams the model draws from in training (e.g. ``"nsvq"``).
      mutable: non-param collections the model updates in training (e.g. ``"vq_ema"``).
      after_update: ``(params, model_state) -> params``, run after the optimizer update
        (writes the EMA codebook into the params).
      restart_codes: ``(params, model_state, code_counts, action_latents, rng) ->
        (params, model_state, num_restarted)``; dead-code restart, or None.
      num_codes: codebook size K (needed to count code usage for restarts).
    """

    model: nn.Module
    rng_names: tuple[str, ...] = ()
    mutable: tuple[str, ...] = ()
    after_update: Callable[[Any, dict], Any] | None = None
    restart_codes: Callable[..., tuple[Any, dict, jax.Array]] | None = None
    num_codes: int = 0


def tokenizer_task(tokenizer_config: dict | Any) -> TrainTask:
    """The :class:`TrainTask` of the C-VQ-VAE action tokenizer from its config."""
    from dface_jax.models import tokenizer as tokenizer_lib
    from dface_jax.models import vq

    if not isinstance(tokenizer_config, tokenizer_lib.TokenizerConfig):
        tokenizer_config = tokenizer_lib.TokenizerConfig.from_dict(dict(tokenizer_config))
    ema = getattr(tokenizer_config, "codebook_update", "loss") == "ema"
    mutable = (vq.EMA_COLLECTION,) if ema else ()

    def after_update(params, model_state):
        return vq.sync_ema_codebook(params, model_state[vq.EMA_COLLECTION])

    def restart_codes(params, model_state, code_counts, action_latents, rng):
        ema_state = model_state.get(vq.EMA_COLLECTION) if ema else None
        params, ema_state, restarted = vq.restart_dead_codes(
            params, code_counts, action_latents, rng, ema_state=ema_state)
        if ema:
            model_state = {**model_state, vq.EMA_COLLECTION: ema_state}
        return params, model_state, restarted

    return TrainTask(model=tokenizer_lib.ActionTokenizer(tokenizer_config),
                     rng_names=(vq.NSVQ_RNG, "dropout"), mutable=mutable,
                     after_update=after_update if ema else None,
                     restart_codes=restart_codes, num_codes=tokenizer_config.codebook_size)


def make_optimizer(train_config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW with global-norm clipping and a linear warm-up then cosine decay.

    Released defaults: lr 3e-4, weight decay 0, clip 0.5.
    """
    schedule = optimizer_schedule(train_config)
    return optax.chain(
        optax.clip_by_global_norm(train_config.grad_clip),
        optax.adamw(schedule, b1=train_config.adam_b1, b2=train_config.adam_b2,
                    weight_decay=train_config.weight_decay))


def init_state(rng: jax.Array, example_batch: dict, *, task: TrainTask,
               optimizer: optax.GradientTransformation) -> State:
    """A fresh train state. ``example_batch`` only gives shapes (it may be abstract)."""
    init_rng, model_rng, train_rng = jax.random.split(rng, 3)
    rngs = {"params": init_rng, **{name: model_rng for name in task.rng_names}}
    frames = {name: jnp.zeros(spec.shape, spec.dtype) for name, spec in example_batch.items()}
    variables = task.model.init(rngs, frames["source"], frames["driving"], train=False)
    variables = dict(variables)
    params = variables.pop("params")
    state = {"params": params, "opt_state": optimizer.init(params),
             "step": jnp.zeros((), jnp.int32), "rng": train_rng}
    if variables:
        state["model_state"] = variables
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
    model_state = state.get("model_state", {})

    def loss_fn(params):
        variables = {"params": params, **model_state}
        outputs, new_model_state = task.model.apply(
            variables, batch["source"], batch["driving"], train=True, rngs=rngs,
            mutable=list(task.mutable))
        return outputs["losses"]["total"].astype(jnp.float32), (outputs, new_model_state)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, (outputs, new_model_state)), grads = grad_fn(state["params"])
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    new_model_state = {**model_state, **dict(new_model_state)}
    if task.after_update is not None:
        params = task.after_update(params, new_model_state)

    new_state = {**state, "params": params, "opt_state": opt_state, "step": state["step"] + 1}
    if "model_state" in state:
        new_state["model_state"] = new_model_state
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
    variables = {"params": state["params"], **state.get("model_state", {})}
    outputs = task.model.apply(variables, batch["source"], batch["driving"], train=False)
    rng = jax.random.fold_in(jax.random.fold_in(state["rng"], state["step"]), 0x5EED)
    params, model_state, restarted = task.restart_codes(
        state["params"], state.get("model_state", {}), state["code_counts"],
        outputs["action_latents"], rng)
    new_state = {**state, "params": params, "code_counts": jnp.zeros_like(state["code_counts"])}
    if "model_state" in state:
        new_state["model_state"] = model_state
    return new_state, restarted


def example_batch_spec(image_size: int, channels: int, global_batch_size: int) -> dict:
    shape = (global_batch_size, image_size, image_size, channels)
    return {"source": jax.ShapeDtypeStruct(shape, jnp.float32),
            "driving": jax.ShapeDtypeStruct(shape, jnp.float32)}


def build_data_iterator(config: ml_collections.ConfigDict, shard_dir: str | pathlib.Path,
                        local_batch_size: int):
    """This process's Grain iterator of pair batches (its shard of every global batch)."""
    from data_pipelines.clip_shards import pair_dataset

    data = config.data
    dataset = pair_dataset(shard_dir, seed=data.seed, min_gap=data.min_gap,
                           max_gap=data.max_gap, batch_size=local_batch_size,
                           shard_index=jax.process_index(), shard_count=jax.process_count(),
                           flip_prob=data.flip_prob, brightness=data.brightness,
                           num_workers=data.num_workers)
    return iter(dataset)


def synthetic_talking_chunks(data_config: ml_collections.ConfigDict, image_size: int, *,
                             chunk_size: int = 64) -> Iterator[dict[str, np.ndarray]]:
    """The SynthFACS talking clips ``config.data`` describes, ``chunk_size`` at a time: the
    ``talking_clips`` dicts (``frames``, ``au_intensities``, ``identity``) of chunk i, drawn
    with seed ``synth_seed * 100003 + i``, so memory stays small whatever the number of
    clips and the true action intensities of every training frame can be recovered."""
    from data_pipelines.synthetic import Nuisance, talking_clips

    # Frame-to-frame head jitter scaled by data.pose_jitter (1 = SynthFACS's default). Within
    # a pair, jitter moves every pixel and outweighs a facial action in the pixel loss, so
    # the tokens would spend themselves on head pose.
    default = Nuisance()
    # data.pose_drift scales the slow head drift across a clip the same way.
    jitter = data_config.get("pose_jitter", 1.0)
    # data.sensor_noise scales the per-frame sensor noise: it is drawn anew for every frame,
    # so a pair's two frames differ by it everywhere, about as much as a small action.
    nuisance = dataclasses.replace(default, translation_std=default.translation_std * jitter,
                                   rotation_std=default.rotation_std * jitter,
                                   scale_std=default.scale_std * jitter,
                                   noise_std=default.noise_std
                                   * data_config.get("sensor_noise", 1.0))
    for chunk, first in enumerate(range(0, data_config.num_clips, chunk_size)):
        count = min(chunk_size, data_config.num_clips - first)
        yield talking_clips(seed=data_config.synth_seed * 100003 + chunk,
                            num_clips=count, num_frames=data_config.num_frames,
                            size=image_size, nuisance=nuisance,
                            drift=data_config.get("pose_drift", 1.0),
                            speech_probability=data_config.get("speech_probability", 0.8),
                            action_knot_spacing=data_config.get("action_knot_spacing", 12.0),
                            bursts_per_clip=data_config.get("bursts_per_clip", 0),
                            burst_apex=data_config.get("burst_apex", (0.5, 1.0)),
                            placement=data_config.get("head_placement", 0.0),
                            camera_scales=tuple(data_config.get("camera_scales", (1.0, 1.0))))


def generate_synthetic_clips(data_config: ml_collections.ConfigDict, image_size: int,
                             out_dir: str | pathlib.Path, *, chunk_size: int = 64) -> pathlib.Path:
    """Renders ``data.num_clips`` SynthFACS talking clips (:func:`synthetic_talking_chunks`)
    into clip shards at ``out_dir``."""
    from data_pipelines.clip_shards import write_clip_shards

    frames = (clip for chunk in synthetic_talking_chunks(data_config, image_size,
                                                         chunk_size=chunk_size)
              for clip in chunk["frames"])
    write_clip_shards(frames, out_dir, clips_per_shard=data_config.clips_per_shard)
    return pathlib.Path(out_dir)


def ensure_clip_shards(config: ml_collections.ConfigDict,
                       workdir: str | pathlib.Path) -> pathlib.Path:
    """The shard directory of ``config.data``; generates SynthFACS clips into
    ``WORKDIR/data`` when ``data.dir`` is empty and ``data.synthetic`` is set.

    In a multi-process job process 0 renders and the others wait for it.
    """
    from data_pipelines.clip_shards import METADATA_FILE

    data = config.data
    shard_dir = pathlib.Path(data.dir) if data.dir else pathlib.Path(workdir) / "data"
    if (shard_dir / METADATA_FILE).exists():
        return shard_dir
    if not data.synthetic:
        raise FileNotFoundError(f"data.dir {shard_dir} holds no clip shards ({METADATA_FILE} "
                                f"missing); write them with `dface-jax prepare-voxceleb`")
    if jax.process_index() == 0:
        partial = shard_dir.with_name(shard_dir.name + ".partial")
        if partial.exists():  # left by an interrupted generation
            import shutil
            shutil.rmtree(partial)
        generate_synthetic_clips(data, config.tokenizer.image_size, partial)
        partial.rename(shard_dir)
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("synthetic clip shards written")
    return shard_dir


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; the message names the step and the last good checkpoint."""


def _check_finite(step: int, metrics: dict, checkpointer: checkpoint_lib.Checkpointer) -> None:
    bad = [name for name in ("loss", "grad_norm", "param_norm") if not math.isfinite(float(metrics[name]))]
    if bad:
        raise NonFiniteLossError(
            f"{' and '.join(bad)} became {float(metrics[bad[0]])} at step {step}; stopping. "
            f"The last good checkpoint (step {checkpointer.latest_step()}) is kept in "
            f"{checkpointer.manager.directory}; lower train.learning_rate or use float32.")


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


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
          shard_dir: str | pathlib.Path, task: TrainTask | None = None,
          progress: bool = True) -> State:
    """Runs (or resumes) pretraining in ``workdir`` until ``config.train.num_steps``.

    Every process runs this with its own data shard. Returns the final state (global,
    replicated arrays). Raises :class:`NonFiniteLossError` if the loss becomes NaN/inf.
    """
    from data_pipelines.clip_shards import read_metadata

    workdir = pathlib.Path(workdir)
    train_config = config.train
    task = tokenizer_task(config.tokenizer) if task is None else task
    optimizer = make_optimizer(train_config)

    mesh = mesh_lib.make_mesh()
    local_batch_size = mesh_lib.check_global_batch_size(train_config.batch_size, mesh)
    metadata = read_metadata(shard_dir)
    batch_spec = example_batch_spec(metadata["image_size"], metadata["channels"],
                                    train_config.batch_size)
    functions = make_train_functions(task, optimizer, mesh, batch_spec)
    data_iterator = build_data_iterator(config, shard_dir, local_batch_size)

    checkpointer = checkpoint_lib.Checkpointer(
        workdir, max_to_keep=train_config.keep_checkpoints,
        save_interval_steps=train_config.checkpoint_every, with_data=True)
    # Resume order: (1) the latest checkpoint in workdir/checkpoints (model state and the
    # data iterator, so the next batch is the one the interrupted run would have seen);
    # (2) otherwise a fresh init from config.seed with the iterator at its start.
    if checkpointer.latest_step() is not None:
        state = checkpointer.restore(functions.abstract_state, data_iterator)
        logger.info("resumed from step %d in %s", int(state["step"]), workdir)
    else:
        state = functions.init(jax.random.PRNGKey(config.seed))
    start_step = int(state["step"])
    restart_every = train_config.restart_dead_codes_every if functions.restart else 0
    schedule = optimizer_schedule(train_config)

    writer = MetricsWriter(workdir, resume_step=start_step if start_step else None)
    bar = None
    if progress and jax.process_index() == 0:
        from tqdm import tqdm
        bar = tqdm(total=train_config.num_steps, initial=start_step, desc="pretrain",
                   dynamic_ncols=True)
    interval_start, interval_steps = time.perf_counter(), 0
    try:
        for step in range(start_step + 1, train_config.num_steps + 1):
            batch = mesh_lib.global_batch(next(data_iterator), mesh)
            state, metrics = functions.update(state, batch)
            interval_steps += 1
            is_last = step == train_config.num_steps
            if restart_every and step % restart_every == 0 and not is_last:
                state, restarted = functions.restart(state, batch)
                metrics = {**metrics, "restarted_codes": restarted}
            wants_save = is_last or step % train_config.checkpoint_every == 0
            if step % train_config.log_every == 0 or wants_save:
                metrics = jax.device_get(metrics)
                _check_finite(step, metrics, checkpointer)  # before any save of this step
                # Wall time since the last log (the first interval includes compilation).
                elapsed = time.perf_counter() - interval_start
                record = writer.write(step, {
                    **metrics, "learning_rate": float(schedule(step - 1)),
                    "examples_per_sec": interval_steps * train_config.batch_size / elapsed})
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4f}",
                                    codes=int(record.get("codes_in_use", 0)))
                interval_start, interval_steps = time.perf_counter(), 0
            if wants_save:
                checkpointer.save(step, state, data_iterator, force=is_last)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        checkpointer.close()
        close = getattr(data_iterator, "close", None)
        if close is not None:
            close()
    return state


def optimizer_schedule(train_config: ml_collections.ConfigDict) -> optax.Schedule:
    """The learning-rate schedule of :func:`make_optimizer` (for logging)."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=train_config.learning_rate,
        warmup_steps=train_config.warmup_steps,
        decay_steps=max(train_config.num_steps, train_config.warmup_steps + 1),
        end_value=train_config.learning_rate * train_config.end_learning_rate_ratio)
