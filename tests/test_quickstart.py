"""The quickstart's resumable step runner (fast) and the whole quickstart at tiny scale (slow)."""

import json
import subprocess
import sys

import pytest

from dface_jax import quickstart
from dface_jax.runtime import lock
from dface_jax.runtime.lock import WorkdirLockedError
from dface_jax.workdir import WorkdirError


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


def test_resuming_with_another_config_is_refused_and_names_the_field(tmp_path, monkeypatch):
    monkeypatch.setattr(quickstart, "build_steps", lambda out_dir, config: [])
    monkeypatch.setattr(quickstart, "results_table", lambda compare_dir: "")
    config = quickstart.quickstart_config("small")
    quickstart.run_quickstart(tmp_path, config, log=lambda _: None)
    quickstart.run_quickstart(tmp_path, config, log=lambda _: None)  # same config: fine
    other = quickstart.quickstart_config("small", ["--config.synth.seed=7"])
    with pytest.raises(WorkdirError, match=r"config differs in synth\.seed"):
        quickstart.run_quickstart(tmp_path, other, log=lambda _: None)


def test_a_second_quickstart_in_the_same_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(quickstart, "build_steps", lambda out_dir, config: [])
    monkeypatch.setattr(quickstart, "results_table", lambda compare_dir: "")
    with lock.hold(tmp_path, "quickstart"):
        with pytest.raises(WorkdirLockedError, match="in use by `dface-jax quickstart`"):
            quickstart.run_quickstart(tmp_path, quickstart.quickstart_config("small"),
                                      log=lambda _: None)


def test_configs_of_both_sizes_load():
    small, paper = quickstart.quickstart_config("small"), quickstart.quickstart_config("paper")
    assert small.pretrain.tokenizer.image_size == small.prepare.image_size == 64
    assert paper.pretrain.tokenizer.image_size == paper.prepare.image_size == 256
    with pytest.raises(ValueError, match="scale 'huge': expected one of"):
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




def test_the_text_encoder_is_the_configured_one_else_the_installed_minilm(monkeypatch):
    from dface_jax.models import text_encoder

    config = quickstart.quickstart_config("small")
    assert config.loso.text_encoder_dir == ""
    monkeypatch.setattr(text_encoder, "installed_text_encoder", lambda: "/site/minilm")
    chosen, line = quickstart.choose_text_encoder(config)
    assert chosen.loso.text_encoder_dir == "/site/minilm" and config.loso.text_encoder_dir == ""
    assert "all-MiniLM-L6-v2" in line and "semantic anchors" in line
    monkeypatch.setattr(text_encoder, "installed_text_encoder", lambda: None)
    chosen, line = quickstart.choose_text_encoder(config)
    assert chosen.loso.text_encoder_dir == ""
    assert "NOT semantic" in line and text_encoder.INSTALL_HINT in line
    configured = quickstart.quickstart_config("small", ["--config.loso.text_encoder_dir=/my/clip"])
    chosen, line = quickstart.choose_text_encoder(configured)
    assert chosen.loso.text_encoder_dir == "/my/clip" and "config.loso.text_encoder_dir" in line
