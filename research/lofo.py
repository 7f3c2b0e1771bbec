"""Leave-one-family-out screen (issue 22): linear heads on cached frozen-CLIP features, each generator family held
out in turn together with a disjoint set of everyday-photo collections.

    python -m research.lofo --dataset data/faces-dataset-v3 --features_dir data/app-faces-v3/clip-features \
        --depths 4 5 6 8 10 12 --cnn_margins data/app-faces-v3/r1-flip-margins --output reports/lofo

For every candidate (a depth, a head setting) and every family F of `training.sources.FAMILIES`:

- held out: every row of F (all splits) and every row of the photo collections dealt to F's fold
  (`photo_folds`: the `photo_*` sources dealt greedily by size, so each collection is held out exactly once);
- the head is fitted on the train split of the rest, and calibrated on its validation split as a shipped model is
  (`training.calibration.calibrate`: Platt, threshold 0.5, the narrowest Uncertain band calling at most 5% of the
  validation reals Fake);
- reported: ROC AUC of F's faces against the fold's photos, the share of F's faces caught as Fake and called Real,
  and the share of the fold's photos called Fake, at that operating point.

Features are `research.clip_probe`'s per-layer caches (mean patch token after each layer of the int8 tower the app
runs), read through the same file names; `--cnn_margins` adds the shipped CNN's logit margin as one more feature
(fusion): that CNN was trained on the GANs and SD 2.1, so its folds for those two are not held out (marked).

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from research.depth_probe import SPLITS, family_weights, fit_probe
from training.calibration import calibrate
from training.sources import FAMILIES

DIFFUSION = [name for name, _ in FAMILIES if name != "gan"]
# A head's knobs: L2 strength and how rows are weighted (classes balanced; or every fake family and the photos as much
# as the big GAN / portrait sources).
HEADS = {
    "C0.1": {"C": 0.1, "weights": "classes"},
    "C0.1-families": {"C": 0.1, "weights": "families"},
    "C0.01-families": {"C": 0.01, "weights": "families"},
    "C1-families": {"C": 1.0, "weights": "families"},
}


def load_table(dataset_path: str):
    """Columns of every split, concatenated: split, label, source, family."""
    from training.data import load_built_dataset

    dataset = load_built_dataset(dataset_path)
    table = {"split": [], "label": [], "source": [], "family": []}
    for split in SPLITS:
        data = dataset[split]
        table["split"] += [split] * len(data)
        table["label"] += list(data["label"])
        table["source"] += list(data["source"])
        table["family"] += list(data["family"])
    return dataset, {key: np.asarray(value) for key, value in table.items()}


def load_features(features_dir: Path, stem: str, depth: int) -> np.ndarray:
    """The cached mean tokens of layer `depth` for every split, concatenated in SPLITS order."""
    return np.concatenate([np.load(features_dir / f"{split}.{stem}.npy", mmap_mode="r")[:, depth - 1] for split in SPLITS]).astype(np.float32)


def photo_folds(table: dict, families: list[str]) -> dict[str, list[str]]:
    """family -> the photo collections held out with it: `photo_*` sources by rows, largest first, each to the fold
    with the fewest photo rows so far (ties: the first family)."""
    sources, counts = np.unique(table["source"][np.char.startswith(table["source"].astype(str), "photo_")], return_counts=True)
    folds = {family: [] for family in families}
    rows = dict.fromkeys(families, 0)
    for source, count in sorted(zip(sources, counts), key=lambda item: (-item[1], item[0])):
        target = min(families, key=lambda family: (rows[family], families.index(family)))
        folds[target].append(str(source))
        rows[target] += int(count)
    return folds


def fit_head(features: np.ndarray, table: dict, rows: np.ndarray, head: dict):
    """The shipped recipe's head (`research.depth_probe.fit_probe`) on `rows`, weighted as `head` says."""
    labels = table["label"][rows]
    weights = family_weights(labels, table["family"][rows], table["source"][rows]) if head["weights"] == "families" else None
    return fit_probe(features[rows], labels, sample_weight=weights, C=head["C"])


def auc(fake: np.ndarray, real: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if not len(fake) or not len(real):
        return None
    return float(roc_auc_score(np.r_[np.zeros(len(real)), np.ones(len(fake))], np.r_[real, fake]))


def run_fold(features: np.ndarray, table: dict, family: str, photos: list[str], head: dict) -> dict:
    held = (table["family"] == family) | np.isin(table["source"], photos)
    train, calibration = np.flatnonzero(~held & (table["split"] == "train")), np.flatnonzero(~held & (table["split"] == "validation"))
    probe = fit_head(features, table, train, head)
    block = calibrate(probe.decision_function(features[calibration]), table["label"][calibration], method="platt")
    threshold, band = block["threshold"], block["uncertain_band"]

    def probability(rows):
        from deepfake_detector.model import sigmoid

        return sigmoid(block["slope"] * probe.decision_function(features[rows]) + block["intercept"]) if len(rows) else np.zeros(0)

    fold = fold_numbers(probability(np.flatnonzero(table["family"] == family)), probability(np.flatnonzero(np.isin(table["source"], photos))),
                        threshold, band, family, photos)
    fakes, photo_p = fold.pop("_fakes"), fold.pop("_photos")
    return fold | {"fake_probabilities": [round(float(p), 4) for p in fakes], "photo_probabilities": [round(float(p), 4) for p in photo_p]}


def shipped_fold(margins: np.ndarray, table: dict, family: str, photos: list[str], config: dict) -> dict:
    """`run_fold`'s numbers for a shipped model's margins at its own calibration and operating point (no refit)."""
    from deepfake_detector.model import calibrated_fake_probability

    probability = calibrated_fake_probability(np.stack([np.zeros_like(margins), margins], axis=1), config.get("calibration"), config.get("temperature", 1.0))
    threshold, band = float(config.get("threshold", 0.5)), float(config.get("uncertain_band", 0.1))
    fold = fold_numbers(probability[table["family"] == family], probability[np.isin(table["source"], photos)], threshold, band, family, photos)
    del fold["_fakes"], fold["_photos"]
    return fold


def fold_numbers(fakes: np.ndarray, photo_p: np.ndarray, threshold: float, band: float, family: str, photos: list[str]) -> dict:
    """One fold's row from the held-out fakes' and photos' displayed probabilities at an operating point."""
    return {
        "family": family, "fakes": int(len(fakes)), "photo_collections": photos, "photos": int(len(photo_p)),
        "auc_vs_fold_photos": auc(fakes, photo_p),
        "caught_as_fake": float((fakes >= threshold + band).mean()) if len(fakes) else None,
        "called_real": float((fakes < threshold - band).mean()) if len(fakes) else None,
        "photos_called_fake": float((photo_p >= threshold + band).mean()) if len(photo_p) else None,
        "photos_called_fake_n": int((photo_p >= threshold + band).sum()),
        "uncertain_band": band, "_fakes": fakes, "_photos": photo_p,
    }


def summarize(folds: list[dict]) -> dict:
    diffusion = [fold for fold in folds if fold["family"] in DIFFUSION and fold["auc_vs_fold_photos"] is not None]
    photos = sum(fold["photos"] for fold in folds)
    return {
        "worst_diffusion_auc": min(fold["auc_vs_fold_photos"] for fold in diffusion),
        "worst_diffusion_family": min(diffusion, key=lambda fold: fold["auc_vs_fold_photos"])["family"],
        "mean_diffusion_auc": float(np.mean([fold["auc_vs_fold_photos"] for fold in diffusion])),
        "held_out_photos_called_fake": sum(fold["photos_called_fake_n"] for fold in folds) / max(photos, 1),
        "held_out_photos": photos,
        "per_family": {fold["family"]: {k: fold[k] for k in ("auc_vs_fold_photos", "caught_as_fake", "called_real", "photos_called_fake", "fakes", "photos")} for fold in folds},
    }


def candidates_table(entries: list[tuple[str, dict]]) -> str:
    """One row per (name, candidate summary), in the given order: worst and mean held-out diffusion AUC, held-out
    photos called Fake, then each family's AUC / caught as Fake / called Real."""
    lines = ["| candidate | worst diffusion AUC | mean diffusion AUC | held-out photos called Fake | " + " | ".join(f"{f} AUC / caught / Real" for f, _ in FAMILIES) + " |",
             "|---|---:|---:|---:|" + "---:|" * len(FAMILIES)]
    for name, summary in entries:
        cells = []
        for family, _ in FAMILIES:
            row = summary["per_family"].get(family)
            cells.append("-" if not row or row["auc_vs_fold_photos"] is None else f"{row['auc_vs_fold_photos']:.2f} / {row['caught_as_fake']:.0%} / {row['called_real']:.0%}")
        lines.append(f"| {name} | {summary['worst_diffusion_auc']:.3f} ({summary['worst_diffusion_family']}) | {summary['mean_diffusion_auc']:.3f} | "
                     f"{summary['held_out_photos_called_fake']:.1%} of {summary['held_out_photos']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(results: dict, photo_fold_map: dict) -> str:
    lines = ["# Leave-one-family-out screen (issue 22)", "",
             "Each generator family held out whole, with a disjoint set of everyday-photo collections; head fitted on the",
             "train split of the rest, calibrated on its validation split (threshold 0.5, band for <= 5% validation reals",
             "called Fake). AUC: held-out family's faces against the fold's held-out photos. Research only (`research/lofo.py`).", "",
             candidates_table(sorted(results.items(), key=lambda item: -item[1]["worst_diffusion_auc"]))]
    lines += ["", "Photo collections held out with each family:", ""]
    lines += [f"- {family}: {', '.join(photos) or '(none)'}" for family, photos in photo_fold_map.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--features_dir", required=True)
    parser.add_argument("--stem", default="app-clean.vit_base_patch16_clip_quickgelu_224.224px.dynamic-int8-sq0.75")
    parser.add_argument("--depths", type=int, nargs="+", default=[5, 8, 12])
    parser.add_argument("--heads", nargs="+", default=list(HEADS), choices=list(HEADS))
    parser.add_argument("--cnn_margins", help="folder of <split>.npy margins of the shipped CNN (research.cnn_margins): adds it as "
                        "shipped and fused candidates")
    parser.add_argument("--cnn_model", default="models/deepfake-detector-effnet-lite0", help="the CNN's folder (its calibration and band)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    _, table = load_table(args.dataset)
    families = [name for name, _ in FAMILIES if (table["family"] == name).any()]
    folds_of = photo_folds(table, families)
    cnn = np.concatenate([np.load(Path(args.cnn_margins) / f"{split}.npy") for split in SPLITS])[:, None] if args.cnn_margins else None
    results, details = {}, {}
    if cnn is not None:  # the CNN as shipped: its own calibration and band, nothing refitted
        config = json.loads((Path(args.cnn_model) / "config.json").read_text())
        folds = [shipped_fold(cnn[:, 0], table, family, folds_of[family], config) for family in families]
        results["r1-flip as shipped (trained on gan, sd21: those folds are not held out)"], details["r1-flip"] = summarize(folds), folds
    for depth in args.depths:
        features = load_features(Path(args.features_dir), args.stem, depth)
        for head in args.heads:
            for fused in ([False, True] if cnn is not None else [False]):
                name = f"clip-d{depth}-{head}" + ("+cnn" if fused else "")
                x = np.hstack([features, cnn]) if fused else features
                folds = [run_fold(x, table, family, folds_of[family], HEADS[head]) for family in families]
                results[name], details[name] = summarize(folds), folds
                print(f"{name}: worst diffusion AUC {results[name]['worst_diffusion_auc']:.3f} ({results[name]['worst_diffusion_family']}), "
                      f"photos called Fake {results[name]['held_out_photos_called_fake']:.1%}", flush=True)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "lofo.json").write_text(json.dumps({"photo_folds": folds_of, "candidates": results}, indent=2))
    (output / "lofo-folds.json").write_text(json.dumps(details))
    (output / "README.md").write_text(render(results, folds_of))
    print(render(results, folds_of))
    return 0


if __name__ == "__main__":
    sys.exit(main())
