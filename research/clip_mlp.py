"""Is the robustness / hold-out trade of the linear CLIP heads a limit of the *linear* head? A small MLP on the same
frozen features (optionally several layers' mean tokens side by side), trained with or without the processed copies and
a paired consistency term, measured like `../clip-invariance/` and `../clip-resave/`.

Features: the cached int8 (SmoothQuant 0.75) mean patch tokens of the faces framed at 1.75x the detector box, 224 px
(`clip-sq-d5-224-x1.75`'s tower; layers 1-5 are cached). A row is `LAYERS/HIDDEN/PAIRS/LAMBDA`:
- LAYERS: "5" or e.g. "3+4+5" (their mean tokens concatenated, 768 each);
- HIDDEN: 0 for a linear head (trained here by the same loop, a check against the sklearn probe), else one hidden
  layer of that width (GELU, dropout 0.2);
- PAIRS: "none", or "processed" ("augmented-1": one random mirror + rotation / blur / rescale / crop / JPEG per face)
  whose copies are extra rows *and* tied to their clean face by LAMBDA * (logit(copy) - logit(clean))^2.
Every head: standardised inputs, class-balanced BCE, AdamW (lr 1e-3, weight decay 1e-2), 12 epochs of batches of 256,
seeded. Numbers: `folds` (grouped 5-fold over train: clean and processed ROC AUC), `test` (ROC AUC; the test faces
against their own re-saved copies: mean / p99 |change of P|), `loso` (each held-out source, `research.depth_probe.
probe_holdout`: the head trained without it).

    python -m research.clip_mlp 5/0/none/0 5/256/none/0 3+4+5/256/processed/1
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from research.depth_probe import probe_holdout
from research.generalization import held_out_auc, parse_holdout
from training.data import load_built_dataset

FEATURES = Path("data/app-faces-v2/clip-features")
STEM = "{split}.app-x1.75-{view}.vit_base_patch16_clip_quickgelu_224.224px.dynamic-int8-sq0.75.npy"
HOLDOUTS = ["sd21", "ffhq", "tpdne", "attgan", "stargan", "highres"]
OUTPUT = Path(__file__).resolve().parents[1] / "reports/generalization/clip-mlp/mlp.json"


def load(split: str, view: str, layers: list[int]) -> np.ndarray:
    values = np.load(FEATURES / STEM.format(split=split, view=view), mmap_mode="r")
    return np.ascontiguousarray(np.concatenate([values[:, layer - 1] for layer in layers], axis=1), dtype=np.float32)


class Head:
    """A trained head with sklearn's predict_proba / decision_function, for probe_holdout."""

    def __init__(self, mean, scale, net):
        self.mean, self.scale, self.net = mean, scale, net

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(((features - self.mean) / self.scale).astype(np.float32))).squeeze(1).numpy()

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.decision_function(features)))
        return np.stack([1 - p, p], axis=1)


def train_head(views: list[np.ndarray], labels: np.ndarray, hidden: int, strength: float, seed: int = 0) -> Head:
    """views[0]: clean rows; views[1:]: their changed copies (extra rows, tied to the clean logit by `strength`)."""
    torch.manual_seed(seed)
    clean = views[0]
    mean, scale = clean.mean(0), clean.std(0) + 1e-6
    x = [torch.from_numpy((view - mean) / scale) for view in views]
    y = torch.from_numpy(labels.astype(np.float32))
    dim = clean.shape[1]
    net = (torch.nn.Linear(dim, 1) if hidden == 0 else
           torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(0.2), torch.nn.Linear(hidden, 1)))
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    weights = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # class-balanced
    generator = torch.Generator().manual_seed(seed)
    for _ in range(12):
        for batch in torch.randperm(len(y), generator=generator).split(256):
            logits = [net(view[batch]).squeeze(1) for view in x]
            bce = sum(torch.nn.functional.binary_cross_entropy_with_logits(l, y[batch], weight=weights[batch]) for l in logits) / len(logits)
            tie = sum(((l - logits[0]) ** 2).mean() for l in logits[1:]) if len(logits) > 1 else 0.0
            loss = bce + strength * tie
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    return Head(mean, scale, net)


def main() -> None:
    torch.set_num_threads(2)
    dataset = load_built_dataset("data/faces-dataset-v2")
    labels, groups = np.asarray(dataset["train"]["label"]), np.asarray(dataset["train"]["group"])
    test_labels = np.asarray(dataset["test"]["label"])
    results = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    for key in sys.argv[1:]:
        if key in results:
            continue
        layer_text, hidden, pairs, strength = key.split("/")
        layers, hidden, strength = [int(v) for v in layer_text.split("+")], int(hidden), float(strength)
        clean = {split: load(split, "clean", layers) for split in ("train", "validation", "test")}
        processed = load("train", "augmented-1", layers)
        changed = [processed] if pairs == "processed" else []

        def fit(views, fit_labels):
            return train_head(views, fit_labels, hidden, strength)

        folds = []
        for train_rows, held in GroupKFold(5).split(clean["train"], labels, groups):
            head = fit([clean["train"][train_rows], *[view[train_rows] for view in changed]], labels[train_rows])
            folds.append((roc_auc_score(labels[held], head.decision_function(clean["train"][held])),
                          roc_auc_score(labels[held], head.decision_function(processed[held]))))
        head = fit([clean["train"], *changed], labels)
        before, after = head.predict_proba(clean["test"])[:, 1], head.predict_proba(load("test", "resaved-1", layers))[:, 1]
        change = np.abs(after - before)
        loso = {h: round(float(held_out_auc(probe_holdout(clean, dataset, *parse_holdout(h), extra_train=changed, fit=fit))), 3) for h in HOLDOUTS}
        results[key] = {"folds": {"clean_auc": round(float(np.mean([f[0] for f in folds])), 4), "processed_auc": round(float(np.mean([f[1] for f in folds])), 4)},
                        "test": {"auc": round(float(roc_auc_score(test_labels, head.decision_function(clean["test"]))), 4),
                                 "resave_mean_dp": round(float(change.mean()), 4), "resave_p99_dp": round(float(np.quantile(change, 0.99)), 4)},
                        "loso": loso}
        print(key, results[key], flush=True)
        OUTPUT.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
