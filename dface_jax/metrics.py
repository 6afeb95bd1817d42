"""UF1 and UAR as in MEGC 2019, per-class recall, confusion matrices, per-dataset breakdowns.

MEGC 2019 scores a LOSO run on the predictions of *all folds together* (not an average of
per-fold scores): build one (y_true, y_pred) pair of arrays over every held-out sample, then

- UF1 = mean over classes c of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c);
- UAR = mean over classes c of recall_c = TP_c / N_c (N_c: true samples of class c).

Classes absent from a subset (a per-dataset breakdown may lack a class):
- UF1 averages over the classes that occur in y_true **or** y_pred. A class with no true
  and no predicted sample has an undefined F1 (0/0) and is left out; a class predicted but
  never true has F1 = 0 and counts (the spurious predictions are errors). This is what
  scikit-learn's ``f1_score(average="macro")`` does with its default labels.
- UAR averages over the classes that occur in y_true. Recall of a class with no true sample
  is undefined and is left out. (scikit-learn's ``recall_score(average="macro")`` would
  count such a class as recall 0 when it is predicted; ours equals it with
  ``labels=np.unique(y_true)``.)
On the full composite set every class occurs, so both rules give the textbook numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_labels(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"{name} holds a negative class index {array.min()}")
    return array.astype(np.int64)


def _checked_pair(y_true, y_pred, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} samples but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no samples to score: y_true and y_pred are empty")
    largest = int(max(y_true.max(), y_pred.max())) + 1
    if num_classes is None:
        num_classes = largest
    elif largest > num_classes:
        raise ValueError(f"class index {largest - 1} found, but num_classes={num_classes}")
    return y_true, y_pred, num_classes


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """int64 [K, K]: entry [t, p] counts samples of true class t predicted as p."""
    y_true, y_pred, num_classes = _checked_pair(y_true, y_pred, num_classes)
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_f1(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """float64 [K]: F1 of each class; NaN for a class with no true and no predicted sample."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    true_positive = np.diag(matrix).astype(np.float64)
    denominator = matrix.sum(0) + matrix.sum(1)  # 2TP + FP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * true_positive / denominator, np.nan)


def per_class_recall(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """float64 [K]: recall of each class; NaN for a class with no true sample."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def uf1(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted F1: mean per-class F1 over classes seen in y_true or y_pred."""
    return float(np.nanmean(per_class_f1(y_true, y_pred, num_classes)))


def uar(y_true, y_pred, num_classes: int | None = None) -> float:
    """Unweighted average recall: mean per-class recall over classes seen in y_true."""
    return float(np.nanmean(per_class_recall(y_true, y_pred, num_classes)))


def mer_scores(y_true, y_pred, num_classes: int | None = None,
               label_names: Sequence[str] | None = None) -> dict:
    """dict(uf1, uar, accuracy, count, per_class_recall {name: float|None}, confusion [[int]]).

    JSON-ready (a recall left out as undefined is None). ``label_names`` names the classes
    (and fixes K); otherwise they are "0", "1", ...
    """
    if label_names is not None:
        if num_classes is not None and num_classes != len(label_names):
            raise ValueError(f"num_classes={num_classes} but {len(label_names)} label_names")
        num_classes = len(label_names)
    y_true, y_pred, num_classes = _checked_pair(y_true, y_pred, num_classes)
    names = list(label_names) if label_names is not None else [str(k) for k in range(num_classes)]
    recalls = per_class_recall(y_true, y_pred, num_classes)
    return {
        "uf1": uf1(y_true, y_pred, num_classes),
        "uar": uar(y_true, y_pred, num_classes),
        "accuracy": float(np.mean(y_true == y_pred)),
        "count": int(y_true.size),
        "per_class_recall": {name: (None if np.isnan(value) else float(value))
                             for name, value in zip(names, recalls)},
        "confusion": confusion_matrix(y_true, y_pred, num_classes).tolist(),
    }


def scores_by_group(y_true, y_pred, groups, num_classes: int | None = None,
                    label_names: Sequence[str] | None = None) -> dict[str, dict]:
    """Per-group :func:`mer_scores` (e.g. groups = each sample's dataset in the composite set).

    Each group is scored on its own samples, with the absent-class rules of this module.
    """
    groups = np.asarray(groups)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if groups.shape != y_true.shape:
        raise ValueError(f"groups has {groups.size} entries but there are {y_true.size} samples")
    if label_names is not None:
        num_classes = len(label_names)
    elif num_classes is None:
        num_classes = int(max(y_true.max(), y_pred.max())) + 1
    return {str(group): mer_scores(y_true[groups == group], y_pred[groups == group],
                                   num_classes, label_names)
            for group in sorted(set(groups.tolist()))}


def confusion_matrices(y_true, y_pred, groups, num_classes: int) -> dict[str, np.ndarray]:
    """``{"overall": [K, K], group: [K, K], ...}`` confusion matrices (rows: true class),
    one per group (e.g. each clip's dataset) when there is more than one group."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups).astype(str)
    matrices = {"overall": confusion_matrix(y_true, y_pred, num_classes)}
    if len(set(groups.tolist())) > 1:
        for group in sorted(set(groups.tolist())):
            mask = groups == group
            matrices[group] = confusion_matrix(y_true[mask], y_pred[mask], num_classes)
    return matrices
