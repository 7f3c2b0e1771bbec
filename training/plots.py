"""Evaluation plots (matplotlib, Agg backend, no display needed): confusion matrix, ROC curve, per-source
accuracy (with Wilson intervals), per-perturbation balanced accuracy and the reliability diagram. Each function
writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepfake_detector.model import LABEL_NAMES  # noqa: E402
DPI = 120


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


def plot_confusion_matrix(confusion: list[list[int]], path: str | Path, title: str = "Confusion matrix") -> Path:
    """2x2 counts with row-normalised shading (rows: true real/fake, columns: predicted)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(confusion, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(4.2, 3.8))
    # Shaded by the row rate, so a rare class's errors show as clearly as a common class's.
    display = ConfusionMatrixDisplay(rates, display_labels=LABEL_NAMES)
    display.plot(ax=axis, cmap="Blues", colorbar=False, values_format=".1%", im_kw={"vmin": 0, "vmax": 1})
    for (row, column), text in np.ndenumerate(display.text_):
        text.set_text(f"{int(counts[row, column])}\n{text.get_text()}")
    axis.set_title(title)
    return _save(figure, Path(path))


def plot_roc_curve(labels: np.ndarray, fake_probabilities: np.ndarray, path: str | Path, threshold: float | None = None, title: str = "ROC curve") -> Path:
    """ROC of P(fake) with the AUC and the operating point at `threshold`; a note when one class is missing."""
    from sklearn.metrics import RocCurveDisplay

    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(fake_probabilities, dtype=float)
    figure, axis = plt.subplots(figsize=(4.5, 4.2))
    if len(np.unique(labels)) == 2:
        display = RocCurveDisplay.from_predictions(labels, scores, ax=axis, plot_chance_level=True)
        display.line_.set_label(f"AUC {display.roc_auc:.3f}")  # three decimals, as in metrics.json and the report
        if threshold is not None:
            decided = scores >= threshold
            point = (decided[labels == 0].mean(), decided[labels == 1].mean())
            axis.scatter(*point, color="red", zorder=3, label=f"threshold {threshold:.2f}")
        axis.legend(loc="lower right")
    else:
        axis.text(0.5, 0.5, "ROC undefined:\nonly one class present", ha="center", va="center")
    axis.set_xlabel("false positive rate (real called fake)")
    axis.set_ylabel("true positive rate (fake caught)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title(title)
    return _save(figure, Path(path))


def plot_per_source(per_source: dict, path: str | Path, title: str = "Accuracy per source") -> Path:
    """Horizontal bars of accuracy per source, coloured by class, with Wilson 95% intervals and the image count."""
    names = list(per_source)
    figure, axis = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.4))
    accuracies = [per_source[name]["accuracy"] for name in names]
    colours = ["tab:blue" if per_source[name]["n_fake"] == 0 else "tab:red" if per_source[name]["n_real"] == 0 else "tab:purple" for name in names]
    bars = axis.barh(names, accuracies, color=colours, alpha=0.85)
    intervals = [per_source[name].get("accuracy_ci95") for name in names]
    if all(intervals):
        # max(0, ...): at 0% or 100% the Wilson bound equals the point up to float rounding, and matplotlib
        # refuses a negative error bar (it crashed evaluations of thin sources).
        low = [max(0.0, a - ci[0]) for a, ci in zip(accuracies, intervals)]
        high = [max(0.0, ci[1] - a) for a, ci in zip(accuracies, intervals)]
        axis.errorbar(accuracies, range(len(names)), xerr=[low, high], fmt="none", ecolor="black", capsize=3, linewidth=1)
    for bar, name in zip(bars, names):
        n = per_source[name]["count"]
        flag = "  small n" if per_source[name].get("small_n") else ""
        axis.text(1.02, bar.get_y() + bar.get_height() / 2, f"{bar.get_width():.3f}  (n={n}){flag}", va="center", fontsize=8)
    axis.set_xlim(0, 1.45)
    axis.invert_yaxis()
    axis.set_xlabel("accuracy (blue: real source, red: fake source)")
    axis.set_title(title)
    return _save(figure, Path(path))


def plot_per_perturbation(per_perturbation: dict, clean_balanced_accuracy: float, path: str | Path, title: str = "Balanced accuracy per perturbation") -> Path:
    """Bars of balanced accuracy per perturbation, with the clean images' value as a reference line."""
    names = list(per_perturbation)
    values = [per_perturbation[name]["balanced_accuracy"] for name in names]
    figure, axis = plt.subplots(figsize=(6.5, 0.38 * len(names) + 1.4))
    axis.barh(names, values, color="tab:orange")
    axis.axvline(clean_balanced_accuracy, color="black", linestyle="--", linewidth=1, label=f"clean {clean_balanced_accuracy:.3f}")
    axis.axvline(0.5, color="grey", linestyle=":", linewidth=1, label="chance 0.5")
    for index, value in enumerate(values):
        axis.text(value + 0.01, index, f"{value:.3f}", va="center", fontsize=8)
    axis.set_xlim(0, 1.12)
    axis.invert_yaxis()
    axis.set_xlabel("balanced accuracy")
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(title)
    return _save(figure, Path(path))


def reliability_bins(probability: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict]:
    """Class-balanced reliability bins (the same weighting as the ECE): mean P(fake), share fake, weight per bin."""
    from training.calibration_metrics import class_balanced_weights

    probability, labels = np.asarray(probability, dtype=float), np.asarray(labels, dtype=float)
    weights = class_balanced_weights(labels)
    edges = np.linspace(0, 1, bins + 1)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (probability >= low) & ((probability < high) | (high == 1.0))
        if inside.any():
            w = weights[inside]
            rows.append({"low": float(low), "high": float(high), "confidence": float(np.average(probability[inside], weights=w)),
                         "observed": float(np.average(labels[inside], weights=w)), "weight": float(w.sum() / weights.sum()), "n": int(inside.sum())})
    return rows


def plot_reliability(labels: np.ndarray, curves: dict[str, np.ndarray], path: str | Path, title: str = "Reliability (class-balanced)") -> Path:
    """Reliability diagram: per bin, mean P(fake) against the class-balanced share of fakes, one line per curve
    ({name: probabilities}), the marker area proportional to the bin's weight; the diagonal is perfect calibration."""
    from training.calibration_metrics import expected_calibration_error

    figure, axis = plt.subplots(figsize=(4.8, 4.6))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for (name, probability), colour in zip(curves.items(), ("tab:orange", "tab:blue", "tab:green")):
        rows = reliability_bins(probability, labels)
        ece = expected_calibration_error(probability, labels)
        axis.plot([r["confidence"] for r in rows], [r["observed"] for r in rows], marker="o", color=colour, label=f"{name} (ECE {ece:.3f})", linewidth=1.5)
        axis.scatter([r["confidence"] for r in rows], [r["observed"] for r in rows], s=[600 * r["weight"] for r in rows], color=colour, alpha=0.25)
    axis.set_xlabel("displayed P(fake), bin mean")
    axis.set_ylabel("share fake (each class weighted equally)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title(title)
    return _save(figure, Path(path))


def write_plots(output_dir: str | Path, metrics: dict, predictions: pd.DataFrame) -> list[Path]:
    """All evaluation plots for `training.evaluate` outputs (per_perturbation.png only with perturbations)."""
    output = Path(output_dir)
    clean = predictions[predictions["perturbation"] == "none"]
    labels = (clean["label"] == "fake").astype(int).to_numpy()
    written = [
        plot_confusion_matrix(metrics["confusion_matrix"], output / "confusion_matrix.png", title=f"{metrics['model']}: confusion"),
        plot_roc_curve(labels, clean["fake_probability"].to_numpy(), output / "roc_curve.png", threshold=metrics["threshold"], title=f"{metrics['model']}: ROC"),
        plot_per_source(metrics["per_source"], output / "per_source.png"),
    ]
    if metrics.get("per_perturbation"):
        sample = metrics.get("perturbation_sample")
        clean_reference = (sample["clean"] if sample else metrics)["balanced_accuracy"]
        title = f"Balanced accuracy per perturbation ({sample['n_images']}-image sample)" if sample else "Balanced accuracy per perturbation"
        written.append(plot_per_perturbation(metrics["per_perturbation"], clean_reference, output / "per_perturbation.png", title=title))
    if "logit_margin" in clean and len(np.unique(labels)) == 2:
        from deepfake_detector.model import sigmoid

        curves = {"uncalibrated softmax": sigmoid(clean["logit_margin"].to_numpy()), "displayed (calibrated)": clean["fake_probability"].to_numpy()}
        written.append(plot_reliability(labels, curves, output / "reliability.png", title=f"Reliability, {len(clean)} images"))
    return written


def plot_holdout_auc_by_depth(aucs: dict[str, dict[str, float]], path: str | Path, title: str = "Held-out ROC AUC by depth",
                              in_distribution: dict[str, float] | None = None, target: float = 0.8) -> Path:
    """One line per held-out source across feature depths (`aucs`: {depth: {hold-out: AUC}}, depths in order) and,
    if given, the in-distribution AUC per depth, with chance (0.5) and the target AUC drawn: below the dashed line a
    hold-out is ranked the wrong way."""
    depths = list(aucs)
    figure, axis = plt.subplots(figsize=(6.4, 3.8))
    for holdout in aucs[depths[0]]:
        axis.plot(depths, [aucs[depth][holdout] for depth in depths], marker="o", label=holdout)
    if in_distribution:
        axis.plot(depths, [in_distribution[depth] for depth in depths], color="black", linewidth=2, label="in distribution")
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.axhline(target, color="green", linestyle=":", linewidth=1)
    axis.text(len(depths) - 1, 0.5, "chance", ha="right", va="bottom", color="grey", fontsize=8)
    axis.text(len(depths) - 1, target, f"target {target}", ha="right", va="bottom", color="green", fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("ROC AUC")
    axis.set_title(title)
    if len(depths) > 9:  # a transformer's twelve layers: names that would overlap side by side
        axis.tick_params(axis="x", labelrotation=45, labelsize=8)
    axis.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return _save(figure, Path(path))
