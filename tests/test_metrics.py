"""The local `evaluate` module training/metrics/binary_detection against scikit-learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

METRIC_DIR = Path(__file__).resolve().parents[1] / "training" / "metrics" / "binary_detection"


@pytest.fixture(scope="module")
def metric():
    import evaluate

    # Loaded by path: the Hub is unreachable, evaluate.load("accuracy") would fail.
    return evaluate.load(str(METRIC_DIR))


def _random_case(seed: int, n: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.clip(0.35 * labels + rng.random(n) * 0.65, 0, 1)  # informative but imperfect
    if ties:
        scores = np.round(scores, 1)  # many equal scores: AUC must count ties as 1/2
    predicted = (scores >= 0.5).astype(int)
    return labels, predicted, scores.astype(np.float32)


def _check_against_sklearn(result: dict, labels, predicted, scores) -> None:
    assert result["n"] == len(labels)
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert result["confusion_matrix"] == confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=[0, 1], zero_division=0)
    for index, name in enumerate(["real", "fake"]):
        row = result["per_class"][name]
        assert row["precision"] == pytest.approx(precision[index])
        assert row["recall"] == pytest.approx(recall[index])
        assert row["f1"] == pytest.approx(f1[index])
        assert row["support"] == support[index]
    if len(set(labels.tolist())) == 2:
        assert result["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
        assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    else:
        assert result["roc_auc"] is None
        present = int(labels[0])
        assert result["balanced_accuracy"] == pytest.approx(recall[present])


@pytest.mark.parametrize("seed,n,ties", [(0, 50, False), (1, 200, False), (2, 120, True), (3, 7, False)])
def test_metric_module_matches_sklearn(metric, seed, n, ties):
    labels, predicted, scores = _random_case(seed, n, ties)
    result = metric.compute(references=labels.tolist(), predictions=predicted.tolist(), prediction_scores=scores.tolist())
    _check_against_sklearn(result, labels, predicted, scores)


def test_metric_module_one_class_and_degenerate(metric):
    # One generator's images are all fake: AUC undefined, balanced accuracy = recall of fake.
    labels = np.ones(20, dtype=int)
    predicted = np.array([1] * 15 + [0] * 5)
    scores = np.linspace(0, 1, 20, dtype=np.float32)
    result = metric.compute(references=labels.tolist(), predictions=predicted.tolist(), prediction_scores=scores.tolist())
    _check_against_sklearn(result, labels, predicted, scores)
    assert result["balanced_accuracy"] == pytest.approx(0.75)

    # A model that calls everything real: fake precision has no denominator -> 0, as sklearn's zero_division=0.
    labels = np.array([0, 1, 0, 1, 1])
    predicted = np.zeros(5, dtype=int)
    result = metric.compute(references=labels.tolist(), predictions=predicted.tolist(), prediction_scores=[0.1] * 5)
    _check_against_sklearn(result, labels, predicted, np.full(5, 0.1))
    assert result["roc_auc"] == pytest.approx(0.5)


def test_metric_module_rejects_bad_labels(metric):
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        metric.compute(references=[0, 2], predictions=[0, 1], prediction_scores=[0.1, 0.9])
