"""Evaluate a detector the way the app answers a visitor: metrics.json, predictions.csv, report.md and plots.

    python -m training.evaluate --model models/deepfake-detector-effnet-lite0 --data data/built --split test --output runs/eval
    python -m training.evaluate --model MODEL --data ../shared/data/faces --output runs/eval --perturbations icip --limit 500
    python -m training.evaluate --model MODEL_A --compare MODEL_B MODEL_C --data DATA --output runs/compare
    python -m training.evaluate --model MODEL --data data/built --whole_image --output runs/eval-crops

--data is a built dataset (folder or Hub id; --split picks the split) or an image folder with real/ and
fake/ subfolders, nested freely; the first folder under real/ or fake/ names the source.

By default every image goes through `deepfake_detector.predict.predict_many` (`predict` for a batch: the same
functions, crops classified in shared batches), the app's own path: detect faces, crop
1.45x each box, classify, verdict (Real / Fake / Uncertain at the model's threshold and cuts: Real below threshold -
uncertain_band, Fake from threshold + fake_band up, the two bands equal unless the folder is asymmetric; a face unlike training
is never Real; the photo's verdict from its faces by `predict.photo_verdict`; no face: the whole image is classified,
as the app does; the per-image probability is its most suspicious face's). Reported on top of the usual metrics: face
detection coverage, the share of each verdict per source, accuracy on the decided faces, both error rates at the
operating point (real called Fake, fake called Real) with Wilson 95% intervals, and the class-balanced ECE before
and after calibration. --whole_image classifies each image whole instead (`classify_crops`; for datasets of
face crops, and the training loop's view of validation).

Unreadable images are listed under `skipped` in metrics.json, not fatal. --perturbations icip also classifies
every image after each processing in `training.perturbations`. Metrics come from the local `evaluate` module in
training/metrics/binary_detection (loaded by path; the Hub is not needed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from deepfake_detector.images import ImageError, load_rgb_array
from deepfake_detector.model import Detector, fake_margin, load_detector, sigmoid
from deepfake_detector.predict import ALL_VERDICTS, VERDICTS, crop_logits, predict_many, verdict_for
from training.calibration_metrics import expected_calibration_error
from training.data import LABEL_NAMES
from training.intervals import SMALL_N, format_proportion, proportion
from training.perturbations import perturbation_set

METRIC_MODULE = Path(__file__).resolve().parent / "metrics" / "binary_detection"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# The first six are the historical columns (kept, in order); the rest were added with the predict() path.
PREDICTION_COLUMNS = ["path", "label", "source", "fake_probability", "predicted", "perturbation", "verdict", "face_found", "n_faces", "logit_margin"]
MODES = ("predict", "whole_image")
# What a visitor is told, per verdict: Fake for a real photo is the costly error.
CORRECT_VERDICT = {"real": "Real", "fake": "Fake"}
WRONG_VERDICT = {"real": "Fake", "fake": "Real"}
CLEAN = "none"
LIMIT_SEED = 0


@lru_cache(maxsize=1)
def _metric_module():
    import evaluate  # slow import (~seconds); only when metrics are computed

    return evaluate.load(str(METRIC_MODULE))


def compute_metrics(labels: Sequence[int], predicted: Sequence[int], fake_probabilities: Sequence[float]) -> dict:
    """The binary_detection module's metrics for 0/1 labels, 0/1 decisions and P(fake) scores."""
    return _metric_module().compute(
        references=[int(x) for x in labels], predictions=[int(x) for x in predicted], prediction_scores=[float(x) for x in fake_probabilities]
    )


# ---------------------------------------------------------------- records


def records_from_dataset(dataset_split):
    """Records (path, label, source, image_bytes or file) for a split from `training.data.load_built_dataset`: the
    split itself behind a `with_transform` view, so nothing is decoded or copied and `len`/`select` still work."""
    missing = {"image", "label", "source", "path"} - set(dataset_split.column_names)
    if missing:
        raise ValueError(f"The dataset split lacks columns {sorted(missing)}; build it with training.build_dataset.")
    return dataset_split.select_columns(["image", "label", "source", "path"]).with_transform(_as_records)


def _as_records(rows: dict) -> dict:
    """Batch transform: built-dataset rows -> evaluation records (the image stays undecoded: bytes or a file path)."""
    images = [image or {} for image in rows["image"]]
    return {
        "path": [path or image.get("path") for path, image in zip(rows["path"], images)],
        "label": rows["label"],
        "source": rows["source"],
        "image_bytes": [image.get("bytes") for image in images],
        "file": [image.get("path") for image in images],
    }


def records_from_folder(path: str | Path) -> list[dict]:
    """Records (path, label, source, file) for every image file under PATH/real and PATH/fake, sorted.

    The source is the first folder below real/ or fake/ ("real"/"fake" for files directly in them);
    files without an image extension are ignored, image-named files that do not decode are skipped later.
    """
    root = Path(path)
    if not any((root / name).is_dir() for name in LABEL_NAMES):
        raise ValueError(f"{root} has no real/ or fake/ subfolder; put images in {root}/real/<source>/ and {root}/fake/<source>/.")
    records = []
    for label in LABEL_NAMES:
        for file in sorted((root / label).rglob("*")) if (root / label).is_dir() else []:
            relative = file.relative_to(root)
            if not file.is_file() or file.suffix.lower() not in IMAGE_EXTENSIONS or any(p.startswith(".") for p in relative.parts):
                continue
            source = relative.parts[1] if len(relative.parts) > 2 else label
            records.append({"path": relative.as_posix(), "label": label, "source": source, "file": str(file)})
    return records


def _label_index(label) -> int:
    if isinstance(label, str) and label in LABEL_NAMES:
        return LABEL_NAMES.index(label)
    if isinstance(label, (int, np.integer)) and int(label) in (0, 1):
        return int(label)
    raise ValueError(f"Label {label!r} is neither 0/1 nor 'real'/'fake'.")


def _decode(record: dict) -> np.ndarray:
    if record.get("image_bytes") is not None:
        return load_rgb_array(record["image_bytes"])
    if record.get("file"):
        return load_rgb_array(record["file"])
    raise ImageError("The record has neither image_bytes nor file.")


# ---------------------------------------------------------------- evaluation


class Outcome(NamedTuple):
    """One image's answer and the logit margin of the face that decided it (what calibration is fitted on)."""

    fake_probability: float
    verdict: str
    face_found: bool | None  # None: classified whole (mode "whole_image")
    n_faces: int | None
    logit_margin: float


def classify_images(images: list[np.ndarray], detector: Detector, mode: str = "predict", batch_size: int = 32) -> list[Outcome]:
    """The one forward pass over evaluation and validation images: evaluation, calibration and training's final
    validation all score images here. mode "predict": the app's path (`predict_many`); "whole_image": each image whole."""
    if mode == "whole_image":
        logits = crop_logits(images, detector, batch_size=batch_size)
        probabilities, margins = detector.probabilities_from_logits(logits), fake_margin(logits, detector.fake_index)
        cuts = (detector.threshold, detector.band, detector.fake_band)
        return [Outcome(float(p), verdict_for(float(p), *cuts), None, None, float(m)) for p, m in zip(probabilities, margins)]
    outcomes = []
    for prediction in predict_many(images, detector, batch_size=batch_size):
        deciding = [face for face in prediction.faces if face.judged] or prediction.faces
        margin = max(face.logit_margin for face in deciding)  # the deciding face: calibration is monotonic
        outcomes.append(Outcome(prediction.fake_probability, prediction.verdict, prediction.face_found, len(prediction.faces) if prediction.face_found else 0, margin))
    return outcomes


def evaluate_records(
    detector: Detector,
    records: Iterable[dict],
    perturbations: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    *,
    data_description: str = "",
    mode: str = "predict",
    perturbation_sample: int | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Classify every record (clean, then once per perturbation of the named set) and compute the metrics.

    records: dicts with path, label (0/1 or "real"/"fake"), source and image_bytes or file.
    mode: "predict" (the app's path: faces detected, cropped, classified, verdict) or "whole_image".
    perturbation_sample: perturb only a seeded random sample of this many records (predict() on every perturbed
    image costs 16x the clean run); metrics["perturbation_sample"] then gives n and the clean metrics on that sample.
    Returns (metrics for metrics.json, one prediction row per image and perturbation).
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    chosen = perturbation_set(perturbations)
    total = len(records) if hasattr(records, "__len__") else None
    rows, skipped, batch = [], [], []
    clean_seconds = 0.0
    started = time.perf_counter()
    threshold, band = detector.threshold, detector.band
    perturbed_indices = None
    if chosen and perturbation_sample and total is not None and perturbation_sample < total:
        perturbed_indices = set(np.random.default_rng(LIMIT_SEED).choice(total, size=perturbation_sample, replace=False).tolist())

    def flush() -> None:
        nonlocal clean_seconds
        # One variant at a time: holding all of them for a batch of 1024-px images would take gigabytes.
        for name, perturb in [(CLEAN, None)] + [(p.name, p) for p in chosen]:
            members = batch if perturb is None else [item for item in batch if perturbed_indices is None or item[0]["index"] in perturbed_indices]
            if not members:
                continue
            arrays = [image if perturb is None else perturb(image) for _, image in members]
            tick = time.perf_counter()
            outcomes = classify_images(arrays, detector, mode=mode, batch_size=batch_size)
            if name == CLEAN:
                clean_seconds += time.perf_counter() - tick
            for (record, _), outcome in zip(members, outcomes):
                rows.append((record["path"], record["label"], record["source"], name, *outcome))
        batch.clear()

    for index, record in enumerate(tqdm(records, total=total, unit="img", desc=f"evaluate {detector.name}", disable=not progress)):
        label = LABEL_NAMES[_label_index(record.get("label"))]
        tick = time.perf_counter()
        try:
            image = _decode(record)
        except ImageError as error:
            skipped.append({"path": str(record.get("path")), "reason": str(error)})
            continue
        finally:
            clean_seconds += time.perf_counter() - tick
        batch.append(({"path": str(record["path"]), "label": label, "source": str(record.get("source") or label), "index": index}, image))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    elapsed = time.perf_counter() - started
    if not rows:
        reasons = "; ".join(f"{item['path']}: {item['reason']}" for item in skipped[:3])
        raise ValueError(f"No image could be evaluated ({len(skipped)} skipped{': ' + reasons if reasons else ''}); check --data.")

    predictions = pd.DataFrame(rows, columns=["path", "label", "source", "perturbation", "fake_probability", "verdict", "face_found", "n_faces", "logit_margin"])
    predictions["predicted"] = np.where(predictions["fake_probability"] >= threshold, "fake", "real")
    predictions = predictions[PREDICTION_COLUMNS]
    clean = predictions[predictions["perturbation"] == CLEAN]
    metrics = {
        "model": detector.name,
        "model_folder": str(detector.folder),
        "data": data_description,
        "mode": mode,
        "threshold": threshold,
        "uncertain_band": band,
        "fake_band": detector.fake_band,  # Fake from threshold + fake_band up (== uncertain_band unless asymmetric)
        "temperature": detector.temperature,
        "calibration_summary": detector.calibration_summary,
        "n_images": int(len(clean)),
        **_metrics_for(clean),
        "ece": _ece(clean),
        **_visitor_outcomes(clean, mode),
        "per_source": _per_source(clean, mode),
        "skipped": skipped,
        "n_skipped": len(skipped),
        # Decode + clean classification only, so the number does not depend on the perturbation set.
        "images_per_second": float(len(clean) / clean_seconds) if clean_seconds > 0 else None,
        "elapsed_seconds": float(elapsed),
    }
    if chosen:
        metrics["perturbation_set"] = perturbations
        if perturbed_indices is not None:
            sampled = clean[clean["path"].isin(set(predictions.loc[predictions["perturbation"] != CLEAN, "path"]))]
            metrics["perturbation_sample"] = {"n_images": int(len(sampled)), "seed": LIMIT_SEED, "clean": _metrics_for(sampled)}
        metrics["per_perturbation"] = {
            p.name: {**p.to_json(), **_metrics_for(predictions[predictions["perturbation"] == p.name])} for p in chosen
        }
    return metrics, predictions


def worst_perturbation(metrics: dict) -> tuple[str, float] | None:
    """(name, balanced accuracy) of the perturbation that hurts most (the first in table order on a tie); None without."""
    per_perturbation = metrics.get("per_perturbation") or {}
    if not per_perturbation:
        return None
    name = min(per_perturbation, key=lambda key: per_perturbation[key].get("balanced_accuracy", 1.0))
    return name, per_perturbation[name].get("balanced_accuracy")


def _metrics_for(frame: pd.DataFrame) -> dict:
    labels = (frame["label"] == "fake").astype(int).to_numpy()
    decided = (frame["predicted"] == "fake").astype(int).to_numpy()
    result = compute_metrics(labels, decided, frame["fake_probability"].to_numpy())
    result.pop("n", None)
    return result


def _ece(frame: pd.DataFrame) -> dict:
    """Class-balanced ECE (10 bins) of the displayed probability, and of softmax without any calibration."""
    labels = (frame["label"] == "fake").astype(int).to_numpy()
    return {
        "class_balanced": expected_calibration_error(frame["fake_probability"].to_numpy(), labels),
        "class_balanced_uncalibrated": expected_calibration_error(sigmoid(frame["logit_margin"].to_numpy()), labels),
        "bins": 10,
    }


def _visitor_outcomes(frame: pd.DataFrame, mode: str) -> dict:
    """What visitors are told: verdict shares, coverage, both error rates at the operating point, decided accuracy."""
    found = frame["face_found"].astype(bool) if mode == "predict" else pd.Series(True, index=frame.index)
    decided = found & frame["verdict"].isin(["Real", "Fake"])
    correct = frame["verdict"] == frame["label"].map(CORRECT_VERDICT)
    wrong = frame["verdict"] == frame["label"].map(WRONG_VERDICT)
    real, fake = frame["label"] == "real", frame["label"] == "fake"
    outcomes = {
        "verdict_shares": {verdict: float((frame["verdict"] == verdict).mean()) for verdict in ALL_VERDICTS if mode == "predict" or verdict in VERDICTS},
        "decided_accuracy": proportion(int((correct & decided).sum()), int(decided.sum())),
        "false_fake_rate": proportion(int((wrong & real).sum()), int(real.sum())),
        "missed_fake_rate": proportion(int((wrong & fake).sum()), int(fake.sum())),
        "uncertain_rate": {label: float((frame["verdict"][frame["label"] == label] == "Uncertain").mean()) if (frame["label"] == label).any() else None for label in LABEL_NAMES},
    }
    if mode == "predict":
        outcomes["coverage"] = proportion(int(found.sum()), len(frame))
    return outcomes


def _per_source(frame: pd.DataFrame, mode: str = "whole_image") -> dict:
    """Per source: accuracy (at the threshold) with its Wilson interval, then the visitor outcomes.

    For a one-class source accuracy is that class's recall."""
    result = {}
    for source, group in frame.groupby("source", sort=True):
        correct = (group["label"] == group["predicted"]).to_numpy()
        result[str(source)] = {
            "count": int(len(group)),
            "n_real": int((group["label"] == "real").sum()),
            "n_fake": int((group["label"] == "fake").sum()),
            "accuracy": float(correct.mean()),
            "accuracy_ci95": proportion(int(correct.sum()), len(group))["ci95"],
            "small_n": bool(len(group) < SMALL_N),
            "mean_fake_probability": float(group["fake_probability"].mean()),
            **_visitor_outcomes(group, mode),
        }
    return result


# ---------------------------------------------------------------- outputs


def write_outputs(output_dir: str | Path, metrics: dict, predictions: pd.DataFrame) -> Path:
    """Write the plots, metrics.json, predictions.csv and report.md into output_dir (created).

    Adds metrics["plots"] (the PNG file names written), which the model card uses to embed them.
    """
    from training.plots import write_plots

    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    metrics["plots"] = [path.name for path in write_plots(output, metrics, predictions)]
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default) + "\n")
    predictions.to_csv(output / "predictions.csv", index=False)
    (output / "report.md").write_text(render_report(metrics))
    return output


def _json_default(value):
    # Callers add their own blocks (training history, calibration) that may hold numpy scalars/arrays.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _pair(metrics: dict, key: str) -> str:
    return f"{_num(metrics['per_class']['real'][key])} / {_num(metrics['per_class']['fake'][key])}"


def summary_row(name: str, metrics: dict) -> str:
    """One row of "Model | Accuracy | Precision (real/fake) | Recall (real/fake) | F1 (real/fake)"."""
    return f"| {name} | {_num(metrics['accuracy'])} | {_pair(metrics, 'precision')} | {_pair(metrics, 'recall')} | {_pair(metrics, 'f1')} |"


SUMMARY_HEADER = "| Model | Accuracy | Precision (real/fake) | Recall (real/fake) | F1 (real/fake) |\n|---|---|---|---|---|"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def operating_point_lines(metrics: dict) -> list[str]:
    """The visitor's view: verdict shares, coverage and both error rates at the operating point (markdown lines)."""
    threshold, band = metrics["threshold"], metrics.get("uncertain_band", 0.1)
    fake_band = metrics.get("fake_band", band)  # metrics written before asymmetric folders: symmetric
    shares = metrics.get("verdict_shares") or {}
    path = "`predict()`, the app path" if metrics.get("mode") == "predict" else "whole-image classification"
    cuts = f"Fake from {threshold + fake_band:.3f} up, Real below {threshold - band:.3f}"
    if fake_band == band:
        opening = f"Verdicts at threshold {threshold:.2f} with Uncertain band ±{band:.3f} ({cuts}), through {path}:"
    else:  # the Fake cut was raised alone (training.calibration --asymmetric): "±" would misstate it
        opening = f"Verdicts at threshold {threshold:.2f} with Uncertain band -{band:.3f} / +{fake_band:.3f} ({cuts}), through {path}:"
    lines = [
        opening,
        "",
        "| | value [Wilson 95%] |",
        "|---|---|",
        f"| real faces called **Fake** (false-fake rate) | {format_proportion(metrics.get('false_fake_rate'))} |",
        f"| fake faces called **Real** (missed-fake rate) | {format_proportion(metrics.get('missed_fake_rate'))} |",
        f"| Uncertain (real / fake) | {_share((metrics.get('uncertain_rate') or {}).get('real'))} / {_share((metrics.get('uncertain_rate') or {}).get('fake'))} |",
        f"| accuracy on decided faces (Real or Fake) | {format_proportion(metrics.get('decided_accuracy'))} |",
        f"| verdict shares Real / Fake / Uncertain | {_share(shares.get('Real'))} / {_share(shares.get('Fake'))} / {_share(shares.get('Uncertain'))} |",
    ]
    if metrics.get("coverage"):
        lines.append(f"| a face was detected (coverage) | {format_proportion(metrics['coverage'])} |")
    ece = metrics.get("ece") or {}
    if ece:
        lines.append(f"| class-balanced ECE ({ece.get('bins', 10)} bins): uncalibrated softmax -> displayed probability | {_num(ece.get('class_balanced_uncalibrated'))} -> {_num(ece.get('class_balanced'))} |")
    return lines


def per_source_lines(metrics: dict) -> list[str]:
    """Per source: accuracy at the threshold with its Wilson interval, verdict shares and the source's error rate."""
    predict_mode = metrics.get("mode") == "predict"
    lines = [
        f"Accuracy at threshold {metrics['threshold']:.2f} with Wilson 95% intervals; sources with fewer than {SMALL_N} images are"
        " flagged: their numbers are anecdotes, not estimates. Error at the operating point: real sources, share called"
        " Fake; fake sources, share called Real.",
        "",
        "| Source | Images | Real | Fake | Accuracy [95% CI] | Verdicts Real / Fake / Uncertain | Error at operating point [95% CI] |"
        + (" Face found |" if predict_mode else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if predict_mode else ""),
    ]
    for source, row in metrics["per_source"].items():
        accuracy = proportion(round(row["accuracy"] * row["count"]), row["count"])
        shares = row.get("verdict_shares") or {}
        error = row.get("false_fake_rate") if row["n_real"] and not row["n_fake"] else row.get("missed_fake_rate") if row["n_fake"] and not row["n_real"] else None
        kind = "called Fake " if row["n_real"] and not row["n_fake"] else "called Real " if row["n_fake"] and not row["n_real"] else ""
        line = (
            f"| {source} | {row['count']} | {row['n_real']} | {row['n_fake']} | {format_proportion(accuracy)} "
            f"| {_share(shares.get('Real'))} / {_share(shares.get('Fake'))} / {_share(shares.get('Uncertain'))} | {kind}{format_proportion(error)} |"
        )
        if predict_mode:
            line += f" {_share((row.get('coverage') or {}).get('value'))} |"
        lines.append(line)
    return lines


def render_report(metrics: dict) -> str:
    """The markdown classification report: summary, operating point, per class, confusion, per source, per perturbation, skipped."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines = [
        f"# Evaluation of {metrics['model']}",
        "",
        f"Data: {metrics['data'] or 'n/a'}. Images: {metrics['n_images']} (skipped {metrics['n_skipped']}). "
        f"Mode: {metrics.get('mode', 'whole_image')}. Threshold {metrics['threshold']:.3f}; calibration: "
        f"{metrics.get('calibration_summary') or 'temperature ' + format(metrics['temperature'], '.3f')}. "
        f"Balanced accuracy {_num(metrics['balanced_accuracy'])}, ROC AUC {_num(metrics['roc_auc'])}, "
        f"{_num(metrics['images_per_second'], 1)} images/s.",
        "",
        SUMMARY_HEADER,
        summary_row(metrics["model"], metrics),
        "",
        "## Operating point (what a visitor is told)",
        "",
        *operating_point_lines(metrics),
        "",
        "## Per class",
        "",
        "| Class | Precision | Recall | F1 | Support |",
        "|---|---|---|---|---|",
    ]
    for name in LABEL_NAMES:
        row = metrics["per_class"][name]
        lines.append(f"| {name} | {_num(row['precision'])} | {_num(row['recall'])} | {_num(row['f1'])} | {row['support']} |")
    lines += ["", "## Confusion matrix (at the threshold, no Uncertain band)", "", "| true \\ predicted | real | fake |", "|---|---|---|", f"| real | {tn} | {fp} |", f"| fake | {fn} | {tp} |"]
    lines += ["", "## Per source", "", *per_source_lines(metrics)]
    if metrics.get("per_perturbation"):
        sample = metrics.get("perturbation_sample")
        clean_row = sample["clean"] if sample else metrics
        lines += [
            "",
            "## Per perturbation",
            "",
            f"On a seeded random sample of {sample['n_images']} of the {metrics['n_images']} images (seed {sample['seed']}); the first row is"
            " the clean images of that sample." if sample else "On every image; the first row is the clean images.",
            "",
            "| Perturbation | Parameters | Accuracy | Balanced accuracy | ROC AUC | Recall (real/fake) | F1 (real/fake) |",
            "|---|---|---|---|---|---|---|",
            f"| none | clean images | {_num(clean_row['accuracy'])} | {_num(clean_row['balanced_accuracy'])} | {_num(clean_row['roc_auc'])} | {_pair(clean_row, 'recall')} | {_pair(clean_row, 'f1')} |",
        ]
        for name, row in metrics["per_perturbation"].items():
            params = ", ".join(f"{key}={value}" for key, value in row["params"].items())
            lines.append(
                f"| {name} | {params} | {_num(row['accuracy'])} | {_num(row['balanced_accuracy'])} | {_num(row['roc_auc'])} | {_pair(row, 'recall')} | {_pair(row, 'f1')} |"
            )
    if metrics["skipped"]:
        lines += ["", "## Skipped images", ""] + [f"- `{item['path']}`: {item['reason']}" for item in metrics["skipped"]]
    return "\n".join(lines) + "\n"


def write_comparison(output_dir: str | Path, results: dict[str, dict]) -> None:
    """comparison.md (one table, a row per model) and comparison.json from {folder name: metrics}."""
    output = Path(output_dir)
    header = SUMMARY_HEADER.replace("| F1 (real/fake) |\n|---|---|---|---|---|", "| F1 (real/fake) | Balanced accuracy | ROC AUC | Worst perturbation (balanced acc.) | Images/s |\n|---|---|---|---|---|---|---|---|---|")
    lines = ["# Model comparison", "", f"Data: {next(iter(results.values()))['data']}", "", header]
    summary = {}
    for folder, metrics in results.items():
        worst = worst_perturbation(metrics)
        worst_text = f"{worst[0]} {_num(worst[1])}" if worst else "n/a"
        lines.append(
            f"{summary_row(metrics['model'], metrics)} {_num(metrics['balanced_accuracy'])} | {_num(metrics['roc_auc'])} | {worst_text} | {_num(metrics['images_per_second'], 1)} |"
        )
        summary[folder] = {key: metrics.get(key) for key in ("model", "model_folder", "n_images", "accuracy", "balanced_accuracy", "roc_auc", "per_class", "threshold", "images_per_second")}
        summary[folder]["results_folder"] = folder
    (output / "comparison.md").write_text("\n".join(lines) + "\n")
    (output / "comparison.json").write_text(json.dumps(summary, indent=2) + "\n")


# ---------------------------------------------------------------- command line


def load_records(data: str, split: str = "test", limit: int | None = None) -> tuple[Sequence[dict], str]:
    """(records, description) for an image folder with real/ and fake/ or a built dataset folder / Hub id."""
    path = Path(data)
    is_folder = path.is_dir() and any((path / name).is_dir() for name in LABEL_NAMES) and not (path / "dataset_dict.json").exists()
    if is_folder:
        records, description = records_from_folder(path), f"image folder {path}"
    else:
        from training.data import load_built_dataset

        dataset = load_built_dataset(data)
        if split not in dataset:
            raise ValueError(f"The dataset has no split {split!r}; pass --split with one of {sorted(dataset)}.")
        records, description = records_from_dataset(dataset[split]), f"dataset {data}, split {split}"
    if limit is not None:
        if limit < 1:
            raise ValueError("--limit must be a positive number of images.")
        if limit < len(records):
            # A seeded sample in original order: the first N of a sorted folder would be all real.
            keep = np.sort(np.random.default_rng(LIMIT_SEED).choice(len(records), size=limit, replace=False))
            records = records.select(keep.tolist()) if hasattr(records, "select") else [records[int(i)] for i in keep]
            description += f", random sample of {limit} (seed {LIMIT_SEED})"
    return records, description


def _folder_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name.removeprefix("hf-hub:")).strip("._") or "model"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--model_dir", help="model folder or hf-hub:ORG/NAME[@rev]")
    parser.add_argument("--data", "--dataset", required=True, help="built dataset folder / Hub id, or an image folder with real/ and fake/")
    parser.add_argument("--split", default="test", help="dataset split (ignored for an image folder)")
    parser.add_argument("--output", "--output_dir", required=True, help="output folder")
    parser.add_argument("--perturbations", default=None, choices=["icip", "none"], help="also evaluate under this processing set")
    parser.add_argument("--compare", nargs="+", default=[], metavar="MODEL", help="more models to evaluate on the same data")
    parser.add_argument("--limit", type=int, default=None, help="evaluate a seeded random sample of N images")
    parser.add_argument("--perturbation_sample", type=int, default=None, help="perturb only a seeded random sample of N images")
    parser.add_argument("--whole_image", action="store_true", help="classify each image whole (datasets of face crops) instead of through predict()")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (logs, CI)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    models = ([args.model] if args.model else []) + list(args.compare)
    if not models:
        parser.error("pass --model MODEL (and optionally --compare MODEL2 ...)")
    try:
        records, description = load_records(args.data, split=args.split, limit=args.limit)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    output = Path(args.output)
    results, taken = {}, set()
    for model_id in models:
        detector = load_detector(model_id)
        metrics, predictions = evaluate_records(
            detector, records, perturbations=args.perturbations, batch_size=args.batch_size,
            progress=not args.no_progress, data_description=description, mode="whole_image" if args.whole_image else "predict",
            perturbation_sample=args.perturbation_sample,
        )
        folder = output if len(models) == 1 else output / _folder_name(detector.name, taken)
        write_outputs(folder, metrics, predictions)
        results[folder.name] = metrics
        print(
            f"{detector.name}: {metrics['n_images']} images ({metrics['n_skipped']} skipped), accuracy {_num(metrics['accuracy'])}, "
            f"balanced accuracy {_num(metrics['balanced_accuracy'])}, ROC AUC {_num(metrics['roc_auc'])}, "
            f"{_num(metrics['images_per_second'], 1)} images/s -> {folder}"
        )
    if len(models) > 1:
        write_comparison(output, results)
        print(f"comparison: {output / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
