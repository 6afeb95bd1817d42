"""One LOSO run: build the experiment, sweep every fold, score it, write the workdir.

A LOSO workdir holds ``manifest.json`` (kind ``loso``; the token cache, tokenizer, dataset
build and text encoder it read), ``config.json`` (resolved: the classifier fields taken
from the data filled in), ``results.json`` / ``results.md`` (honest and oracle-epoch
scores), ``confusion.png``, ``folds.json``, ``metrics.jsonl`` (per-epoch curves),
``predictions.npz`` and one checkpoint of every fold's parameters (leading fold axis).
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Callable

import jax.numpy as jnp
import numpy as np

from dface_jax.loso.experiment import (LosoExperiment, build_experiment, finetunes_tokenizer,
                                       resolved_config)
from dface_jax.metrics import confusion_matrices
from dface_jax.loso.protocol import (HONEST_PROTOCOL, ORACLE_LABEL, ORACLE_NOTE, epoch_curve,
                                     oracle_epochs, oracle_predictions, score_predictions)
from dface_jax.loso.sweep import LosoRun, train_folds
from dface_jax.report.figures import plot_confusion_matrices
from dface_jax.report.tables import results_markdown
from dface_jax.runtime.checkpoint import save_params
from dface_jax.runtime.metrics_log import MetricsWriter
from dface_jax.workdir import write_manifest


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


def write_workdir(workdir, run: LosoRun, cache: dict, results: dict, config) -> None:
    """Writes results.json/.md, confusion.png, folds.json, metrics.jsonl, predictions.npz,
    config.json and one Orbax checkpoint of every fold's classifier (leading fold axis)."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(cache["labels"])
    subjects = np.asarray(cache["subjects"]).astype(str)
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    (workdir / "results.md").write_text(results_markdown(results))
    plot_confusion_matrices(confusion_matrices(labels, run.epoch_logits[-1].argmax(-1),
                                               cache["datasets"], len(results["label_names"])),
                            results["label_names"], workdir / "confusion.png")
    folds = {"held_out_subjects": list(run.held_out_subjects),
             "folds": [{"fold": fold, "held_out_subject": subject,
                        "test_clips": int(np.sum(subjects == subject)),
                        "train_clips": int(np.sum(subjects != subject))}
                       for fold, subject in enumerate(run.held_out_subjects)]}
    (workdir / "folds.json").write_text(json.dumps(folds, indent=2))
    writer = MetricsWriter(workdir, tensorboard=False)
    for record in epoch_curve(run, labels):
        writer.write(record.pop("epoch"), record)
    writer.close()
    final_logits = run.epoch_logits[-1]
    np.savez(workdir / "predictions.npz", clip_ids=np.asarray(cache["clip_ids"]).astype(str),
             subjects=subjects, datasets=np.asarray(cache["datasets"]).astype(str), labels=labels,
             predicted=final_logits.argmax(-1).astype(np.int32), logits=final_logits,
             attention=(run.attention if run.attention is not None
                        else np.zeros((labels.size, 0), np.float32)),
             label_names=np.asarray(results["label_names"]))
    save_params(workdir, run.fold_params, config, step=results["epochs"])



def run_loso(config, cache: dict, workdir, *, text_encoder_dir: str | None = None,
             token_cache_path: str | None = None, log: Callable[[str], None] = print) -> dict:
    """One LOSO sweep of ``config`` on ``cache`` (read from ``token_cache_path``), written to
    ``workdir``; returns results."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    experiment = build_experiment(config, cache, text_encoder_dir=text_encoder_dir,
                                  anchor_cache_path=str(workdir / "text_anchors.npz"))
    text = experiment.text_encoder
    write_manifest(workdir, "loso", "loso", inputs={
        "token_cache": "" if token_cache_path is None else str(pathlib.Path(token_cache_path).resolve()),
        "tokenizer_workdir": str(cache["tokenizer_workdir"]),
        "dataset_build": str(cache.get("dataset_build", "")),
        "text_encoder": "none (pixel baseline)" if text is None else text["model"]})
    if experiment.text_encoder is not None and experiment.text_encoder["warning"]:
        log(f"warning: {experiment.text_encoder['warning']}")
    start = time.perf_counter()
    anchors = None if experiment.anchors is None else jnp.asarray(experiment.anchors)
    run = train_folds(experiment.model, experiment.train_config, experiment.data,
                      cache["subjects"], anchors)
    seconds = time.perf_counter() - start
    results = summarize_run(run, cache, experiment, config)
    results["train_seconds"] = round(seconds, 2)
    write_workdir(workdir, run, cache, results, resolved_config(config, experiment))
    log(f"{workdir}: UF1 {results['uf1']:.4f} UAR {results['uar']:.4f} (honest); "
        f"{ORACLE_LABEL}: UF1 {results['oracle_epoch']['uf1']:.4f} "
        f"UAR {results['oracle_epoch']['uar']:.4f}; {len(run.held_out_subjects)} folds in {seconds:.1f} s")
    return results

