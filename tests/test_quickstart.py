"""The quickstart's resumable step runner (fast) and the whole quickstart at tiny scale (slow)."""

import json
import subprocess
import sys

import pytest

from dface_jax import quickstart


def _step(out_dir, name, calls, *, write=True, fail=False):
    def run():
        calls.append(name)
        if fail:
            raise KeyboardInterrupt  # an interrupted step: no marker may be written
        if write:
            (out_dir / name).write_text("x")
        return {"wrote": name}
    return quickstart.Step(name, f"make {name}", (name,), run)


def test_steps_run_once_and_skip_when_done(tmp_path):
    calls = []
    steps = [_step(tmp_path, "a", calls), _step(tmp_path, "b", calls)]
    first = quickstart.run_steps(tmp_path, steps, log=lambda _: None)
    assert calls == ["a", "b"] and not first["a"]["skipped"]
    assert first["b"]["summary"] == {"wrote": "b"}
    second = quickstart.run_steps(tmp_path, steps, log=lambda _: None)
    assert calls == ["a", "b"], "finished steps must not run again"
    assert second["a"]["skipped"] and second["b"]["summary"] == {"wrote": "b"}


def test_a_step_reruns_when_its_output_or_marker_is_gone(tmp_path):
    calls = []
    steps = [_step(tmp_path, "a", calls), _step(tmp_path, "b", calls)]
    quickstart.run_steps(tmp_path, steps, log=lambda _: None)
    (tmp_path / "b").unlink()  # output deleted by the user
    quickstart.step_marker(tmp_path, "a").unlink()  # marker lost (e.g. killed before it)
    quickstart.run_steps(tmp_path, steps, log=lambda _: None)
    assert calls == ["a", "b", "a", "b"]


def test_an_interrupted_step_leaves_no_marker_and_later_steps_wait(tmp_path):
    calls = []
    with pytest.raises(KeyboardInterrupt):
        quickstart.run_steps(tmp_path, [_step(tmp_path, "a", calls),
                                        _step(tmp_path, "b", calls, fail=True),
                                        _step(tmp_path, "c", calls)], log=lambda _: None)
    assert calls == ["a", "b"]
    assert not quickstart.step_marker(tmp_path, "b").exists()
    quickstart.run_steps(tmp_path, [_step(tmp_path, "a", calls), _step(tmp_path, "b", calls),
                                    _step(tmp_path, "c", calls)], log=lambda _: None)
    assert calls == ["a", "b", "b", "c"]


def test_a_step_that_does_not_write_its_output_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="'a' finished without writing"):
        quickstart.run_steps(tmp_path, [_step(tmp_path, "a", [], write=False)],
                             log=lambda _: None)
    assert not quickstart.step_marker(tmp_path, "a").exists()


def test_resuming_with_another_config_is_refused(tmp_path):
    config = quickstart.quickstart_config("small")
    quickstart._check_same_config(tmp_path, config)
    quickstart._check_same_config(tmp_path, config)  # same config: fine
    other = quickstart.quickstart_config("small", ["--config.synth.seed=7"])
    with pytest.raises(ValueError, match=r"different config \(fields \['synth'\]"):
        quickstart._check_same_config(tmp_path, other)


def test_configs_of_both_sizes_load():
    small, paper = quickstart.quickstart_config("small"), quickstart.quickstart_config("paper")
    assert small.pretrain.tokenizer.image_size == small.prepare.image_size == 64
    assert paper.pretrain.tokenizer.image_size == paper.prepare.image_size == 256
    with pytest.raises(ValueError, match="size 'huge'"):
        quickstart.quickstart_config("huge")


@pytest.mark.slow
def test_whole_quickstart_at_tiny_scale(tmp_path):
    """The real pipeline end to end through the CLI, then a resume that skips every step."""
    out = tmp_path / "qs"
    command = [sys.executable, "-m", "dface_jax.cli", "quickstart", "--workdir", str(out),
               "--config", "quickstart_small.py:tiny"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "UF1" in first.stdout
    for name in ("synth", "prepare", "pretrain", "extract", "compare", "report"):
        assert json.loads(quickstart.step_marker(out, name).read_text())["seconds"] >= 0
    assert (out / "report" / "index.html").exists()
    pictures = sorted(p.name for p in (out / "report").glob("*.png"))
    assert {"transfer_grid.png", "confusion_matrices.png", "reconstructions.png"} <= set(pictures)
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("skipped") == 6


def test_folder_lock_refuses_a_second_live_run_and_takes_over_a_stale_one(tmp_path):
    with quickstart.folder_lock(tmp_path) as lock:
        assert lock.read_text() == str(__import__("os").getpid())
        with pytest.raises(RuntimeError, match="in use by quickstart process"):
            with quickstart.folder_lock(tmp_path):
                pass
    assert not (tmp_path / quickstart.LOCK_FILE).exists()
    # A lock whose process has exited is stale.
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True)
    (tmp_path / quickstart.LOCK_FILE).write_text(finished.stdout.strip())
    with quickstart.folder_lock(tmp_path):
        pass
