"""A linear head that cannot read how a face was processed: the directions along which processing moves the frozen
features, projected out before the head is fitted.

Processed copies added as extra training rows (`clip_probe --augmented_views`) made the CLIP head more robust but cost
the hold-outs that differ from the rest in image quality (SD 2.1 0.54 -> 0.41, >= 512 px 0.50 -> 0.40,
`reports/generalization/clip-int8/`): the head learnt quality itself. Here the processed copies teach only what to
ignore. With D = processed - clean features of the same train faces, each dimension divided by the clean features'
standard deviation, the top-k principal directions of D are removed from every feature (`transform`), and the usual
probe (`research.depth_probe.fit_probe`) is fitted on the clean faces in that subspace. The projection is linear, so
the whole head is still one linear map of the raw features (`ProjectedProbe.linear_map`): it costs nothing at
inference. Measured (`reports/generalization/clip-invariance/`): 4 directions keep the hold-outs and lift blur sigma 3
through `predict()` from 0.54 to 0.60; more directions cost SD 2.1 and >= 512 px as processed rows did.
"""

from __future__ import annotations

import numpy as np


def linear_map(probe) -> tuple[np.ndarray, float]:
    """(weight, bias) on the raw features of a fitted StandardScaler + LogisticRegression pipeline, or of a probe that
    says its own (`ProjectedProbe`, `research.invariance_penalty.PenalisedProbe`): decision_function(x) == x @ weight + bias."""
    if hasattr(probe, "linear_map"):
        return probe.linear_map()
    scaler, regression = probe[0], probe[-1]
    weight = regression.coef_[0] / scaler.scale_
    return weight, float(regression.intercept_[0] - np.dot(weight, scaler.mean_))


def directions(clean: np.ndarray, processed: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scale (d,), basis (k, d)): the clean features' per-dimension standard deviation, and the top-k principal
    directions of the standardised processed - clean differences (every processed view of the same rows)."""
    if not processed:
        raise ValueError("processing directions need at least one processed copy of the train faces")
    scale = clean.std(0) + 1e-6
    differences = np.concatenate([(view - clean) / scale for view in processed])
    _, _, vt = np.linalg.svd(differences - differences.mean(0), full_matrices=False)
    return scale, vt[:k]


def project(features: np.ndarray, scale: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Features divided by `scale`, without their components along the rows of `basis`."""
    z = np.asarray(features, dtype=np.float64) / scale
    return z - (z @ basis.T) @ basis


class ProjectedProbe:
    """A fitted probe on features with the processing directions removed; `decision_function` and `predict_proba`
    take raw features, like the plain probe."""

    def __init__(self, scale: np.ndarray, basis: np.ndarray, probe):
        self.scale, self.basis, self.probe = scale, basis, probe

    def transform(self, features: np.ndarray) -> np.ndarray:
        return project(features, self.scale, self.basis)

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return self.probe.decision_function(self.transform(features))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.probe.predict_proba(self.transform(features))

    def linear_map(self) -> tuple[np.ndarray, float]:
        weight, bias = linear_map(self.probe)  # on the projected features z = (x / scale)(I - B^T B)
        return (weight - self.basis.T @ (self.basis @ weight)) / self.scale, bias


def fit_projected_probe(clean: np.ndarray, processed: list[np.ndarray], labels: np.ndarray, k: int) -> ProjectedProbe:
    """The probe fitted on the clean rows with the top-k processing directions (learnt from `processed`) removed."""
    from research.depth_probe import fit_probe

    scale, basis = directions(clean, processed, k)
    return ProjectedProbe(scale, basis, fit_probe(project(clean, scale, basis), labels))
