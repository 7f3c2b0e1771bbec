"""The card's target table counts what a visitor is told: a diffusion face the detector misses is not caught."""

from __future__ import annotations

from training.model_card import _targets


def _metrics(fake_share: float, accuracy: float) -> dict:
    return {
        "balanced_accuracy": 0.9, "roc_auc": 0.95, "per_class": {"real": {"f1": 0.8}},
        "per_source": {"sd21": {"count": 37, "accuracy": accuracy, "verdict_shares": {"Fake": fake_share, "No face": 1 - fake_share}}},
    }


def _sd21_row(metrics: dict) -> str:
    [row] = [line for line in _targets(metrics).splitlines() if "Stable Diffusion 2.1" in line]
    return row


def test_sd21_faces_without_a_detected_face_are_not_caught():
    row = _sd21_row(_metrics(fake_share=33 / 37, accuracy=36 / 37))
    assert "| 0.892 |" in row and "**missed**" in row and "above the threshold: 0.973" in row


def test_sd21_target_met_when_the_verdicts_say_fake():
    row = _sd21_row(_metrics(fake_share=0.95, accuracy=0.95))
    assert "| 0.950 | met |" in row
