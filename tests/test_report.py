"""The report of a run: every picture drawn and non-trivial, index.html, missing parts named."""

import json

import numpy as np
import pytest

from dface_jax.report import page as report
from dface_jax.workdir import WorkdirError, write_manifest
from test_analysis import assert_nontrivial_png, tiny_tokenizer_workdir  # noqa: F401 (fixture)

LABELS = ("negative", "positive", "surprise")


def _write_run(root, tokenizer_workdir):
    """A quickstart-shaped folder: pretrain/ (tiny random tokenizer), tokens.npz and a
    LOSO workdir compare/dface with predictions.npz and results.json."""
    import shutil

    pretrain = root / "pretrain"
    shutil.copytree(tokenizer_workdir, pretrain)
    with (pretrain / "metrics.jsonl").open("w") as f:
        for step in range(10, 110, 10):
            f.write(json.dumps({"step": step, "loss": 1 / step, "recon_loss": 0.5 / step,
                                "vq_loss": 0.1, "perplexity": step / 10,
                                "codes_in_use": min(step // 10, 8)}) + "\n")
    rng = np.random.default_rng(0)
    n = 30
    labels = np.arange(n) % 3
    datasets = np.array(["casme2", "samm", "smic"] * 10)
    clip_ids = np.array([f"clip{i:02d}" for i in range(n)])
    np.savez(root / "tokens.npz", action_tokens=rng.integers(0, 8, (n, 16)).astype(np.int32),
             labels=labels.astype(np.int32), label_names=np.array(LABELS),
             subjects=np.array([f"s{i % 6}" for i in range(n)]), datasets=datasets,
             clip_ids=clip_ids)
    write_manifest(root, "quickstart", "test", inputs={"comparison": root / "compare"})
    write_manifest(root / "compare", "comparison", "test", inputs={
        "token_cache": root / "tokens.npz", "tokenizer_workdir": pretrain})
    loso = root / "compare" / "dface"
    write_manifest(loso, "loso", "test", inputs={
        "token_cache": root / "tokens.npz", "tokenizer_workdir": pretrain})
    (loso / "completed.json").write_text("{}")
    predicted = np.where(rng.uniform(size=n) < 0.7, labels, (labels + 1) % 3)
    np.savez(loso / "predictions.npz", labels=labels, predicted=predicted,
             attention=rng.dirichlet(np.ones(16) * 0.3, n).astype(np.float32),
             datasets=datasets, clip_ids=clip_ids, label_names=np.array(LABELS))
    (loso / "folds.json").write_text(json.dumps({"held_out_subjects": [f"s{i}" for i in range(6)]}))
    (loso / "results.json").write_text(json.dumps(
        {"uf1": 0.61, "uar": 0.63, "per_dataset": {"casme2": {"uf1": 0.7, "uar": 0.71}},
         "protocol": "fixed schedule, final epoch"}))
    return root


def test_full_report_draws_every_picture(tmp_path, tiny_tokenizer_workdir):
    run = _write_run(tmp_path / "run", tiny_tokenizer_workdir)
    built = report.report_for_workdir(run, num_faces=2)
    assert built["missing"] == {"loso_curves": f"{run / 'compare' / 'dface' / 'metrics.jsonl'}"
                                               " is missing or empty"}
    assert set(built["pictures"]) == set(report.PICTURES) - {"loso_curves"}
    for path in built["pictures"].values():
        assert_nontrivial_png(path)
    page = built["index"].read_text()
    assert built["index"] == run / "report" / "index.html"
    for name in built["pictures"]:
        assert f"src='{name}.png'" in page
    assert "0.6100" in page and "casme2" in page  # the results table


def test_transfer_grid_uses_the_most_attended_positions(tmp_path, tiny_tokenizer_workdir):
    attention = np.array([[0.9] + [0.1 / 15] * 15, [1 / 16] * 16, [0.5, 0.5] + [0.0] * 14])
    # Per class the clip with the most concentrated pooling comes first.
    assert report._transfer_clips(np.array([0, 0, 1]), attention, per_class=1) == [0, 2]


def test_reports_of_partial_runs_name_what_is_missing(tmp_path, tiny_tokenizer_workdir):
    run = _write_run(tmp_path / "run", tiny_tokenizer_workdir)
    alone = report.report_for_workdir(run / "pretrain", tmp_path / "pretrain_report")
    assert {"reconstructions", "codebook_usage", "pretrain_curves"} <= set(alone["pictures"])
    assert "confusion_matrices" in alone["missing"] and "transfer_grid" in alone["missing"]
    loso = report.report_for_workdir(run / "compare" / "dface", tmp_path / "loso_report")
    # The LOSO run's manifest names its token cache and tokenizer: every picture but its
    # own training curves (this hand-made run logged none).
    assert set(loso["pictures"]) == set(report.PICTURES) - {"loso_curves"}
    assert "Not drawn" in loso["index"].read_text()
    import shutil
    shutil.rmtree(run / "pretrain")  # the recorded tokenizer is gone: its pictures are not
    without = report.report_for_workdir(run / "compare" / "dface", tmp_path / "loso_report_2")
    assert {"reconstructions", "transfer_grid"} <= set(without["missing"])
    assert {"confusion_matrices", "pooling_weights"} <= set(without["pictures"])
    with pytest.raises(WorkdirError, match="nothing: no manifest.json"):
        report.report_for_workdir(tmp_path / "nothing")


def test_report_command(tmp_path, tiny_tokenizer_workdir, capsys):
    from dface_jax import cli

    run = _write_run(tmp_path / "run", tiny_tokenizer_workdir)
    assert cli.main(["report", "--workdir", str(run / "compare" / "dface"),
                     "--report-dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "drew confusion_matrices" in out and "not drawn loso_curves" in out
    assert (tmp_path / "r" / "index.html").exists()
