"""Orbax checkpoints: state + Grain iterator in one step, keep-last-K, host-numpy restore."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipelines import storage
from data_pipelines.talking_faces import shards as clip_shards
from dface_jax.configs import read_config
from dface_jax.runtime import checkpoint as checkpoint_lib

import ml_collections


def _state(seed=0):
    keys = jax.random.split(jax.random.PRNGKey(seed), 2)
    params = {"dense": {"kernel": jax.random.normal(keys[0], (4, 3)), "bias": jnp.zeros(3)},
              "codebook": jax.random.normal(keys[1], (8, 2))}
    return {"params": params, "opt_state": optax.adamw(1e-3).init(params),
            "step": jnp.asarray(7, jnp.int32), "rng": jax.random.PRNGKey(seed + 1)}


@pytest.fixture
def shard_dir(tmp_path):
    clips = np.random.default_rng(0).integers(0, 255, (5, 6, 8, 8, 1)).astype(np.uint8)
    clip_shards.write_clip_shards(clips, tmp_path / "shards", clips_per_shard=2)
    return tmp_path / "shards"


def _iterator(shard_dir):
    return iter(clip_shards.pair_dataset(shard_dir, seed=1, min_gap=1, max_gap=3, batch_size=2))


def test_state_and_iterator_round_trip(tmp_path, shard_dir):
    state = _state()
    iterator = _iterator(shard_dir)
    next(iterator)
    checkpointer = checkpoint_lib.Checkpointer(tmp_path / "w", max_to_keep=2)
    assert checkpointer.save(7, state, iterator, force=True)
    expected_batch = next(iterator)
    checkpointer.close()

    reopened = checkpoint_lib.Checkpointer(tmp_path / "w", max_to_keep=2)
    assert reopened.latest_step() == 7
    fresh_iterator = _iterator(shard_dir)
    restored = reopened.restore(jax.eval_shape(lambda: _state(seed=99)), fresh_iterator)
    reopened.close()
    jax.tree.map(np.testing.assert_array_equal, restored, state)
    # optax's namedtuples come back as namedtuples (the abstract state is the target).
    assert type(restored["opt_state"]) is type(state["opt_state"])
    np.testing.assert_array_equal(next(fresh_iterator)["source"], expected_batch["source"])


def test_keeps_the_last_k_steps(tmp_path, shard_dir):
    iterator = _iterator(shard_dir)
    checkpointer = checkpoint_lib.Checkpointer(tmp_path / "w", max_to_keep=2)
    for step in (1, 2, 3, 4):
        checkpointer.save(step, _state(step), iterator, force=True)
    assert checkpointer.all_steps() == [3, 4]
    checkpointer.close()


def test_restore_params_gives_host_numpy(tmp_path):
    state = _state()
    checkpointer = checkpoint_lib.Checkpointer(tmp_path / "w", with_data=False)
    checkpointer.save(3, state, force=True)
    checkpointer.close()
    params = checkpoint_lib.restore_params(tmp_path / "w")
    leaves = jax.tree.leaves(params)
    assert leaves and all(isinstance(leaf, np.ndarray) for leaf in leaves)
    jax.tree.map(np.testing.assert_array_equal, params, jax.device_get(state["params"]))


def test_save_params_writes_config_and_round_trips(tmp_path):
    params = jax.device_get(_state()["params"])
    config = ml_collections.ConfigDict({"tokenizer": {"dim": 8}})
    checkpoint_lib.save_params(tmp_path / "w", params, config, step=5)
    assert read_config(tmp_path / "w" / "config.json").tokenizer.dim == 8
    jax.tree.map(np.testing.assert_array_equal,
                 checkpoint_lib.restore_params(tmp_path / "w", step=5), params)


def test_save_params_over_an_existing_step_replaces_it(tmp_path):
    checkpoint_lib.save_params(tmp_path, {"w": np.zeros(2, np.float32)}, step=3)
    checkpoint_lib.save_params(tmp_path, {"w": np.full(2, 7.0, np.float32)}, step=3)
    np.testing.assert_array_equal(checkpoint_lib.restore_params(tmp_path, step=3)["w"], [7, 7])
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]
    assert not (tmp_path / checkpoint_lib.STAGING_DIR).exists()


def test_a_replace_killed_between_its_renames_loses_nothing(tmp_path, monkeypatch):
    checkpoint_lib.save_params(tmp_path, {"w": np.zeros(2, np.float32)}, step=3)
    path_class = type(storage.as_path(tmp_path))  # the workdir code's (etils.epath) paths
    rename = path_class.rename
    calls = []

    def dies_on_second_rename(self, target):
        if str(target).startswith(str(tmp_path / "checkpoints")):  # not Orbax's own renames
            calls.append(target)
            if len(calls) == 2:
                raise KeyboardInterrupt("killed")
        return rename(self, target)

    monkeypatch.setattr(path_class, "rename", dies_on_second_rename)
    with pytest.raises(KeyboardInterrupt):
        checkpoint_lib.save_params(tmp_path, {"w": np.ones(2, np.float32)}, step=3)
    monkeypatch.undo()
    # died moving the new step into place
    assert str(calls[-1]) == str(tmp_path / "checkpoints" / "3")
    # The old step sits aside, out of Orbax's sight; the next reader puts it back.
    assert not (tmp_path / "checkpoints" / "3").exists()
    np.testing.assert_array_equal(checkpoint_lib.restore_params(tmp_path, step=3)["w"], [0, 0])
    checkpoint_lib.save_params(tmp_path, {"w": np.ones(2, np.float32)}, step=3)
    np.testing.assert_array_equal(checkpoint_lib.restore_params(tmp_path, step=3)["w"], [1, 1])


def test_save_config_leaves_no_temporary_file(tmp_path):
    from dface_jax.configs import save_config
    save_config(ml_collections.ConfigDict({"a": 1}), tmp_path / "config.json")
    save_config(ml_collections.ConfigDict({"a": 2}), tmp_path / "config.json")
    assert read_config(tmp_path / "config.json").a == 2
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_missing_checkpoints_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no checkpoints"):
        checkpoint_lib.restore_params(tmp_path / "empty")
    checkpoint_lib.save_params(tmp_path / "w", {"w": np.ones(2, np.float32)}, step=1)
    with pytest.raises(FileNotFoundError, match="no step 9"):
        checkpoint_lib.restore_params(tmp_path / "w", step=9)
