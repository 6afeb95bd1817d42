"""UF1/UAR on hand-computed cases and against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, recall_score

from dface_jax.metrics import (confusion_matrix, mer_scores, per_class_f1, per_class_recall,
                               scores_by_group, uar, uf1)


def test_hand_computed_three_classes():
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 1, 2, 1, 0, 2, 2]
    # class 0: TP 2, FP 1, FN 2 -> F1 4/7, recall 1/2
    # class 1: TP 1, FP 1, FN 1 -> F1 1/2, recall 1/2
    # class 2: TP 2, FP 1, FN 0 -> F1 4/5, recall 1
    np.testing.assert_allclose(per_class_f1(y_true, y_pred), [4 / 7, 1 / 2, 4 / 5])
    np.testing.assert_allclose(per_class_recall(y_true, y_pred), [0.5, 0.5, 1.0])
    assert uf1(y_true, y_pred) == pytest.approx((4 / 7 + 0.5 + 0.8) / 3)
    assert uar(y_true, y_pred) == pytest.approx(2 / 3)
    assert confusion_matrix(y_true, y_pred).tolist() == [[2, 1, 1], [1, 1, 0], [0, 0, 2]]


def test_absent_classes_are_handled_as_documented():
    # 4 classes declared; class 3 never occurs; class 2 is predicted but never true.
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]
    f1 = per_class_f1(y_true, y_pred, num_classes=4)
    assert np.isnan(f1[3]) and f1[2] == 0.0
    assert uf1(y_true, y_pred, 4) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    recall = per_class_recall(y_true, y_pred, num_classes=4)
    assert np.isnan(recall[2]) and np.isnan(recall[3])
    assert uar(y_true, y_pred, 4) == pytest.approx(0.75)


def test_against_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    for trial in range(20):
        k = int(rng.integers(2, 6))
        n = int(rng.integers(5, 60))
        y_true = rng.integers(0, k, n)
        # Mostly right with noise; sometimes a class is missing from the truth.
        y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, k, n))
        assert uf1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))
        assert uar(y_true, y_pred) == pytest.approx(
            recall_score(y_true, y_pred, labels=np.unique(y_true), average="macro"))
        if set(y_pred) <= set(y_true):
            assert uar(y_true, y_pred) == pytest.approx(recall_score(y_true, y_pred, average="macro"))
        np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, k),
                                      sk_confusion_matrix(y_true, y_pred, labels=np.arange(k)))


def test_scores_json_ready_and_per_dataset_breakdown():
    names = ("negative", "positive", "surprise")
    y_true = np.array([0, 1, 2, 0, 0, 1])
    y_pred = np.array([0, 1, 1, 0, 2, 1])
    datasets = np.array(["casme2", "casme2", "casme2", "samm", "samm", "samm"])
    overall = mer_scores(y_true, y_pred, label_names=names)
    assert overall["count"] == 6 and overall["accuracy"] == pytest.approx(4 / 6)
    assert overall["per_class_recall"] == {"negative": 2 / 3, "positive": 1.0, "surprise": 0.0}
    by_dataset = scores_by_group(y_true, y_pred, datasets, label_names=names)
    assert set(by_dataset) == {"casme2", "samm"}
    samm = by_dataset["samm"]
    # samm: true (0, 0, 1), predicted (0, 2, 1); surprise predicted, never true.
    assert samm["per_class_recall"]["surprise"] is None
    assert samm["uar"] == pytest.approx((0.5 + 1.0) / 2)
    assert samm["uf1"] == pytest.approx(f1_score([0, 0, 1], [0, 2, 1], average="macro"))
    assert by_dataset["casme2"]["confusion"] == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="y_true has 2 samples but y_pred has 3"):
        uf1([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="class index 3 found, but num_classes=3"):
        uar([0, 3], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="integer class indices"):
        uf1([0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        uar([], [])
