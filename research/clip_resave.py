"""Can a linear CLIP head stop reading re-save noise without losing what it generalises from? The invariance penalty
(`research.invariance_penalty`) at several strengths, learnt from re-saved copies (JPEG 80-98 / WEBP 80-95:
`research.app_faces` "resaved-1"), processed copies ("augmented-1") or both, measured on the cached int8
(SmoothQuant 0.75) layer-5 (DEPTH=4: layer-4) mean tokens of the faces framed at 1.75x the detector box (`clip-sq-d5-224-x1.75`'s).

For each row, on rows the head never saw:
- `folds`: grouped 5-fold over the train rows (no person in two folds; the penalty learnt on the four training
  folds): `clean_auc`, `processed_auc` (the fold's processed copies), and the fold's re-saved copies'
  `resave_mean_dp` / `resave_p99_dp` (mean and 99th percentile of |change of P(fake)|, the probe's own probability)
  and `resave_flips` (verdicts at 0.5 that change);
- `test`: the head fitted on all train rows, on the test split's clean faces and their own re-saved copies
  ("resaved-1" of the test split): `auc`, `resave_mean_dp`, `resave_p99_dp`, `resave_max_dp`, `resave_flips`;
- `loso`: each held-out source as `research.depth_probe.probe_holdout` scores it (clean; penalty learnt without it).

    python -m research.clip_resave resaved:0 resaved:10 resaved:100 both:100
    DEPTH=4 python -m research.clip_resave resaved:0 resaved:100   # 4 layers: faster
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from research.depth_probe import probe_holdout
from research.generalization import held_out_auc, parse_holdout
from research.invariance_penalty import fit_penalised_probe
from training.data import load_built_dataset

DEPTH = int(os.environ.get("DEPTH", "5"))  # the tower cut after DEPTH layers: the cache holds layers 1-5
LAYER = DEPTH - 1
FEATURES = Path("data/app-faces-v2/clip-features")
STEM = "{split}.app-x1.75-{view}.vit_base_patch16_clip_quickgelu_224.224px.dynamic-int8-sq0.75.npy"
HOLDOUTS = ["sd21", "ffhq", "tpdne", "attgan", "stargan", "highres"]
CHANGES = {"resaved": ["resaved-1"], "processed": ["augmented-1"], "both": ["resaved-1", "augmented-1"]}
OUTPUT = Path(__file__).resolve().parents[1] / "reports/generalization/clip-resave/resave.json"


def load(split: str, view: str = "clean") -> np.ndarray:
    return np.ascontiguousarray(np.load(FEATURES / STEM.format(split=split, view=view), mmap_mode="r")[:, LAYER])


def probability(probe, features: np.ndarray) -> np.ndarray:
    return probe.predict_proba(features)[:, 1]


def resave_numbers(probe, clean: np.ndarray, resaved: np.ndarray) -> dict:
    before, after = probability(probe, clean), probability(probe, resaved)
    change = np.abs(after - before)
    return {"resave_mean_dp": round(float(change.mean()), 4), "resave_p99_dp": round(float(np.quantile(change, 0.99)), 4),
            "resave_max_dp": round(float(change.max()), 4), "resave_flips": round(float(np.mean((before >= 0.5) != (after >= 0.5))), 4)}


def main() -> None:
    dataset = load_built_dataset("data/faces-dataset-v2")
    clean = {split: load(split) for split in ("train", "validation", "test")}
    copies = {view: load("train", view) for view in ("resaved-1", "augmented-1")}
    test_resaved = load("test", "resaved-1")
    labels, groups = np.asarray(dataset["train"]["label"]), np.asarray(dataset["train"]["group"])
    test_labels = np.asarray(dataset["test"]["label"])
    everything = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    results = everything.setdefault(f"depth {DEPTH}", {})
    for key in sys.argv[1:]:
        change, strength = key.split(":")
        if key in results:
            continue
        changed = [copies[view] for view in CHANGES[change]]

        def fit(views, fit_labels, strength=float(strength)):
            return fit_penalised_probe(views[0], views[1:], fit_labels, strength)

        folds = []
        for train_rows, held in GroupKFold(5).split(clean["train"], labels, groups):
            probe = fit([clean["train"][train_rows], *[view[train_rows] for view in changed]], labels[train_rows])
            folds.append({"clean_auc": roc_auc_score(labels[held], probe.decision_function(clean["train"][held])),
                          "processed_auc": roc_auc_score(labels[held], probe.decision_function(copies["augmented-1"][held])),
                          **resave_numbers(probe, clean["train"][held], copies["resaved-1"][held])})
        probe = fit([clean["train"], *changed], labels)
        test = {"auc": round(float(roc_auc_score(test_labels, probe.decision_function(clean["test"]))), 4),
                **resave_numbers(probe, clean["test"], test_resaved)}
        loso = {h: round(float(held_out_auc(probe_holdout(clean, dataset, *parse_holdout(h), extra_train=changed, fit=fit))), 3) for h in HOLDOUTS}
        results[key] = {"folds": {name: round(float(np.mean([f[name] for f in folds])), 4) for name in folds[0]},
                        "test": test, "loso": loso, "top_eigenvalues": [round(float(v), 2) for v in probe.spectrum[:5]]}
        print(f"depth {DEPTH}", key, results[key], flush=True)
        OUTPUT.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
