"""A linear head penalised for reading what a re-save (or any change that must not matter) moves.

The CLIP heads move P(fake) by up to 0.2-0.3 when a 1024-px PNG is saved as JPEG 95 (`reports/ablation/
resave_sensitivity.json`; the CNN: 0.06), although the canonical faces differ by about one grey level: the head's
weight lies partly along the directions JPEG noise moves the frozen features. Removing a few such directions
(`research.processing_directions`) did not help (1024-px swap 0.30 -> 0.33): the noise is not low-rank.

Here the penalty is soft and covers every direction. With z the standardised clean features and D the standardised
differences (changed - clean) of the same train rows, M = D^T D / n scaled to mean eigenvalue 1, the head minimises

    logistic loss + (1 / 2C) (|w|^2 + strength * w^T M w)

so a weight along a direction re-saves move costs `1 + strength * m` times what it costs elsewhere (m: that
direction's share of the re-save variance). Substituting w = A^(-1/2) v with A = I + strength * M turns it into the
usual L2 logistic regression on z A^(-1/2) (`research.depth_probe.logistic_regression`, fit_probe's head), and
`linear_map` folds it back into one (weight, bias) on the raw features: still one linear layer, no cost at inference.
strength 0 is `fit_probe` itself.
"""

from __future__ import annotations

import numpy as np


class PenalisedProbe:
    """A logistic regression on standardised features whitened against the pairs' differences; `decision_function`
    and `predict_proba` take raw features, like `fit_probe`'s pipeline."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, inverse_root: np.ndarray, regression, spectrum: np.ndarray):
        self.mean, self.scale, self.inverse_root, self.regression = mean, scale, inverse_root, regression
        self.spectrum = spectrum  # the eigenvalues of M, largest first (how concentrated the re-save noise is)

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.scale) @ self.inverse_root

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.regression.decision_function(self.transform(features))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.regression.predict_proba(self.transform(features))

    def linear_map(self) -> tuple[np.ndarray, float]:
        weight = (self.inverse_root @ self.regression.coef_[0]) / self.scale
        return weight, float(self.regression.intercept_[0] - np.dot(weight, self.mean))


def difference_moment(clean: np.ndarray, changed: list[np.ndarray], scale: np.ndarray) -> np.ndarray:
    """M: the second moment of the standardised differences of every changed view from its clean rows, (d, d),
    scaled to mean eigenvalue 1."""
    if not changed:
        raise ValueError("an invariance penalty needs at least one changed copy of the train faces")
    differences = np.concatenate([(np.asarray(view, dtype=np.float64) - clean) / scale for view in changed])
    moment = differences.T @ differences / len(differences)
    return moment / (np.trace(moment) / len(moment))


def fit_penalised_probe(clean: np.ndarray, changed: list[np.ndarray], labels: np.ndarray, strength: float) -> PenalisedProbe:
    """The class-balanced L2 logistic regression on the clean rows, penalised `strength` x along what `changed`
    (views of the same rows, in the same order) moves; see the module docstring."""
    from research.depth_probe import logistic_regression

    if not strength >= 0:
        raise ValueError(f"the penalty strength must be >= 0, got {strength}")
    clean = np.asarray(clean, dtype=np.float64)
    mean, scale = clean.mean(0), clean.std(0)
    scale[scale == 0] = 1.0  # StandardScaler's rule for a constant feature
    eigenvalues, vectors = np.linalg.eigh(difference_moment(clean, changed, scale))
    eigenvalues = np.clip(eigenvalues, 0, None)
    inverse_root = (vectors / np.sqrt(1 + strength * eigenvalues)) @ vectors.T
    regression = logistic_regression().fit(((clean - mean) / scale) @ inverse_root, labels)
    return PenalisedProbe(mean, scale, inverse_root, regression, eigenvalues[::-1])
