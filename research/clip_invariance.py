"""Can a linear CLIP head be made processing-robust without training on processed rows? The processing directions
projected out (`research.processing_directions`), measured on the cached int8 (SmoothQuant 0.75) layer-4 mean tokens
of the app-framed faces.

For k directions, two numbers on rows the head never saw:
- `processed_auc`: grouped 5-fold over the train rows (no person in two folds): fit on four folds (the directions
  learnt there too), score the fifth fold's *processed* copies (one random mirror + one of rotation, blur, rescale,
  crop, JPEG 25-95: `research.app_faces` "augmented-1"; the ICIAP column's question, in distribution); `clean_auc`
  the same fold's clean rows;
- `loso`: each held-out source as `research.depth_probe.probe_holdout` scores it (clean; directions learnt without it).
Row "+ processed rows" is the processed copies as extra rows instead (stop 11's `--augmented_views 1`).

    FRAMING=app python -m research.clip_invariance 0 4 16 64     # 1.45x square
    FRAMING=app-x1.75 python -m research.clip_invariance 0 2 4 8
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from research.depth_probe import fit_probe, probe_holdout
from research.generalization import held_out_auc, parse_holdout
from research.processing_directions import fit_projected_probe
from training.data import load_built_dataset

LAYER = 4  # layer 5's mean token: index 4 (depth 5)
FRAMING = os.environ.get("FRAMING", "app")
FEATURES = Path("data/app-faces-v2/clip-features")
STEM = "{split}.{framing}-{view}.vit_base_patch16_clip_quickgelu_224.224px.dynamic-int8-sq0.75.npy"
HOLDOUTS = ["sd21", "ffhq", "tpdne", "attgan", "stargan", "highres"]
KS = [int(k) for k in sys.argv[1:]] or [0, 4, 16, 64]
OUTPUT = Path(__file__).resolve().parents[1] / "reports/generalization/clip-invariance/invariance.json"


def load(split: str, view: str = "clean") -> np.ndarray:
    return np.ascontiguousarray(np.load(FEATURES / STEM.format(split=split, framing=FRAMING, view=view), mmap_mode="r")[:, LAYER])


def fitter(k):
    """fit(views, labels) for probe_holdout: k processing directions, or the processed copies as extra rows."""
    if k == "processed rows":
        return lambda views, labels: fit_probe(np.concatenate(views), np.tile(labels, len(views)))
    return lambda views, labels: fit_projected_probe(views[0], views[1:], labels, k)


def main() -> None:
    dataset = load_built_dataset("data/faces-dataset-v2")
    clean = {split: load(split) for split in ("train", "validation", "test")}
    processed = load("train", "augmented-1")
    labels, groups = np.asarray(dataset["train"]["label"]), np.asarray(dataset["train"]["group"])
    everything = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    results = everything.setdefault(FRAMING, {})
    for k in [*KS, "processed rows"]:
        key = f"k={k}" if k != "processed rows" else "+ processed rows"
        if key in results:
            continue
        fit, fold_clean, fold_processed = fitter(k), [], []
        for train_rows, held in GroupKFold(5).split(clean["train"], labels, groups):
            probe = fit([clean["train"][train_rows], processed[train_rows]], labels[train_rows])
            fold_clean.append(roc_auc_score(labels[held], probe.decision_function(clean["train"][held])))
            fold_processed.append(roc_auc_score(labels[held], probe.decision_function(processed[held])))
        loso = {h: round(float(held_out_auc(probe_holdout(clean, dataset, *parse_holdout(h), extra_train=[processed], fit=fit))), 3) for h in HOLDOUTS}
        results[key] = {"clean_auc": round(float(np.mean(fold_clean)), 4), "processed_auc": round(float(np.mean(fold_processed)), 4), "loso": loso}
        print(FRAMING, key, results[key], flush=True)
        OUTPUT.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
