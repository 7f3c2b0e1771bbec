"""binary_detection: the deepfake detector's metrics as a local `evaluate` module.

Load it by path (the Hub is not needed):

    import evaluate
    metric = evaluate.load("training/metrics/binary_detection")
    metric.compute(references=[0, 1, 1], predictions=[0, 1, 0], prediction_scores=[0.1, 0.9, 0.4])

Labels: 0 = real, 1 = fake. `predictions` are the thresholded decisions, `prediction_scores` the
calibrated P(fake) (used only for ROC AUC). Computed with numpy rather than by calling scikit-learn,
so the tests that compare against scikit-learn check an independent implementation.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy.stats import rankdata

# A copy of deepfake_detector.model.LABEL_NAMES, on purpose: `evaluate.load` copies this script into its module
# cache and runs it there (as it would from the Hub), so it imports only installed libraries, not this repository.
LABEL_NAMES = ["real", "fake"]

_DESCRIPTION = """Binary real(0)/fake(1) detection metrics: accuracy, balanced accuracy (mean recall over the classes
present), per-class precision/recall/F1/support, the 2x2 confusion matrix (rows: true real/fake, columns:
predicted real/fake) and ROC AUC of the fake scores (None when only one class is present)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): predicted labels, 0 real, 1 fake.
    references (list of int): true labels, 0 real, 1 fake.
    prediction_scores (list of float): P(fake) for each image, for ROC AUC.
Returns:
    dict with n, accuracy, balanced_accuracy, roc_auc, per_class {"real"|"fake": {precision, recall, f1, support}},
    confusion_matrix [[tn, fp], [fn, tp]] (list of lists). Precision/recall/F1 with no denominator are 0.0
    (scikit-learn's zero_division=0).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class BinaryDetection(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("int32"),
                    "references": datasets.Value("int32"),
                    "prediction_scores": datasets.Value("float32"),
                }
            ),
        )

    def _compute(self, predictions, references, prediction_scores) -> dict:
        return binary_detection_metrics(references, predictions, prediction_scores)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def roc_auc(references: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney form of the ROC AUC with ties counted half; None when one class is missing."""
    references = np.asarray(references)
    n_pos = int((references == 1).sum())
    n_neg = int((references == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))  # average ranks: a tie counts 1/2
    return float((ranks[references == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_detection_metrics(references, predictions, prediction_scores) -> dict:
    """The module's computation as a plain function (also usable without `evaluate`)."""
    references = np.asarray(references, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    scores = np.asarray(prediction_scores, dtype=np.float64)
    if not (len(references) == len(predictions) == len(scores)):
        raise ValueError("references, predictions and prediction_scores must have the same length.")
    if len(references) and not (np.isin(references, (0, 1)).all() and np.isin(predictions, (0, 1)).all()):
        raise ValueError("Labels must be 0 (real) or 1 (fake).")
    confusion = np.bincount(2 * references + predictions, minlength=4).reshape(2, 2)
    per_class = {}
    for index, name in enumerate(LABEL_NAMES):
        true_positive = confusion[index, index]
        support = int(confusion[index].sum())
        precision = _ratio(true_positive, confusion[:, index].sum())
        recall = _ratio(true_positive, support)
        per_class[name] = {
            "precision": precision,
            "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "support": support,
        }
    present = [per_class[name]["recall"] for name in LABEL_NAMES if per_class[name]["support"] > 0]
    return {
        "n": int(len(references)),
        "accuracy": _ratio(np.trace(confusion), confusion.sum()),
        # Mean recall over the classes present: for a one-class subset (e.g. one generator) this is that class's recall.
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "roc_auc": roc_auc(references, scores),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
    }
