"""research.processing_directions: the processing directions are removed, and the head is still one linear map of the
raw features (what clip_probe writes into the model's head)."""

from __future__ import annotations

import numpy as np
import pytest

from research import clip_probe
from research.processing_directions import ProjectedProbe, directions, fit_projected_probe, linear_map


def _toy(seed: int = 0, n: int = 400, d: int = 12):
    """Clean features whose label lives in dimension 0, and processed copies shifted along a random 'quality' axis
    that is also (spuriously) label-correlated in the clean rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    axis = rng.normal(size=d)
    axis /= np.linalg.norm(axis)
    clean = rng.normal(size=(n, d))
    clean[:, 0] += 2.0 * labels
    clean += np.outer(0.8 * labels, axis)
    processed = clean + np.outer(rng.normal(3.0, 1.0, n), axis)
    return clean, processed, labels, axis


def test_the_projected_head_is_one_linear_map_of_the_raw_features():
    clean, processed, labels, _ = _toy()
    probe = fit_projected_probe(clean, [processed], labels, 2)
    weight, bias = linear_map(probe)
    np.testing.assert_allclose(clean @ weight + bias, probe.decision_function(clean), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(processed @ weight + bias, probe.decision_function(processed), rtol=1e-6, atol=1e-6)


def test_set_head_writes_the_projected_probe_into_the_models_head():
    import torch

    clean, processed, labels, _ = _toy(1)
    probe = fit_projected_probe(clean, [processed], labels, 1)
    head = torch.nn.Linear(clean.shape[1], 2)
    clip_probe.set_head(type("Model", (), {"head": head})(), probe)
    with torch.no_grad():
        logits = head(torch.from_numpy(processed).float()).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], probe.decision_function(processed), rtol=1e-4, atol=1e-4)


def test_the_processing_direction_is_found_and_ignored():
    clean, processed, labels, axis = _toy(2)
    scale, basis = directions(clean, [processed], 1)
    found = basis[0] * scale  # back in raw units
    assert abs(np.dot(found / np.linalg.norm(found), axis)) > 0.95
    weight, _ = linear_map(fit_projected_probe(clean, [processed], labels, 1))
    plain_weight, _ = linear_map(clip_probe.fit_probe(clean, labels))
    # the plain head leans on the spurious quality axis, the projected one does not
    assert abs(np.dot(plain_weight, axis)) > 0.1 * np.linalg.norm(plain_weight)
    assert abs(np.dot(weight, axis)) < 0.02 * np.linalg.norm(weight)
    assert _shift(processed - clean, weight) < 0.1 * _shift(processed - clean, plain_weight)


def _shift(differences: np.ndarray, weight: np.ndarray) -> float:
    """How far processing moves a head's score, per unit of weight."""
    return float(np.abs(differences @ weight).mean() / np.linalg.norm(weight))


def test_k_zero_is_the_plain_probe_and_no_copies_are_refused():
    clean, processed, labels, _ = _toy(3)
    projected = fit_projected_probe(clean, [processed], labels, 0)
    plain = clip_probe.fit_probe(clean, labels)
    np.testing.assert_allclose(projected.decision_function(clean), plain.decision_function(clean), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="processed copy"):
        directions(clean, [], 2)
    assert isinstance(projected, ProjectedProbe)


def test_clip_probe_refuses_directions_without_processed_copies(tmp_path):
    with pytest.raises(SystemExit, match="--processing_directions"):
        clip_probe.main(["--dataset", "x", "--app_faces", "x", "--clip_weights", __file__, "--augmented_views", "0",
                         "--processing_directions", "4", "--output_dir", str(tmp_path)])
