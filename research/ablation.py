"""One ablation table for every candidate model: in-distribution test, diffusion faces, everyday photos, processing.

    python -m research.ablation --output reports/ablation \
        --candidate bundled models/deepfake-detector-effnet-lite0 runs/eval/bundled \
        --candidate ft-sd21x3 runs/ft-lite0-v2-sd21x3-freeze2 runs/eval/ft-sd21x3

Each candidate is NAME MODEL_FOLDER EVAL_FOLDER. EVAL_FOLDER holds `training.evaluate` outputs (metrics.json +
predictions.csv), one sub-folder per evaluation; those that exist are read, the others are reported as not measured:

- `test/`: the built dataset's test split through `predict()` (optionally with `--perturbations icip`),
- `perturbations/`: the same split (or a seeded sample of it) with `--perturbations icip`,
- `photos-test/`, `photos-validation/`, `photos-all/`: whole `photo_*` photos (image folders), each photo's verdict
  decided by `predict()` from its faces (`predict.photo_verdict`), as a visitor gets it,
- `loso/generalization.json`: `research.generalization` for the candidate's recipe (each held-out source's AUC),
- `benchmark.json`: `training.benchmark` for the model (ms per face, classification only and through `predict()`).

Writes OUTPUT/README.md (the table, recipes and what was not measured) and OUTPUT/ablation.json (every number).
Nothing here is typed by hand: each cell comes from those files, each recipe from the model's training_config.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from deepfake_detector.faces import FACE_CROP_SCALE
from research.generalization import held_out_auc
from training.evaluate import CLEAN, worst_perturbation  # CLEAN: the perturbation name of unprocessed images

PHOTO_SETS = ("photos-test", "photos-validation", "photos-all")
LOSO_SOURCES = ("stargan", "attgan", "tpdne", "sd21", "ffhq", ">=512 px")


def _read(folder: Path) -> tuple[dict, pd.DataFrame] | None:
    if not (folder / "metrics.json").is_file():
        return None
    return json.loads((folder / "metrics.json").read_text()), pd.read_csv(folder / "predictions.csv")


def _auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """The ROC AUC of two score sets (scikit-learn's, ties counted half); None when either set is empty."""
    from sklearn.metrics import roc_auc_score

    if len(positives) == 0 or len(negatives) == 0:
        return None
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    return float(roc_auc_score(labels, np.r_[positives, negatives]))


def _share(frame: pd.DataFrame, verdict: str) -> dict:
    return {"n": int(len(frame)), "count": int((frame["verdict"] == verdict).sum()), "share": float((frame["verdict"] == verdict).mean()) if len(frame) else None}


def test_numbers(metrics: dict, predictions: pd.DataFrame) -> dict:
    """In-distribution metrics plus the diffusion and everyday-photo rows of one test-split evaluation."""
    clean = predictions[predictions["perturbation"] == CLEAN]
    reals = clean[clean["label"] == "real"]
    sd21 = clean[clean["source"] == "sd21"]
    photo_faces = clean[clean["source"].str.startswith("photo_")]
    non_photo_reals = reals[~reals["source"].str.startswith("photo_")]
    return {
        "data": metrics.get("data", ""),
        "n_images": metrics["n_images"],
        "balanced_accuracy": metrics.get("balanced_accuracy"),
        "f1_real": (metrics.get("per_class") or {}).get("real", {}).get("f1", metrics.get("f1_real")),
        "roc_auc": metrics.get("roc_auc"),
        "sd21_caught": _share(sd21, "Fake"),
        "sd21_called_real": _share(sd21, "Real"),
        "sd21_auc_vs_test_reals": _auc(sd21["fake_probability"].to_numpy(), non_photo_reals["fake_probability"].to_numpy()),
        "photo_faces_called_fake": _share(photo_faces, "Fake"),
        # the same split without sd21, so a gain on diffusion faces does not hide a loss on the rest
        "roc_auc_without_sd21": _auc(
            clean[(clean["label"] == "fake") & (clean["source"] != "sd21")]["fake_probability"].to_numpy(), reals["fake_probability"].to_numpy()
        ),
        "verdicts_real": {verdict: _share(reals, verdict) for verdict in ("Real", "Uncertain", "Fake")},
        "verdicts_fake": {verdict: _share(clean[clean["label"] == "fake"], verdict) for verdict in ("Fake", "Uncertain", "Real")},
        "per_source_accuracy": {source: values["accuracy"] for source, values in metrics.get("per_source", {}).items()},
        "threshold": metrics.get("threshold"),
        "uncertain_band": metrics.get("uncertain_band"),
    }


def photo_numbers(predictions: pd.DataFrame) -> dict:
    clean = predictions[predictions["perturbation"] == CLEAN]
    return {"called_fake": _share(clean, "Fake"), "called_uncertain": _share(clean, "Uncertain"), "files": sorted(clean["path"].tolist())}


def recipe(model_folder: Path) -> dict:
    path = model_folder / "training_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _crop_scale_words(config: dict) -> str:
    """", square of 1.75x the box" for a head fitted on faces framed wider or tighter than the app's default."""
    scale = config.get("crop_scale", FACE_CROP_SCALE)
    return "" if scale == FACE_CROP_SCALE else f", square of {scale:g}x the box"


def recipe_line(config: dict) -> str:
    if not config:
        return "no training_config.json"
    if config.get("recipe") == "clip_probe":
        views = config.get("augmented_views", 0)
        processed = (f"{views} randomly processed cop{'y' if views == 1 else 'ies'}"
                     + (f" teaching {config['processing_directions']} processing directions to ignore" if config.get("processing_directions") else "")
                     + (f" + {config.get('resaved_views', 0)} re-saved, as an invariance penalty of {config['invariance_penalty']:g}" if config.get("invariance_penalty") else ""))
        faces = (f"framed by the app's face detection{_crop_scale_words(config)}, + {processed}"
                 if config.get("framing") == "app" else "centred squares, no augmentation")  # folders before stop 11: squares
        quantize = config.get("quantize", "none")
        return (
            f"frozen `{config['model']}` from `{config['clip_weights']}`, first {config['depth']} layers at {config['input_size']} px"
            f"{'' if quantize == 'none' else f' ({quantize})'}, linear head on the {config['features']} ({config['head']}), "
            f"data `{config['dataset']}` ({config['train_images']} train faces, {faces})"
        )
    parts = [f"`{config.get('model')}`", f"data `{config.get('dataset')}`", f"preset {config.get('preset')}"]
    finetune = config.get("finetune")
    if finetune:
        boosts = ", ".join(f"{k} x{v:g}" for k, v in finetune.get("source_boost", {}).items()) or "none"
        parts.insert(0, f"fine-tuned from `{finetune['init_from']}`, stem + {finetune['freeze_blocks']} blocks frozen, boost {boosts}")
    else:
        parts.insert(0, f"from `{config.get('pretrained_file') or ('timm Hub weights' if config.get('pretrained') else 'scratch')}`")
    draws = config.get("epochs", 0) * (config.get("samples_per_epoch") or 0)
    parts.append(f"{config.get('epochs')} x {config.get('samples_per_epoch')} = {draws} draws, batch {config.get('batch_size')}, lr {config.get('learning_rate')}")
    return ", ".join(parts)


def collect(name: str, model_folder: Path, eval_folder: Path) -> dict:
    row = {"name": name, "model_folder": str(model_folder), "eval_folder": str(eval_folder), "recipe": recipe(model_folder)}
    test = _read(eval_folder / "test")
    row["test"] = test_numbers(*test) if test else None
    perturbed = _read(eval_folder / "perturbations") or (test if test and "per_perturbation" in test[0] else None)
    row["perturbations"] = (
        {"n_images": (perturbed[0].get("perturbation_sample") or perturbed[0])["n_images"], **{k: v["balanced_accuracy"] for k, v in perturbed[0]["per_perturbation"].items()}}
        if perturbed and "per_perturbation" in perturbed[0]
        else None
    )
    row["worst_perturbation"] = worst_perturbation(perturbed[0]) if perturbed else None
    for photo_set in PHOTO_SETS:
        measured = _read(eval_folder / photo_set)
        row[photo_set] = photo_numbers(measured[1]) if measured else None
    loso = eval_folder / "loso" / "generalization.json"
    row["loso"] = {r["holdout"]: held_out_auc(r) for r in json.loads(loso.read_text())} if loso.is_file() else None
    speed = eval_folder / "benchmark.json"
    row["speed"] = json.loads(speed.read_text()) if speed.is_file() else None
    history = row["recipe"] and _history(model_folder)
    row["training"] = history
    return row


def _history(model_folder: Path) -> dict | None:
    metrics = model_folder / "metrics.json"
    if not metrics.is_file():
        return None
    training = json.loads(metrics.read_text()).get("training") or {}
    history = training.get("history") or []
    return {"history": history, "best_epoch": training.get("best_epoch")}


def _num(value, digits: int = 3) -> str:
    return "n/m" if value is None else f"{value:.{digits}f}"


def _count(share: dict | None) -> str:
    if not share or not share.get("n"):
        return "n/m"
    return f"{share['count']}/{share['n']} ({100 * share['share']:.0f}%)"


def _shares(verdicts: dict | None) -> str:
    if not verdicts:
        return "n/m"
    return " / ".join(f"{100 * v['share']:.0f}%" if v.get("n") else "n/m" for v in verdicts.values())


def render(rows: list[dict], notes: str = "") -> str:
    lines = [
        "# Ablation: candidates for the default model (issue 11)",
        "",
        "Generated by `python -m research.ablation` from `training.evaluate` outputs; `n/m` = not measured (see below).",
        "Every image goes through `predict()` (the app's path); verdicts at each model's own threshold and Uncertain band.",
        "Test data per candidate: "
        + "; ".join(f"{row['name']}: {(row['test'] or {}).get('data', 'n/m')} ({(row['test'] or {}).get('n_images', 0)} images)" for row in rows)
        + ".",
        "",
        "| candidate | balanced acc. | real F1 | ROC AUC | ROC AUC without sd21 | reals: Real / Uncertain / Fake | fakes: Fake / Uncertain / Real | sd21 caught (Fake) | sd21 called Real | sd21 AUC vs test reals | photo faces called Fake (test) | whole photos called Fake: test / validation / all 34 | worst ICIAP processing (bal. acc.) | LOSO held-out AUC | ms per face (classify / predict) |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for row in rows:
        test = row["test"] or {}
        perturbations = row["perturbations"]
        worst = row["worst_perturbation"]
        photos = " / ".join(_count((row[s] or {}).get("called_fake")) for s in PHOTO_SETS)
        worst_cell = f"{worst[1]:.3f} ({worst[0]}, n={perturbations['n_images']})" if worst else "n/m"
        loso_cell = ", ".join(f"{name} {_num(auc, 2)}" for name, auc in row["loso"].items()) if row.get("loso") else "n/m"
        speed = row.get("speed") or {}
        speed_cell = f"{_num(speed.get('classify_one_face_ms'), 1)} / {_num(speed.get('predict_ms'), 1)}" if speed else "n/m"
        lines.append(
            f"| {row['name']} | {_num(test.get('balanced_accuracy'))} | {_num(test.get('f1_real'))} | {_num(test.get('roc_auc'))} | "
            f"{_num(test.get('roc_auc_without_sd21'))} | {_shares(test.get('verdicts_real'))} | {_shares(test.get('verdicts_fake'))} | "
            f"{_count(test.get('sd21_caught'))} | {_count(test.get('sd21_called_real'))} | {_num(test.get('sd21_auc_vs_test_reals'))} | "
            f"{_count(test.get('photo_faces_called_fake'))} | {photos} | "
            f"{worst_cell} | {loso_cell} | {speed_cell} |"
        )
    lines += ["", "## Per source (test, accuracy at the threshold)", ""]
    sources = sorted({s for row in rows for s in ((row["test"] or {}).get("per_source_accuracy") or {})})
    lines.append("| source | " + " | ".join(row["name"] for row in rows) + " |")
    lines.append("|---|" + "---:|" * len(rows))
    for source in sources:
        lines.append(f"| {source} | " + " | ".join(_num(((row["test"] or {}).get("per_source_accuracy") or {}).get(source)) for row in rows) + " |")
    if any(row["perturbations"] for row in rows):
        names = sorted({k for row in rows if row["perturbations"] for k in row["perturbations"] if k != "n_images"})
        lines += ["", "## ICIAP processing (balanced accuracy)", "", "| processing | " + " | ".join(row["name"] for row in rows) + " |", "|---|" + "---:|" * len(rows)]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_num((row["perturbations"] or {}).get(name)) for row in rows) + " |")
    lines += ["", "## Recipes (from each model folder's training_config.json)", ""]
    for row in rows:
        lines.append(f"- **{row['name']}** (`{row['model_folder']}`): {recipe_line(row['recipe'])}.")
        if row.get("training") and row["training"].get("history"):
            for epoch in row["training"]["history"]:
                lines.append(
                    f"  - epoch {epoch['epoch']}: validation balanced accuracy {_num(epoch.get('balanced_accuracy'))}, AUC "
                    f"{_num(epoch.get('roc_auc'))}, {_num(epoch.get('train_images_per_second'), 1)} train images/s"
                )
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", nargs=3, action="append", required=True, metavar=("NAME", "MODEL_FOLDER", "EVAL_FOLDER"))
    parser.add_argument("--output", "--output_dir", required=True)
    parser.add_argument("--notes", help="a markdown file appended to the README (what was not measured and why)")
    args = parser.parse_args(argv)
    rows = []
    for name, model_folder, eval_folder in args.candidate:
        if not Path(model_folder).is_dir():
            raise ValueError(f"--candidate {name}: no model folder at {model_folder}")
        rows.append(collect(name, Path(model_folder), Path(eval_folder)))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    notes = Path(args.notes).read_text() if args.notes else ""
    (output / "ablation.json").write_text(json.dumps(rows, indent=2) + "\n")
    (output / "README.md").write_text(render(rows, notes))
    print(render(rows, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
