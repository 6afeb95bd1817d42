"""The protocol of a LOSO sweep: the honest score, the oracle epoch, and results.json.

MEGC 2019: UF1 and UAR over the predictions of all folds together, at the final epoch of
a fixed schedule (honest). The literature's per-subject choice of the epoch with the best
*test* result (the released D-FACE script: most correct, ties broken by the subject's UAR
+ UF1; we break remaining ties by the earliest epoch) is reported beside it and labelled as
such; it selects on the test data, so it is not a valid estimate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dface_jax import metrics
from dface_jax.loso.sweep import LosoRun


ORACLE_LABEL = "oracle epoch (as in the literature)"

HONEST_PROTOCOL = ("LOSO, honest: fixed schedule of {epochs} epochs, every fold scored by the "
                   "prediction of its final epoch; no choice by test result")

ORACLE_NOTE = ("For each left-out subject the epoch with the most correct test predictions "
               "(ties: higher UAR + UF1 on that subject, then the earliest epoch), as the "
               "released D-FACE script and HTNet do. It selects on the test data, so it "
               "overestimates; shown only for comparison with published numbers.")


def oracle_epochs(run: LosoRun, labels: np.ndarray, subjects: Sequence[str]) -> np.ndarray:
    """int [F]: per held-out subject, the epoch (0-based) with the best test result.

    Best = most correct; ties broken by the subject's UAR + UF1 (``dface_jax.metrics``),
    then by the earliest epoch (see ``ORACLE_NOTE``).
    """
    subjects = np.asarray(subjects).astype(str)
    predictions = run.epoch_logits.argmax(-1)  # [E, N]
    num_classes = run.epoch_logits.shape[-1]
    chosen = np.zeros(len(run.held_out_subjects), np.int64)
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        truth = labels[members]
        best_key = None
        for epoch, predicted in enumerate(predictions[:, members]):
            key = (int(np.sum(predicted == truth)),
                   metrics.uar(truth, predicted, num_classes) + metrics.uf1(truth, predicted, num_classes))
            if best_key is None or key > best_key:  # strict: the earliest epoch wins ties
                best_key, chosen[fold] = key, epoch
    return chosen


def oracle_predictions(run: LosoRun, subjects: Sequence[str], chosen: np.ndarray) -> np.ndarray:
    """int [N]: each clip's prediction at its held-out subject's oracle epoch."""
    subjects = np.asarray(subjects).astype(str)
    predictions = run.epoch_logits[-1].argmax(-1)
    for fold, subject in enumerate(run.held_out_subjects):
        members = subjects == subject
        predictions[members] = run.epoch_logits[chosen[fold], members].argmax(-1)
    return predictions


def score_predictions(labels: np.ndarray, predicted: np.ndarray, datasets: Sequence[str],
                      label_names: Sequence[str]) -> dict:
    """MEGC 2019 scores over all folds together plus the per-dataset breakdown (JSON-ready)."""
    overall = metrics.mer_scores(labels, predicted, label_names=label_names)
    by_dataset = metrics.scores_by_group(labels, predicted, np.asarray(datasets).astype(str),
                                         label_names=label_names)
    overall["per_dataset"] = {name: {"uf1": s["uf1"], "uar": s["uar"], "count": s["count"]}
                              for name, s in by_dataset.items()}
    return overall


def epoch_curve(run: LosoRun, labels: np.ndarray) -> list[dict]:
    """Per-epoch records: mean training loss over folds, pooled test accuracy and UF1."""
    records = []
    for epoch in range(run.epoch_logits.shape[0]):
        predicted = run.epoch_logits[epoch].argmax(-1)
        records.append({"epoch": epoch + 1,
                        "train_loss": float(run.train_loss[:, epoch].mean()),
                        "test_accuracy": float(np.mean(predicted == labels)),
                        "test_uf1": metrics.uf1(labels, predicted, run.epoch_logits.shape[-1])})
    return records
