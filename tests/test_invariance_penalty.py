"""research.invariance_penalty: a head that pays for weight along what re-saves move, and stays one linear map of the
raw features (what clip_probe writes into the model's head)."""

from __future__ import annotations

import numpy as np
import pytest

from research import clip_probe
from research.invariance_penalty import PenalisedProbe, difference_moment, fit_penalised_probe
from research.processing_directions import linear_map


def _toy(seed: int = 0, n: int = 600, d: int = 16):
    """Clean features whose label lives in dimension 0 (robustly) and, more strongly, in a few 'noise' dimensions that
    a re-save scrambles; changed copies add noise only there."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    clean = rng.normal(size=(n, d))
    clean[:, 0] += 1.5 * labels
    noisy = slice(1, 5)
    clean[:, noisy] += 1.2 * labels[:, None]
    changed = clean.copy()
    changed[:, noisy] += rng.normal(0, 1.5, size=(n, 4))
    return clean, changed, labels


def _sensitivity(probe, clean: np.ndarray, changed: np.ndarray) -> float:
    """How far the change moves the score, relative to how far apart the scores lie."""
    before, after = probe.decision_function(clean), probe.decision_function(changed)
    return float(np.abs(after - before).mean() / before.std())


def test_strength_zero_is_the_plain_probe():
    clean, changed, labels = _toy()
    penalised = fit_penalised_probe(clean, [changed], labels, 0.0)
    plain = clip_probe.fit_probe(clean, labels)
    np.testing.assert_allclose(penalised.decision_function(changed), plain.decision_function(changed), rtol=1e-4, atol=1e-4)


def test_the_penalty_moves_the_weight_off_what_the_change_moves():
    clean, changed, labels = _toy(1)
    sensitivities = [_sensitivity(fit_penalised_probe(clean, [changed], labels, s), clean, changed) for s in (0, 10, 100)]
    assert sensitivities[0] > sensitivities[1] > sensitivities[2]
    assert sensitivities[2] < 0.35 * sensitivities[0]
    weight, _ = linear_map(fit_penalised_probe(clean, [changed], labels, 100))
    assert abs(weight[0]) > np.abs(weight[1:5]).max()  # the robust dimension now carries the head


def test_the_penalised_head_is_one_linear_map_and_set_head_writes_it():
    import torch

    clean, changed, labels = _toy(2)
    probe = fit_penalised_probe(clean, [changed], labels, 30)
    weight, bias = linear_map(probe)
    np.testing.assert_allclose(changed @ weight + bias, probe.decision_function(changed), rtol=1e-6, atol=1e-6)
    head = torch.nn.Linear(clean.shape[1], 2)
    clip_probe.set_head(type("Model", (), {"head": head})(), probe)
    with torch.no_grad():
        logits = head(torch.from_numpy(changed).float()).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], probe.decision_function(changed), rtol=1e-4, atol=1e-4)


def test_the_moment_is_normalised_and_bad_arguments_are_refused():
    clean, changed, labels = _toy(3)
    moment = difference_moment(clean, [changed], clean.std(0))
    assert moment.shape == (16, 16) and np.trace(moment) == pytest.approx(16)
    probe = fit_penalised_probe(clean, [changed], labels, 1)
    assert isinstance(probe, PenalisedProbe) and probe.spectrum[0] == probe.spectrum.max()
    with pytest.raises(ValueError, match="changed copy"):
        fit_penalised_probe(clean, [], labels, 1)
    with pytest.raises(ValueError, match=">= 0"):
        fit_penalised_probe(clean, [changed], labels, -1)
