"""Class-balanced weights and the expected calibration error: the measures calibration fits with and evaluation and
the plots report. They live below training.calibration, training.evaluate and training.plots so that those three
import them without importing each other in a circle (issue #24)."""

from __future__ import annotations

import numpy as np


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights giving each class the same total weight (mean weight 1): scikit-learn's "balanced"."""
    from sklearn.utils.class_weight import compute_sample_weight

    labels = np.asarray(labels)
    return compute_sample_weight("balanced", labels) if len(labels) else np.zeros(0)


def expected_calibration_error(fake_probability: np.ndarray, labels: np.ndarray, bins: int = 10, balanced: bool = True) -> float:
    """ECE of P(fake) against the labels, equal-width bins; class-balanced weights by default (training.calibration's
    module doc says why)."""
    probability = np.asarray(fake_probability, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    weights = class_balanced_weights(labels) if balanced else np.ones(len(labels))
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (probability >= low) & ((probability < high) | (high == 1.0))
        if inside.any():
            w = weights[inside]
            error += w.sum() / weights.sum() * abs(np.average(probability[inside], weights=w) - np.average(labels[inside], weights=w))
    return float(error)
