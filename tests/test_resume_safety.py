"""Workdirs a second run, a changed config or a kill cannot corrupt: one writer at a time,
configs compared on resume, completion markers, divergence named and failed."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dface_jax import cli
from dface_jax.configs import load_config
from dface_jax.runtime import lock
from dface_jax.tokens import cache as cache_lib
from dface_jax.workdir import (COMPLETED_FILE, WorkdirError, is_completed, open_run,
                               read_results)

LABELS = ("negative", "positive", "surprise")


def _cache(tmp_path):
    rng = np.random.default_rng(0)
    subjects = [f"casme2/s{i % 4}" for i in range(24)]
    cache = cache_lib.synthetic_token_cache(rng.integers(0, 3, 24), subjects,
                                            ["casme2"] * 24, LABELS, vector_dim=8)
    return cache_lib.save_token_cache(tmp_path / "tokens.npz", cache)


def _loso(tmp_path, *extra):
    return cli.main(["loso", "--config", "loso_composite.py:tiny", "--tokens",
                     str(tmp_path / "tokens.npz"), "--workdir", str(tmp_path / "run"), *extra])


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    _cache(tmp_path)
    with lock.hold(tmp_path / "run", "loso"):
        assert _loso(tmp_path) == 2
        assert f"{tmp_path / 'run'} is in use by `dface-jax loso` (pid {os.getpid()}" in \
            capsys.readouterr().err
    # A run killed without releasing its lock: same host, its pid gone.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "run" / lock.LOCK_FILE).write_text(json.dumps(
        {"pid": int(dead), "host": __import__("socket").gethostname(), "command": "loso",
         "token": "x"}))
    assert _loso(tmp_path) == 0
    assert not (tmp_path / "run" / lock.LOCK_FILE).exists()


def test_a_finished_run_is_reused_and_a_changed_config_refused(tmp_path, capsys):
    _cache(tmp_path)
    assert _loso(tmp_path) == 0
    capsys.readouterr()
    assert _loso(tmp_path) == 0
    assert "already finished with this config" in capsys.readouterr().out
    assert _loso(tmp_path, "--config.train.learning_rate=0.01") == 2
    err = capsys.readouterr().err
    assert "config.json: this run's config differs in train.learning_rate" in err
    assert _loso(tmp_path, "--config.train.learning_rate=0.01", "--allow-config-change") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["learning_rate"] == 0.01


def test_a_run_killed_before_its_marker_is_run_again(tmp_path, capsys):
    """A kill after results.json but before completed.json: readers refuse the half-finished
    workdir, and the next run completes it."""
    _cache(tmp_path)
    assert _loso(tmp_path) == 0
    (tmp_path / "run" / COMPLETED_FILE).unlink()  # as if killed just before the marker
    with pytest.raises(WorkdirError, match="did not finish"):
        read_results(tmp_path / "run")
    capsys.readouterr()
    assert _loso(tmp_path) == 0
    assert "already finished" not in capsys.readouterr().out
    assert is_completed(tmp_path / "run")


def test_a_diverged_fold_is_named_and_fails_unless_told_to_keep_going(tmp_path, capsys):
    _cache(tmp_path)
    huge = "--config.train.learning_rate=1e30"
    assert _loso(tmp_path, huge) == 2
    err = capsys.readouterr().err
    assert "fold(s) diverged (NaN/inf loss or logits): casme2/s0 (epoch 1)" in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["diverged"][0] == {"subject": "casme2/s0", "epoch": 1}
    assert not is_completed(tmp_path / "run")
    assert _loso(tmp_path, huge, "--keep-going") == 0
    assert is_completed(tmp_path / "run")


def test_open_run_refuses_a_workdir_of_another_kind(tmp_path):
    config = load_config("loso_composite.py:tiny")
    with open_run(tmp_path, "loso", "loso", config):
        pass
    with pytest.raises(WorkdirError, match="is a 'loso' workdir .* expected a tokenizer workdir"):
        with open_run(tmp_path, "tokenizer", "pretrain", config):
            pass


def test_results_are_strict_json(tmp_path):
    from data_pipelines import storage

    storage.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.5]})
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": "nan", "b": ["inf", 1.5]}
