"""Fit the temperature and decision threshold on validation, so probabilities can be trusted."""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) (Guo et al., 2017); logits (n, 2), labels (n,)."""
    logits_t = torch.as_tensor(logits, dtype=torch.float64)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # optimise log T so T stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def fit_threshold(fake_probability: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on P(fake) that maximises balanced accuracy (midpoint between neighbouring scores)."""
    scores = np.asarray(fake_probability, dtype=np.float64)
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 0.5
    candidates = np.unique(np.concatenate([[0.5], scores]))
    mids = np.concatenate([(candidates[:-1] + candidates[1:]) / 2, [0.5]])
    best, best_score = 0.5, -1.0
    positives, negatives = labels == 1, labels == 0
    for threshold in mids:
        predicted = scores >= threshold
        score = 0.5 * (predicted[positives].mean() + (~predicted[negatives]).mean())
        # prefer the threshold closest to 0.5 among equals: calibrated probabilities should need little shifting
        if score > best_score + 1e-12 or (abs(score - best_score) <= 1e-12 and abs(threshold - 0.5) < abs(best - 0.5)):
            best, best_score = float(threshold), float(score)
    return best


def expected_calibration_error(fake_probability: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of P(fake) against the labels, equal-width bins."""
    probability = np.asarray(fake_probability, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (probability >= low) & ((probability < high) | (high == 1.0))
        if inside.any():
            error += inside.mean() * abs(probability[inside].mean() - labels[inside].mean())
    return float(error)
