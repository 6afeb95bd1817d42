"""The pretraining loop: resume, feed, update, log, check, checkpoint.

Every process runs :func:`train` with its own data shard; the update is the jitted step of
:mod:`.step` over a data-parallel mesh. A NaN or infinite loss stops the run before it is
saved, naming the step and the last good checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import jax

from data_pipelines import storage
from data_pipelines.errors import InputError
from dface_jax.pretrain import data as data_lib
from dface_jax.pretrain import step as step_lib
from dface_jax.runtime import checkpoint as checkpoint_lib
from dface_jax.runtime import mesh as mesh_lib
from dface_jax.runtime.metrics_log import MetricsWriter
from dface_jax.workdir import open_run

logger = logging.getLogger(__name__)


class NonFiniteLossError(InputError, FloatingPointError):
    """The loss became NaN/inf: the run diverged. The message names the step and the last
    good checkpoint."""


def check_finite(step: int, metrics: dict, checkpointer: checkpoint_lib.Checkpointer) -> None:
    """Raises :class:`NonFiniteLossError` if the loss or a norm of this step is not finite."""
    bad = [name for name in ("loss", "grad_norm", "param_norm")
           if not math.isfinite(float(metrics[name]))]
    if bad:
        raise NonFiniteLossError(
            f"{' and '.join(bad)} became {float(metrics[bad[0]])} at step {step}; stopping. "
            f"The last good checkpoint (step {checkpointer.latest_step()}) is kept in "
            f"{checkpointer.manager.directory}; lower train.learning_rate or use float32.")


def train(config: Any, workdir: storage.PathLike, *, shard_dir: storage.PathLike,
          task: step_lib.TrainTask | None = None, progress: bool = True) -> step_lib.State:
    """Runs (or resumes) pretraining in ``workdir`` until ``config.train.num_steps``.

    Returns the final state (global, replicated arrays). Raises
    :class:`NonFiniteLossError` if the loss becomes NaN/inf.
    """
    from data_pipelines.talking_faces.shards import read_metadata

    workdir = storage.as_path(workdir)
    train_config = step_lib.OptimizerConfig.from_dict(config.train)
    task = step_lib.tokenizer_task(config.tokenizer) if task is None else task
    optimizer = step_lib.make_optimizer(train_config)

    mesh = mesh_lib.make_mesh()
    local_batch_size = mesh_lib.check_global_batch_size(train_config.batch_size, mesh)
    metadata = read_metadata(shard_dir)
    batch_spec = step_lib.example_batch_spec(metadata["image_size"], metadata["channels"],
                                             train_config.batch_size)
    functions = step_lib.make_train_functions(task, optimizer, mesh, batch_spec)
    data_iterator = data_lib.build_data_iterator(config, shard_dir, local_batch_size)

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
    schedule = step_lib.optimizer_schedule(train_config)

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
                check_finite(step, metrics, checkpointer)  # before any save of this step
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


def run_pretraining(config: Any, workdir: storage.PathLike, *, progress: bool = True,
                    allow_config_change: bool = False) -> step_lib.State:
    """What ``dface-jax pretrain`` does, inside ``workdir.open_run`` (lock, config check on
    resume, config and manifest, completion marker): renders SynthFACS clip shards if the
    config asks for them, then trains or resumes."""
    shard_dir = data_lib.shard_dir_of(config, workdir)
    with open_run(workdir, "tokenizer", "pretrain", config,
                  inputs={"clip_shards": storage.absolute(shard_dir)},
                  allow_config_change=allow_config_change, primary=jax.process_index() == 0):
        data_lib.ensure_clip_shards(config, workdir)
        return train(config, workdir, shard_dir=shard_dir, progress=progress)
