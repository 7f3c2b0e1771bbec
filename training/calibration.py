"""Fit the temperature and decision threshold on validation, so probabilities can be trusted.

Training draws real and fake faces equally often, while the validation split (like the corpus) is ~3/4 fake. The
fits therefore weight each class equally: the probability means "P(fake) if a real and a fake face were equally
likely", which is the honest default for an upload of unknown origin, and the threshold maximises balanced accuracy.

    python -m training.calibration --model_dir models/NAME --dataset data/faces-dataset [--evaluate]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def class_balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Per-sample weights giving each class the same total weight (mean weight 1)."""
    labels = np.asarray(labels)
    weights = np.zeros(len(labels), dtype=np.float64)
    classes = np.unique(labels)
    for value in classes:
        inside = labels == value
        weights[inside] = len(labels) / (len(classes) * inside.sum())
    return weights


def fit_temperature(logits: np.ndarray, labels: np.ndarray, balanced: bool = True, max_iter: int = 200) -> float:
    """The T > 0 minimising the (class-balanced) NLL of softmax(logits / T) (Guo et al., 2017); logits (n, 2)."""
    logits_t = torch.as_tensor(logits, dtype=torch.float64)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    weights = torch.as_tensor(class_balanced_weights(labels) if balanced else np.ones(len(labels)), dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # optimise log T so T stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        losses = torch.nn.functional.cross_entropy(logits_t / log_t.exp(), labels_t, reduction="none")
        loss = (losses * weights).sum() / weights.sum()
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


def expected_calibration_error(fake_probability: np.ndarray, labels: np.ndarray, bins: int = 10, balanced: bool = True) -> float:
    """ECE of P(fake) against the labels, equal-width bins; class-balanced weights by default (see module doc)."""
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


def calibrate(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature, then threshold, from validation logits (n, 2) and labels (n,); with before/after ECE."""
    temperature = fit_temperature(logits, labels)
    raw = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), dim=-1)[:, 1].numpy()
    calibrated = torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=-1)[:, 1].numpy()
    return {
        "temperature": temperature,
        "threshold": fit_threshold(calibrated, labels),
        "class_prior": "balanced (each class weighted equally)",
        "validation_ece_before": expected_calibration_error(raw, labels),
        "validation_ece_after": expected_calibration_error(calibrated, labels),
        "validation_images": int(len(labels)),
    }


def validation_logits(detector, split, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n, 2) of a model on a dataset split through the app's eval transform, and the labels (n,)."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.preprocess import eval_tensor

    logits, labels = [], []
    for start in range(0, len(split), batch_size):
        rows = split[start : start + batch_size]
        batch = torch.stack([eval_tensor(load_rgb_array(image["bytes"]), detector.data_config) for image in rows["image"]])
        with torch.inference_mode():
            logits.append(detector.net(batch).float().numpy())
        labels += list(rows["label"])
    return np.concatenate(logits), np.asarray(labels)


def main(argv: list[str] | None = None) -> int:
    """Re-fit an existing model folder's temperature and threshold on validation; --evaluate re-runs the test evaluation."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--evaluate", action="store_true", help="re-evaluate the test split (with ICIAP perturbations) and re-render the card")
    args = parser.parse_args(argv)

    import json
    from pathlib import Path

    from deepfake_detector.model import load_detector
    from training.data import load_built_dataset
    from training.hub import update_config

    dataset = load_built_dataset(args.dataset)
    detector = load_detector(args.model_dir)
    result = calibrate(*validation_logits(detector, dataset["validation"]))
    update_config(args.model_dir, threshold=result["threshold"], temperature=result["temperature"], calibration=result)
    print(json.dumps(result, indent=2))
    if args.evaluate:
        from training.evaluate import evaluate_records, records_from_dataset, write_outputs
        from training.model_card import write_model_card

        folder = Path(args.model_dir)
        previous = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
        metrics, predictions = evaluate_records(
            load_detector(folder), records_from_dataset(dataset["test"]), perturbations="icip", data_description=f"{args.dataset} (test split)"
        )
        metrics["training"] = previous.get("training", {})
        metrics["calibration"] = result
        write_outputs(folder, metrics, predictions)
        write_model_card(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
