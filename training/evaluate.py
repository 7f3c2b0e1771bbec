"""Evaluate a detector on whole face images: metrics.json, predictions.csv, report.md and plots.

    python -m training.evaluate --model models/deepfake-detector-effnet-lite0 --data data/built --split test --output runs/eval
    python -m training.evaluate --model MODEL --data ../shared/data/faces --output runs/eval --perturbations icip --limit 500
    python -m training.evaluate --model MODEL_A --compare MODEL_B MODEL_C --data DATA --output runs/compare

--data is a built dataset (folder or Hub id; --split picks the split) or an image folder with real/ and
fake/ subfolders, nested freely; the first folder under real/ or fake/ names the source. Images are
classified whole (dataset images are already face crops) through `classify_crops`, the code path the
app uses. Unreadable images are listed under `skipped` in metrics.json, not fatal. --perturbations icip
also classifies every image after each processing in `training.perturbations`. Metrics come from the
local `evaluate` module in training/metrics/binary_detection (loaded by path; the Hub is not needed).
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

import numpy as np
import pandas as pd

from deepfake_detector.images import ImageError, load_rgb_array
from deepfake_detector.model import Detector, load_detector
from deepfake_detector.predict import classify_crops
from training.data import LABEL_NAMES
from training.perturbations import perturbation_set

METRIC_MODULE = Path(__file__).resolve().parent / "metrics" / "binary_detection"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
PREDICTION_COLUMNS = ["path", "label", "source", "fake_probability", "predicted", "perturbation"]
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


class _DatasetRecords(Sequence):
    """A lazy, indexable view of a built dataset split as evaluation records (decodes nothing)."""

    def __init__(self, split, indices: Sequence[int] | None = None):
        self.split = split.select_columns(["image", "label", "source", "path"])
        self.indices = list(range(len(split))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return _DatasetRecords(self.split, self.indices[position])
        if isinstance(position, list):
            return _DatasetRecords(self.split, [self.indices[i] for i in position])
        row = self.split[int(self.indices[position])]
        image = row["image"] or {}
        record = {"path": row["path"] or image.get("path") or f"row-{self.indices[position]}", "label": row["label"], "source": row["source"]}
        if image.get("bytes") is not None:
            record["image_bytes"] = image["bytes"]
        else:
            record["file"] = image.get("path")
        return record


def records_from_dataset(dataset_split) -> Sequence[dict]:
    """Records (path, label, source, image_bytes) for a split from `training.data.load_built_dataset`."""
    missing = {"image", "label", "source", "path"} - set(dataset_split.column_names)
    if missing:
        raise ValueError(f"The dataset split lacks columns {sorted(missing)}; build it with training.build_dataset.")
    return _DatasetRecords(dataset_split)


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


def evaluate_records(
    detector: Detector,
    records: Iterable[dict],
    perturbations: str | None = None,
    batch_size: int = 32,
    progress: bool = True,
    *,
    data_description: str = "",
) -> tuple[dict, pd.DataFrame]:
    """Classify every record (clean, then once per perturbation of the named set) and compute the metrics.

    records: dicts with path, label (0/1 or "real"/"fake"), source and image_bytes or file.
    Returns (metrics for metrics.json, one prediction row per image and perturbation).
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    chosen = perturbation_set(perturbations)
    total = len(records) if hasattr(records, "__len__") else None
    rows, skipped, batch = [], [], []
    clean_seconds = 0.0
    started = time.perf_counter()

    def flush() -> None:
        nonlocal clean_seconds
        images = [image for _, image in batch]
        # One variant at a time: holding all of them for a batch of 1024-px images would take gigabytes.
        for name, perturb in [(CLEAN, None)] + [(p.name, p) for p in chosen]:
            arrays = images if perturb is None else [perturb(image) for image in images]
            tick = time.perf_counter()
            probabilities = classify_crops(arrays, detector, batch_size=batch_size)
            if name == CLEAN:
                clean_seconds += time.perf_counter() - tick
            for (record, _), probability in zip(batch, probabilities):
                rows.append((record["path"], record["label"], record["source"], float(probability), name))
        batch.clear()

    for record in tqdm(records, total=total, unit="img", desc=f"evaluate {detector.name}", disable=not progress):
        label = LABEL_NAMES[_label_index(record.get("label"))]
        tick = time.perf_counter()
        try:
            image = _decode(record)
        except ImageError as error:
            skipped.append({"path": str(record.get("path")), "reason": str(error)})
            continue
        finally:
            clean_seconds += time.perf_counter() - tick
        batch.append(({"path": str(record["path"]), "label": label, "source": str(record.get("source") or label)}, image))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    elapsed = time.perf_counter() - started
    if not rows:
        reasons = "; ".join(f"{item['path']}: {item['reason']}" for item in skipped[:3])
        raise ValueError(f"No image could be evaluated ({len(skipped)} skipped{': ' + reasons if reasons else ''}); check --data.")

    predictions = pd.DataFrame(rows, columns=["path", "label", "source", "fake_probability", "perturbation"])
    predictions["predicted"] = np.where(predictions["fake_probability"] >= detector.threshold, "fake", "real")
    predictions = predictions[PREDICTION_COLUMNS]
    clean = predictions[predictions["perturbation"] == CLEAN]
    metrics = {
        "model": detector.name,
        "model_folder": str(detector.folder),
        "data": data_description,
        "threshold": detector.threshold,
        "temperature": detector.temperature,
        "n_images": int(len(clean)),
        **_metrics_for(clean),
        "per_source": _per_source(clean),
        "skipped": skipped,
        "n_skipped": len(skipped),
        # Decode + clean classification only, so the number does not depend on the perturbation set.
        "images_per_second": float(len(clean) / clean_seconds) if clean_seconds > 0 else None,
        "elapsed_seconds": float(elapsed),
    }
    if chosen:
        metrics["perturbation_set"] = perturbations
        metrics["per_perturbation"] = {
            p.name: {**p.to_json(), **_metrics_for(predictions[predictions["perturbation"] == p.name])} for p in chosen
        }
    return metrics, predictions


def _metrics_for(frame: pd.DataFrame) -> dict:
    labels = (frame["label"] == "fake").astype(int).to_numpy()
    decided = (frame["predicted"] == "fake").astype(int).to_numpy()
    result = compute_metrics(labels, decided, frame["fake_probability"].to_numpy())
    result.pop("n", None)
    return result


def _per_source(frame: pd.DataFrame) -> dict:
    """Accuracy and counts per source; for a one-class source accuracy is that class's recall."""
    result = {}
    for source, group in frame.groupby("source", sort=True):
        correct = (group["label"] == group["predicted"]).to_numpy()
        result[str(source)] = {
            "count": int(len(group)),
            "n_real": int((group["label"] == "real").sum()),
            "n_fake": int((group["label"] == "fake").sum()),
            "accuracy": float(correct.mean()),
            "mean_fake_probability": float(group["fake_probability"].mean()),
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


def render_report(metrics: dict) -> str:
    """The markdown classification report: summary, per class, confusion, per source, per perturbation, skipped."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines = [
        f"# Evaluation of {metrics['model']}",
        "",
        f"Data: {metrics['data'] or 'n/a'}. Images: {metrics['n_images']} (skipped {metrics['n_skipped']}). "
        f"Threshold {metrics['threshold']:.3f}, temperature {metrics['temperature']:.3f}. "
        f"Balanced accuracy {_num(metrics['balanced_accuracy'])}, ROC AUC {_num(metrics['roc_auc'])}, "
        f"{_num(metrics['images_per_second'], 1)} images/s.",
        "",
        SUMMARY_HEADER,
        summary_row(metrics["model"], metrics),
        "",
        "## Per class",
        "",
        "| Class | Precision | Recall | F1 | Support |",
        "|---|---|---|---|---|",
    ]
    for name in LABEL_NAMES:
        row = metrics["per_class"][name]
        lines.append(f"| {name} | {_num(row['precision'])} | {_num(row['recall'])} | {_num(row['f1'])} | {row['support']} |")
    lines += ["", "## Confusion matrix", "", "| true \\ predicted | real | fake |", "|---|---|---|", f"| real | {tn} | {fp} |", f"| fake | {fn} | {tp} |"]
    lines += ["", "## Per source", "", "| Source | Images | Real | Fake | Accuracy | Mean P(fake) |", "|---|---|---|---|---|---|"]
    for source, row in metrics["per_source"].items():
        lines.append(f"| {source} | {row['count']} | {row['n_real']} | {row['n_fake']} | {_num(row['accuracy'])} | {_num(row['mean_fake_probability'])} |")
    if metrics.get("per_perturbation"):
        lines += [
            "",
            "## Per perturbation",
            "",
            "| Perturbation | Parameters | Accuracy | Balanced accuracy | ROC AUC | Recall (real/fake) | F1 (real/fake) |",
            "|---|---|---|---|---|---|---|",
            f"| none | clean images | {_num(metrics['accuracy'])} | {_num(metrics['balanced_accuracy'])} | {_num(metrics['roc_auc'])} | {_pair(metrics, 'recall')} | {_pair(metrics, 'f1')} |",
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
        worst = min(metrics.get("per_perturbation", {}).items(), key=lambda item: item[1]["balanced_accuracy"], default=None)
        worst_text = f"{worst[0]} {_num(worst[1]['balanced_accuracy'])}" if worst else "n/a"
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
            records = records[keep.tolist()] if isinstance(records, _DatasetRecords) else [records[int(i)] for i in keep]
            description += f", random sample of {limit} (seed {LIMIT_SEED})"
    return records, description


def _folder_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name.removeprefix("hf-hub:")).strip("._") or "model"
    candidate, number = base, 2
    while candidate in taken:
        candidate, number = f"{base}-{number}", number + 1
    taken.add(candidate)
    return candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hf-hub:ORG/NAME[@rev]")
    parser.add_argument("--data", required=True, help="built dataset folder / Hub id, or an image folder with real/ and fake/")
    parser.add_argument("--split", default="test", help="dataset split (ignored for an image folder)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--perturbations", default=None, choices=["icip", "none"], help="also evaluate under this processing set")
    parser.add_argument("--compare", nargs="+", default=[], metavar="MODEL", help="more models to evaluate on the same data")
    parser.add_argument("--limit", type=int, default=None, help="evaluate a seeded random sample of N images")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (logs, CI)")
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
            progress=not args.no_progress, data_description=description,
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
