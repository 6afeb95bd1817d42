"""One LOSO run: build the experiment, sweep every fold, score it, write the workdir.

A LOSO workdir holds ``manifest.json`` (kind ``loso``; the token cache, tokenizer, dataset
build and text encoder it read), ``config.json`` (resolved: the classifier fields taken
from the data filled in), ``results.json`` / ``results.md`` (honest and oracle-epoch
scores, and the folds that diverged, if any), ``confusion.png``, ``folds.json``,
``metrics.jsonl`` (per-epoch curves), ``predictions.npz``, one checkpoint of every fold's
parameters (leading fold axis; for a model with BatchNorm statistics, STSTNet, the
checkpoint is ``{"params", "batch_stats"}``) and, once all of that is written,
``completed.json``.
"""

from __future__ import annotations

import io
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import storage
from data_pipelines.errors import InputError

from dface_jax.loso.experiment import (LosoExperiment, build_experiment, finetunes_tokenizer,
                                       resolved_config)
from dface_jax.metrics import confusion_matrices
from dface_jax.loso.protocol import (HONEST_PROTOCOL, ORACLE_LABEL, ORACLE_NOTE, epoch_curve,
                                     oracle_epochs, oracle_predictions, score_predictions)
from dface_jax.loso.sweep import LosoRun, train_folds
from dface_jax.report.figures import plot_confusion_matrices
from dface_jax.report.tables import results_markdown
from dface_jax.runtime.checkpoint import save_params
from dface_jax.runtime.metrics_log import METRICS_FILE
from dface_jax.workdir import (FOLDS_FILE, PREDICTIONS_FILE, RESULTS_FILE, config_changes,
                               is_completed, open_run, read_results)


def summarize_run(run: LosoRun, cache: dict, experiment: LosoExperiment, config) -> dict:
    """results.json content: honest scores, the oracle-epoch block, protocol and settings."""
    labels = np.asarray(cache["labels"])
    label_names = [str(n) for n in cache["label_names"]]
    honest = score_predictions(labels, run.epoch_logits[-1].argmax(-1), cache["datasets"], label_names)
    chosen = oracle_epochs(run, labels, cache["subjects"])
    oracle = score_predictions(labels, oracle_predictions(run, cache["subjects"], chosen),
                               cache["datasets"], label_names)
    text = experiment.text_encoder
    return {
        **{key: honest[key] for key in ("uf1", "uar", "accuracy", "per_dataset",
                                        "per_class_recall", "confusion", "count")},
        "protocol": HONEST_PROTOCOL.format(epochs=experiment.train_config.epochs),
        "oracle_epoch": {"label": ORACLE_LABEL, "note": ORACLE_NOTE,
                         **{key: oracle[key] for key in ("uf1", "uar", "accuracy", "per_dataset",
                                                         "per_class_recall")},
                         "epochs": {subject: int(epoch) + 1
                                    for subject, epoch in zip(run.held_out_subjects, chosen)}},
        "seed": experiment.train_config.seed,
        "model": config.model,
        "pooling": config.classifier.pooling if config.model == "dface" else None,
        "token_order": config.token_order if config.model == "dface" else None,
        "edclip_weight": experiment.train_config.edclip_weight,
        "finetune_tokenizer": finetunes_tokenizer(config),
        "tokenizer_loss_weight": (experiment.train_config.tokenizer_loss_weight
                                  if finetunes_tokenizer(config) else None),
        "text_encoder": None if text is None else {
            "model": text["model"], "semantic": bool(text["semantic"]), "warning": text["warning"]},
        "label_names": label_names,
        "num_folds": len(run.held_out_subjects),
        "num_clips": int(labels.size),
        "epochs": experiment.train_config.epochs,
        "steps_per_epoch": run.steps_per_epoch,
        "tokenizer_workdir": str(cache["tokenizer_workdir"]),
        "apex_rule": str(cache["apex_rule"]),
    }


def divergences(run: LosoRun, subjects) -> list[dict]:
    """Per fold whose training loss or held-out logits became NaN/inf: its held-out subject
    and the first such epoch (1-based)."""
    subjects = np.asarray(subjects).astype(str)
    found = []
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        finite = (np.isfinite(run.train_loss[fold])
                  & np.isfinite(run.epoch_logits[:, members]).all(axis=(1, 2)))
        if not finite.all():
            found.append({"subject": subject, "epoch": int(np.argmin(finite)) + 1})
    return found


def write_workdir(workdir, run: LosoRun, cache: dict, results: dict) -> None:
    """Writes the checkpoint of every fold's parameters (leading fold axis), folds.json,
    predictions.npz, metrics.jsonl, confusion.png, results.md and, last, results.json; each
    file atomically, so a kill leaves whole files and no results.json before the rest."""
    workdir = storage.as_path(workdir)
    labels = np.asarray(cache["labels"])
    subjects = np.asarray(cache["subjects"]).astype(str)
    save_params(workdir, {"params": run.fold_params, **run.fold_state} if run.fold_state
                else run.fold_params, step=results["epochs"])
    storage.write_json(workdir / FOLDS_FILE, {
        "held_out_subjects": list(run.held_out_subjects),
        "folds": [{"fold": fold, "held_out_subject": subject,
                   "test_clips": int(np.sum(subjects == subject)),
                   "train_clips": int(np.sum(subjects != subject))}
                  for fold, subject in enumerate(run.held_out_subjects)]})
    final_logits = run.epoch_logits[-1]
    buffer = io.BytesIO()
    np.savez(buffer, clip_ids=np.asarray(cache["clip_ids"]).astype(str),
             subjects=subjects, datasets=np.asarray(cache["datasets"]).astype(str), labels=labels,
             predicted=final_logits.argmax(-1).astype(np.int32), logits=final_logits,
             attention=(run.attention if run.attention is not None
                        else np.zeros((labels.size, 0), np.float32)),
             label_names=np.asarray(results["label_names"]))
    storage.write_bytes_atomic(workdir / PREDICTIONS_FILE, buffer.getvalue())
    storage.write_text_atomic(workdir / METRICS_FILE, "".join(
        storage.dumps_json({"step": record.pop("epoch"), **record}) + "\n"
        for record in epoch_curve(run, labels)))
    plot_confusion_matrices(confusion_matrices(labels, final_logits.argmax(-1),
                                               cache["datasets"], len(results["label_names"])),
                            results["label_names"], workdir / "confusion.png")
    storage.write_text_atomic(workdir / "results.md", results_markdown(results))
    storage.write_json(workdir / RESULTS_FILE, results)


class RunDivergedError(InputError, FloatingPointError):
    """A LOSO fold's loss or logits became NaN/inf (the message names the subjects and epochs)."""


def run_loso(config, cache: dict, workdir, *, text_encoder_dir: str | None = None,
             token_cache_path: str | None = None, keep_going: bool = False,
             allow_config_change: bool = False, log: Callable[[str], None] = print) -> dict:
    """One LOSO sweep of ``config`` on ``cache`` (read from ``token_cache_path``), written to
    ``workdir`` inside ``workdir.open_run``; returns results. ``text_encoder_dir`` replaces
    ``config.text_encoder_dir`` (for D-FACE models; the baselines read no text).

    A workdir that finished with the same (resolved) config is not trained again: its
    results are returned. A fold whose loss or logits become NaN/inf is named (subject,
    first epoch) in results.json and on stderr, and the run then fails with
    :class:`RunDivergedError` unless ``keep_going``.
    """
    if text_encoder_dir is not None and config.model == "dface":
        # Recorded in the run's config.json, so that the same workdir run with another text
        # encoder counts as a changed config instead of reusing results it did not produce.
        config = config.copy_and_resolve_references()
        config.text_encoder_dir = str(pathlib.Path(text_encoder_dir).resolve())
    experiment = build_experiment(config, cache, source=token_cache_path or "token cache")
    resolved = resolved_config(config, experiment)
    if is_completed(workdir) and not config_changes(workdir, resolved):
        log(f"{workdir}: already finished with this config, reusing its results")
        return read_results(workdir)
    text = experiment.text_encoder
    inputs = {
        "token_cache": "" if token_cache_path is None else storage.absolute(token_cache_path),
        "tokenizer_workdir": str(cache["tokenizer_workdir"]),
        "dataset_build": str(cache.get("dataset_build", "")),
        "text_encoder": f"none ({config.model} baseline)" if text is None else text["model"]}
    with open_run(workdir, "loso", "loso", resolved, inputs=inputs,
                  allow_config_change=allow_config_change):
        if text is not None and text["warning"]:
            log(f"warning: {text['warning']}")
        start = time.perf_counter()
        anchors = None if experiment.anchors is None else jnp.asarray(experiment.anchors)
        # Several local devices (a GPU host, a TPU VM) split the folds between them.
        devices = jax.local_devices() if jax.local_device_count() > 1 else None
        run = train_folds(experiment.model, experiment.train_config, experiment.data,
                          cache["subjects"], anchors, progress=True, devices=devices)
        seconds = time.perf_counter() - start
        results = summarize_run(run, cache, experiment, config)
        results["train_seconds"] = round(seconds, 2)
        results["diverged"] = divergences(run, cache["subjects"])
        write_workdir(workdir, run, cache, results)
        if results["diverged"]:
            named = ", ".join(f"{d['subject']} (epoch {d['epoch']})" for d in results["diverged"])
            message = (f"{workdir}: {len(results['diverged'])} fold(s) diverged (NaN/inf loss "
                       f"or logits): {named}; see {RESULTS_FILE}")
            if not keep_going:
                raise RunDivergedError(message + "; lower train.learning_rate, or pass "
                                       "--keep-going to score them anyway")
            log(f"warning: {message}")
        log(f"{workdir}: UF1 {results['uf1']:.4f} UAR {results['uar']:.4f} (honest); "
            f"{ORACLE_LABEL}: UF1 {results['oracle_epoch']['uf1']:.4f} "
            f"UAR {results['oracle_epoch']['uar']:.4f}; {len(run.held_out_subjects)} folds in "
            f"{seconds:.1f} s")
    return results
