"""Orbax checkpoints of a training run: model state and the Grain iterator in one atomic save.

Layout of a workdir (INTERFACES.md "Checkpoints and workdirs")::

    WORKDIR/config.json          the run's config (dface_jax.configs.save_config)
    WORKDIR/metrics.jsonl        one JSON object per logged step
    WORKDIR/checkpoints/<step>/  one Orbax CheckpointManager step, items:
        state/   {"params", "opt_state", "step", "rng"[, "model_state"]} (StandardSave)
        data/    the Grain iterator position, one file per JAX process (pretraining only)

The workdir may be local or ``gs://``. Orbax finishes a step by renaming it from a
temporary name locally, and on ``gs://`` (where a rename is a copy) by writing
``commit_success.txt`` into it last; either way a job killed during a save leaves the
previous step as the latest. ``max_to_keep`` old steps are kept. :func:`restore_params` reads the parameters back as host numpy arrays on any machine,
whatever device layout wrote them.
"""

from __future__ import annotations

from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from data_pipelines import storage
from dface_jax.configs import save_config

CHECKPOINT_DIR = "checkpoints"
STATE_ITEM = "state"
DATA_ITEM = "data"


# Orbax's marker of a finished step on object storage (orbax.checkpoint's atomicity module).
COMMIT_FILE = "commit_success.txt"


def checkpoint_dir(workdir: storage.PathLike) -> epath.Path:
    return storage.as_path(storage.absolute(workdir)) / CHECKPOINT_DIR


class Checkpointer:
    """A ``CheckpointManager`` keeping the last ``max_to_keep`` steps of ``{state, data}``.

    Args:
      workdir: the run's directory; checkpoints go to ``workdir/checkpoints``.
      max_to_keep: how many of the most recent steps survive.
      save_interval_steps: :meth:`save` without ``force`` is a no-op between multiples of it.
      with_data: whether steps carry the Grain iterator (``data`` item).
    """

    def __init__(self, workdir: storage.PathLike, *, max_to_keep: int = 3,
                 save_interval_steps: int = 1, with_data: bool = True):
        self.with_data = with_data
        handlers = {STATE_ITEM: ocp.StandardCheckpointHandler()}
        if with_data:
            handlers[DATA_ITEM] = grain.checkpoint.CheckpointHandler()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, save_interval_steps=save_interval_steps, create=True,
            # The Grain handler writes synchronously; one synchronous save keeps the two
            # items of a step consistent and makes "saved" mean "on disk".
            enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(checkpoint_dir(workdir), options=options,
                                             item_handlers=handlers)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, data_iterator: Any = None, *,
             force: bool = False) -> bool:
        """Saves ``state`` (a pytree of arrays) and the iterator's position at ``step``."""
        items = {STATE_ITEM: ocp.args.StandardSave(state)}
        if self.with_data:
            if data_iterator is None:
                raise ValueError("this Checkpointer saves the data iterator; pass data_iterator")
            items[DATA_ITEM] = grain.checkpoint.CheckpointSave(data_iterator)
        return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, abstract_state: Any, data_iterator: Any = None, *,
                step: int | None = None) -> Any:
        """Restores the state into the shapes/shardings of ``abstract_state`` (a pytree of
        ``jax.ShapeDtypeStruct`` with ``.sharding``) and moves ``data_iterator`` (fresh, from
        the same pipeline) to the saved position, in place. Returns the state."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.manager.directory}")
        items = {STATE_ITEM: ocp.args.StandardRestore(abstract_state)}
        if self.with_data:
            if data_iterator is None:
                raise ValueError("this Checkpointer restores the data iterator; pass data_iterator")
            items[DATA_ITEM] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored[STATE_ITEM]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def save_params(workdir: storage.PathLike, params: Any, config: Any = None, *,
                step: int = 0) -> epath.Path:
    """Writes a checkpoint whose ``state`` item is ``{"params": params}`` and then, if a
    config is given, ``config.json`` (so the config never describes parameters that are not
    on disk yet); for imported weights and LOSO folds. Returns the checkpoint dir.

    Writing a step that exists (a LOSO sweep re-run into its workdir) replaces it without a
    moment where neither version is on disk: see :func:`_replace_step`.
    """
    workdir = storage.as_path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _finish_interrupted_replace(workdir)
    if (checkpoint_dir(workdir) / str(step)).exists():
        _replace_step(workdir, params, step)
    else:
        _save_params_step(workdir, params, step)
    if config is not None:
        save_config(config, workdir / "config.json")
    return checkpoint_dir(workdir)


REPLACED_SUFFIX = ".replaced"  # Orbax lists only integer step names, so it skips these
STAGING_DIR = ".replacing"


def _save_params_step(workdir: epath.Path, params: Any, step: int) -> None:
    checkpointer = Checkpointer(workdir, max_to_keep=1, with_data=False)
    try:
        checkpointer.save(step, {"params": params}, force=True)
    finally:
        checkpointer.close()


def _replace_step(workdir: epath.Path, params: Any, step: int) -> None:
    """Orbax refuses to save over an existing step, and deleting it first would lose it if
    the job died before the new one was written. So the new step is written in full under
    ``workdir/.replacing`` first.

    Locally, the old step is then renamed to ``<step>.replaced``, the new one renamed into
    place, and only then the old one removed; a job killed between the two renames leaves
    ``<step>.replaced``, which :func:`_finish_interrupted_replace` puts back.

    On object storage a directory rename is a copy and a delete, so there the finished
    staged step is the commitment: :func:`_install_staged_step` uncommits the old step
    (removes its ``commit_success.txt``, after which Orbax no longer lists it), replaces its
    files and writes the marker last; a job killed anywhere in between is completed from the
    staged step by :func:`_finish_interrupted_replace`."""
    staging = workdir / STAGING_DIR
    storage.rmtree(staging)
    _save_params_step(staging, params, step)
    if not storage.is_local(workdir):
        _install_staged_step(workdir, step)
        return
    directory = checkpoint_dir(workdir)
    current, aside = directory / str(step), directory / f"{step}{REPLACED_SUFFIX}"
    current.rename(aside)
    (checkpoint_dir(staging) / str(step)).rename(current)
    aside.rmtree()
    staging.rmtree()


def _install_staged_step(workdir: epath.Path, step: int) -> None:
    """Object storage: copies the finished step in ``workdir/.replacing`` over ``step``."""
    current = checkpoint_dir(workdir) / str(step)
    (current / COMMIT_FILE).unlink(missing_ok=True)
    storage.rmtree(current)
    storage.copy_tree(checkpoint_dir(workdir / STAGING_DIR) / str(step), current,
                      last=(COMMIT_FILE,))
    (workdir / STAGING_DIR).rmtree()


def _finish_interrupted_replace(workdir: storage.PathLike) -> None:
    """Undoes or completes a :func:`_replace_step` that a killed job left half done."""
    workdir = storage.as_path(workdir)
    if not storage.is_local(workdir):
        staged = checkpoint_dir(workdir / STAGING_DIR)
        for step_dir in (staged.iterdir() if staged.exists() else ()):
            if step_dir.name.isdigit() and (step_dir / COMMIT_FILE).exists():
                _install_staged_step(workdir, int(step_dir.name))
        return
    directory = checkpoint_dir(workdir)
    if not directory.exists():
        return
    for aside in directory.glob(f"*{REPLACED_SUFFIX}"):
        current = directory / aside.name[:-len(REPLACED_SUFFIX)]
        if current.exists():  # the new step made it into place: the old one can go
            aside.rmtree()
        else:
            aside.rename(current)


def restore_state_to_host(workdir: storage.PathLike, step: int | None = None) -> dict:
    """The whole ``state`` item of a checkpoint as nested dicts of host numpy arrays.

    No target tree is needed: the structure comes from the checkpoint's metadata and every
    leaf is restored as ``np.ndarray`` on this host, so a checkpoint written on 8 GPUs or a
    TPU pod reads on a laptop CPU.
    """
    directory = checkpoint_dir(workdir)
    _finish_interrupted_replace(workdir)
    if not directory.exists():
        raise FileNotFoundError(f"{directory} does not exist: {workdir} holds no checkpoints")
    # The data item (a pretraining run's Grain iterator position) is not restored here, but
    # the manager must know its handler: otherwise it logs a warning for it on every load.
    manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(create=False),
        item_handlers={STATE_ITEM: ocp.PyTreeCheckpointHandler(),
                       DATA_ITEM: grain.checkpoint.CheckpointHandler()})
    try:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{directory} holds no finished checkpoint step")
        if step not in manager.all_steps():
            raise FileNotFoundError(f"{directory} has no step {step}; steps: {manager.all_steps()}")
        metadata = manager.item_metadata(step)[STATE_ITEM]
        tree = getattr(metadata, "tree", metadata)
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        restored = manager.restore(step, args=ocp.args.Composite(**{
            STATE_ITEM: ocp.args.PyTreeRestore(restore_args=restore_args)}))
        return restored[STATE_ITEM]
    finally:
        manager.close()


def latest_step(workdir: storage.PathLike) -> int | None:
    """The latest finished checkpoint step of ``workdir`` (None if it has none)."""
    directory = checkpoint_dir(workdir)
    _finish_interrupted_replace(workdir)
    if not directory.exists():
        return None
    manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False))
    try:
        return manager.latest_step()
    finally:
        manager.close()


def restore_params(workdir: storage.PathLike, step: int | None = None) -> Any:
    """``params`` of the latest (or given) checkpoint step, as host numpy arrays."""
    state = restore_state_to_host(workdir, step)
    if "params" not in state:
        raise KeyError(f"checkpoint in {checkpoint_dir(workdir)} has no 'params' in its state "
                       f"item; it has {sorted(state)}")
    return state["params"]
