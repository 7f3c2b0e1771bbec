"""When should a face be Uncertain rather than Real or Fake? (issue 22: abstain honestly; photos called Fake <= 3%).

    python -m research.abstain features --dataset data/faces-dataset-v3 --model models/deepfake-detector-clip-cnn-fused \
        --cache data/abstain
    python -m research.abstain screen --dataset data/faces-dataset-v3 --cache data/abstain --output reports/abstain

`features`: every row's first face as `predict()` frames it (`_locate`: detection, upright turn, the folder's crop
scale), run through the shipped fused folder exactly as the app runs it; kept per split: the CLIP tower's pooled
features (the linear head's input), the CNN member's margin, and the shipped P(fake) (a check that the pieces add up).

`screen`: the leave-one-family-out folds of `research.lofo` (each family held out with its photo collections; the
fused head refitted on the train split of the rest, C=0.01, families weighted; Platt on its validation split), then
operating rules compared on each fold's held-out fakes and photos:

- `symmetric`: today's band (the narrowest around 0.5 calling <= 5% of validation reals Fake);
- `photo-aware symmetric`: the band widened on both sides until <= 3% of the validation *photos* (everyday-photo
  collections, not portraits) are called Fake (one number in config.json, as today);
- `photo-aware`: the Fake cut raised until <= 3% of the validation *photos* (everyday-photo collections, not
  portraits) and <= 5% of all validation reals are called Fake; the Real cut as in `symmetric`;
- `asymmetric`: the Real cut of `photo-aware symmetric`, the Fake cut raised alone to `photo-aware`'s (capped at
  threshold + 0.495): what `training.calibration --max_photo_false_fake 0.03 --asymmetric` ships;
- `+ unlike training`: besides, a face whose features lie farther from the training faces (Mahalanobis distance in
  the top principal components of the train split's features, the limit the 95th percentile of the validation
  faces' distances) is never called Real;
- `+ strict real`: besides, the Real cut lowered until <= 1% of the validation fakes fall below it.

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SPLITS = ("train", "validation", "test")


def capped_rows(sources: list[str], cap: int | None, seed: int = 0) -> np.ndarray:
    """Row indices with at most `cap` rows of each source (a seeded draw, in row order); all rows without a cap."""
    sources = np.asarray(sources)
    if cap is None:
        return np.arange(len(sources))
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(sources == source))[:cap] for source in np.unique(sources)]
    return np.sort(np.concatenate(keep))


def row_faces(split, rows: np.ndarray, crop_scale: float) -> list[np.ndarray]:
    """The first face `predict()` would judge in each of the split's `rows` (the whole image where none is found)."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.predict import _locate

    faces = []
    for row in split.select(rows).select_columns(["image"]):
        image = load_rgb_array(row["image"]["bytes"])  # decoded as the evaluation decodes it (calibration.app_path_margins)
        faces.append(_locate(image, 1, crop_scale)[1][0])
    return faces


def fused_pieces(detector, crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(head inputs (n, d), member margins (n,), shipped P(fake) (n,)) of crops, run as `logits_of_crops` runs them."""
    import torch

    from deepfake_detector.model import fake_margin
    from deepfake_detector.preprocess import eval_tensor

    captured = []
    head = detector.net.get_classifier()
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach().float().numpy()))
    try:
        with torch.inference_mode():
            logits = detector.logits(torch.stack([eval_tensor(crop, detector.data_config) for crop in crops]))
    finally:
        hook.remove()
    margins = fake_margin(detector.member.logits_of_crops(crops), detector.member.fake_index)
    shift = detector.member_weight * margins / 2
    sign = np.where(np.arange(2) == detector.fake_index, 1.0, -1.0)
    fused = logits + shift[:, None] * sign[None, :]
    return np.concatenate(captured), margins, detector.probabilities_from_logits(fused.astype(np.float32))


def tower_at(detector, size: int):
    """(net, data_config): the folder's CLIP tower reading `size` px (position embeddings resampled as timm does when
    it loads weights at another size), the same weights otherwise."""
    import timm
    from timm.layers import resample_abs_pos_embed

    net = timm.create_model(detector.config["architecture"], **(detector.config["model_args"] | {"img_size": [size, size]}))
    state = detector.net.state_dict()
    grid = size // 16
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], (grid, grid), num_prefix_tokens=net.num_prefix_tokens)
    net.load_state_dict(state)
    return net.eval(), detector.data_config | {"input_size": (3, size, size)}


def pooled(net, data_config: dict, crops: list[np.ndarray]) -> np.ndarray:
    import torch

    from deepfake_detector.preprocess import eval_tensor

    with torch.inference_mode():
        batch = torch.stack([eval_tensor(crop, data_config) for crop in crops])
        return net.forward_head(net.forward_features(batch), pre_logits=True).float().numpy()


def depth_means(net, crops: list[np.ndarray]) -> np.ndarray:
    """(n, depth + 1, D): the mean patch token after every layer of `net` (`research.clip_probe.layer_means`: the
    feature a tower cut there with avg pool reads), then the normalised class token after the last (CLIP's final
    embedding before its projection)."""
    import torch

    from deepfake_detector.preprocess import eval_tensor
    from research.clip_probe import tower_data_config

    outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: outputs.append(out)) for block in net.blocks]
    try:
        with torch.inference_mode():
            batch = torch.stack([eval_tensor(crop, tower_data_config(net)) for crop in crops])
            net.forward_features(batch)
            means = [out[:, net.num_prefix_tokens :].mean(1) for out in outputs]
            return torch.stack([*means, net.norm(outputs[-1][:, 0])], dim=1).float().numpy()
    finally:
        for hook in hooks:
            hook.remove()


def extract(args) -> int:
    from tqdm import tqdm

    from deepfake_detector.model import load_detector
    from training.data import load_built_dataset

    detector = load_detector(args.model)
    if detector.member is None:
        raise SystemExit(f"{args.model} is not a fused folder (config.json has no 'fusion')")
    dataset = load_built_dataset(args.dataset)
    extra = {size: tower_at(detector, size) for size in args.also_sizes}
    deep = None
    if args.tower:  # the whole converted tower (research.convert_clip) at the first --also_sizes size: every depth's mean token
        from research.clip_probe import build_tower

        deep = build_tower(args.tower, 12, args.also_sizes[0] if args.also_sizes else 128, pool="token")  # its norm: ln_post
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    for name in args.splits:
        target = cache / f"{name}.npz"
        if target.exists():
            continue
        split = dataset[name]
        rows = capped_rows(split["source"], args.train_cap if name == "train" else None)
        features, margins, probabilities = [], [], []
        at_size = {size: [] for size in extra}
        at_depth = []
        for start in tqdm(range(0, len(rows), args.batch_size), desc=name, mininterval=30):
            crops = row_faces(split, rows[start : start + args.batch_size], detector.face_crop_scale)
            if args.sizes_only:  # the member's margins and the other sizes' features, not the folder's own tower
                from deepfake_detector.model import fake_margin

                m = fake_margin(detector.member.logits_of_crops(crops), detector.member.fake_index)
                f, p = np.zeros((len(crops), 0), np.float32), np.full(len(crops), np.nan, np.float32)
            else:
                f, m, p = fused_pieces(detector, crops)
            features.append(f), margins.append(m), probabilities.append(p)
            for size, (net, config) in extra.items():
                at_size[size].append(pooled(net, config, crops))
            if deep is not None:
                at_depth.append(depth_means(deep, crops))
        partial = cache / f"{name}.partial.npz"
        np.savez(partial, rows=rows, features=np.concatenate(features), margins=np.concatenate(margins), probabilities=np.concatenate(probabilities),
                 **{f"features_{size}": np.concatenate(values) for size, values in at_size.items()},
                 **({"depth_means": np.concatenate(at_depth).astype(np.float16)} if at_depth else {}))
        partial.replace(target)
    return 0


# ---------------------------------------------------------------------------------------------------------------- screen

def rates(p: np.ndarray, fake_from: float, real_below: float, never_real: np.ndarray | None = None) -> dict:
    fake = p >= fake_from
    real = (p < real_below) & (~never_real if never_real is not None else True)
    return {"fake": float(fake.mean()) if len(p) else None, "real": float(real.mean()) if len(p) else None,
            "uncertain": float((~fake & ~real).mean()) if len(p) else None, "n": int(len(p)),
            "fake_n": int(fake.sum()), "real_n": int(real.sum())}


def lowest_cut(values: np.ndarray, share: float, grid: np.ndarray) -> float:
    """The lowest cut in `grid` with at most `share` of `values` at or above it."""
    for cut in grid:
        if (values >= cut).mean() <= share:
            return float(cut)
    return float(grid[-1])


def fold_rules(x: np.ndarray, clip: np.ndarray, table: dict, family: str, photos: list[str], photo_share: float,
               strict_real: float, components: int, C: float = 0.01, photo_weight: float = 1.0, reconstruction_weight: float = 1.0,
               late_fusion: bool = False) -> dict:
    from deepfake_detector.familiarity import Familiarity
    from deepfake_detector.model import sigmoid
    from research.depth_probe import family_weights, fit_probe
    from research.lofo import auc
    from training.calibration import BAND_GRID, asymmetric_fake_band, calibrate

    # held out: the family, its photo collections, and any reconstruction of those collections' faces (--extra_fakes)
    held = (table["family"] == family) | np.isin(table["source"], photos) | np.isin(table["source"], [f"reconstructed_{p}" for p in photos])
    train = np.flatnonzero(~held & (table["split"] == "train"))
    validation = np.flatnonzero(~held & (table["split"] == "validation"))
    # the shipped head (research.lofo's "C0.01-families"), the everyday photos' rows weighing `photo_weight` times more
    weights = family_weights(table["label"][train], table["family"][train], table["source"][train])
    weights[np.char.startswith(table["source"][train].astype(str), "photo_")] *= photo_weight
    weights[table["family"][train].astype(str) == "reconstruction"] *= reconstruction_weight
    if late_fusion:  # the CLIP head alone on train, then its score and the CNN margin weighed on validation
        probe = fit_probe(x[train, :-1], table["label"][train], sample_weight=weights * len(train) / weights.sum(), C=C)
        scores = late_fused(np.c_[probe.decision_function(x[:, :-1]), x[:, -1]], table, validation)
    else:
        probe = fit_probe(x[train], table["label"][train], sample_weight=weights * len(train) / weights.sum(), C=C)
        scores = probe.decision_function(x)
    block = calibrate(scores[validation], table["label"][validation], method="platt")
    p = sigmoid(block["slope"] * scores + block["intercept"])
    threshold, band = block["threshold"], block["uncertain_band"]
    fakes, photo_rows = np.flatnonzero(table["family"] == family), np.flatnonzero(np.isin(table["source"], photos))
    val_real = validation[table["label"][validation] == 0]
    val_photo = val_real[np.char.startswith(table["source"][val_real].astype(str), "photo_")]
    val_fake = validation[table["label"][validation] == 1]
    grid = np.round(np.arange(threshold, 1.0, 0.005), 3)
    fake_from_photo = max(threshold + band, lowest_cut(p[val_photo], photo_share, grid) if len(val_photo) else 0.0)
    real_strict = min(threshold - band, float(np.quantile(p[val_fake], strict_real)) if len(val_fake) else 1.0)
    familiarity = Familiarity.fit(clip[train], clip[validation], components)  # what the shipped folder stores
    limit = familiarity.limit
    far = familiarity.unlike(clip)
    wide = min(max(band, fake_from_photo - threshold), float(BAND_GRID[-1]))  # as training.calibration: its grid ends at 0.45
    # training.calibration --asymmetric, its own function: the wide Real cut as shipped, the Fake cut raised alone
    fake_from_asymmetric = threshold + asymmetric_fake_band(p[val_real], p[val_fake], p[val_photo], threshold, wide, photo_share)["fake_band"]
    rules = {
        "symmetric": (threshold + band, threshold - band, None),
        "photo-aware symmetric": (threshold + wide, threshold - wide, None),
        "photo-aware symmetric + unlike training": (threshold + wide, threshold - wide, far),
        "photo-aware": (fake_from_photo, threshold - band, None),
        "photo-aware + unlike training": (fake_from_photo, threshold - band, far),
        "asymmetric": (fake_from_asymmetric, threshold - wide, None),
        "asymmetric + unlike training": (fake_from_asymmetric, threshold - wide, far),
        "photo-aware + strict real": (fake_from_photo, real_strict, None),
        "photo-aware + unlike training + strict real": (fake_from_photo, real_strict, far),
    }
    out = {"family": family, "photo_collections": photos, "auc_vs_fold_photos": auc(p[fakes], p[photo_rows]),
           "validation_photos": int(len(val_photo)), "distance_limit": limit,
           # P(fake) of the held-out faces, in table order, for paired comparisons (research.compare_folds)
           "scores": {"held_out_fakes": np.round(p[fakes], 5).tolist(), "held_out_photos": np.round(p[photo_rows], 5).tolist()},
           "far_share": {"held_out_fakes": float(far[fakes].mean()), "held_out_photos": float(far[photo_rows].mean()) if len(photo_rows) else None},
           "rules": {}}
    for name, (fake_from, real_below, never) in rules.items():
        out["rules"][name] = {
            "fake_from": fake_from, "real_below": real_below,
            "held_out_fakes": rates(p[fakes], fake_from, real_below, never[fakes] if never is not None else None),
            "held_out_photos": rates(p[photo_rows], fake_from, real_below, never[photo_rows] if never is not None else None),
            "validation_reals": rates(p[val_real], fake_from, real_below, never[val_real] if never is not None else None),
        }
    return out


def late_fused(z: np.ndarray, table: dict, rows: np.ndarray) -> np.ndarray:
    """Two scores a face (the CLIP head's decision on train-fitted weights, the CNN margin) combined by a logistic
    regression fitted on `rows` (the fold's validation split, families weighted): the weights of the two come from
    faces neither was fitted on, so the CLIP head's train-set confidence does not decide them."""
    from sklearn.linear_model import LogisticRegression

    from research.depth_probe import family_weights

    weights = family_weights(table["label"][rows], table["family"][rows], table["source"][rows])
    combiner = LogisticRegression(C=1.0).fit(z[rows], table["label"][rows], sample_weight=weights)
    return combiner.decision_function(z)


def load_cache(cache: Path, table: dict, size: int | None = None, depths: list[int] | None = None) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(the table's rows the cache holds, CLIP features (at `size` px, else the folder's own; with `depths`, the whole
    tower's mean tokens after those layers side by side, 13 = the final class token), CNN margins, shipped P)."""
    parts = [np.load(cache / f"{name}.npz") for name in SPLITS]
    offsets = np.cumsum([0] + [int((table["split"] == name).sum()) for name in SPLITS])
    rows = np.concatenate([offset + part["rows"] for offset, part in zip(offsets, parts)])
    key = f"features_{size}" if size else "features"
    if depths:
        stack = np.concatenate([part["depth_means"] for part in parts]).astype(np.float32)
        clip = np.hstack([stack[:, depth - 1] for depth in depths])
    else:
        clip = np.concatenate([part[key] for part in parts])
    return ({column: values[rows] for column, values in table.items()}, clip,
            np.concatenate([part["margins"] for part in parts]), np.concatenate([part["probabilities"] for part in parts]))


def summarize(folds: list[dict]) -> dict:
    from research.lofo import DIFFUSION

    summary = {}
    for rule in folds[0]["rules"]:
        photos = [fold["rules"][rule]["held_out_photos"] for fold in folds]
        n = sum(item["n"] for item in photos)
        summary[rule] = {
            "held_out_photos_called_fake": sum(item["fake_n"] for item in photos) / max(n, 1),
            "held_out_photos_called_real": sum(item["real_n"] for item in photos) / max(n, 1),
            "held_out_photos": n,
            "worst_diffusion_called_real": max(fold["rules"][rule]["held_out_fakes"]["real"] for fold in folds if fold["family"] in DIFFUSION),
            "per_family": {fold["family"]: fold["rules"][rule]["held_out_fakes"] for fold in folds},
        }
    return summary


def as_lofo_candidate(folds: list[dict], rule: str) -> dict:
    """One rule's folds in `research.lofo`'s candidate summary (what `research.issue22_card --lofo` reads)."""
    from research.lofo import DIFFUSION

    per_family = {}
    for fold in folds:
        fakes, photos = fold["rules"][rule]["held_out_fakes"], fold["rules"][rule]["held_out_photos"]
        per_family[fold["family"]] = {"auc_vs_fold_photos": fold["auc_vs_fold_photos"], "caught_as_fake": fakes["fake"], "called_real": fakes["real"],
                                      "photos_called_fake": photos["fake"], "fakes": fakes["n"], "photos": photos["n"]}
    diffusion = [fold for fold in folds if fold["family"] in DIFFUSION]
    worst = min(diffusion, key=lambda fold: fold["auc_vs_fold_photos"])
    n = sum(fold["rules"][rule]["held_out_photos"]["n"] for fold in folds)
    return {"worst_diffusion_auc": worst["auc_vs_fold_photos"], "worst_diffusion_family": worst["family"],
            "mean_diffusion_auc": float(np.mean([fold["auc_vs_fold_photos"] for fold in diffusion])),
            "held_out_photos_called_fake": sum(fold["rules"][rule]["held_out_photos"]["fake_n"] for fold in folds) / max(n, 1),
            "held_out_photos": n, "per_family": per_family, "rule": rule}


def variant(settings: dict) -> str:
    """What a screen changed from the shipped recipe, in words (its --cnn_only / --fold_margins / --late_fusion)."""
    parts = []
    if settings.get("cnn_only"):
        parts.append("the head reads the CNN margin alone (a Platt map of the CNN; no CLIP features)")
    if settings.get("fold_margins"):
        parts.append(f"each fold's CNN margin comes from the CNN retrained without that fold (`research.cnn_folds`, `{settings['fold_margins']}`)")
    if settings.get("late_fusion"):
        parts.append("the CLIP head is fitted alone on train and its score weighed against the CNN margin on the fold's validation split")
    return ("**This screen's variant:** " + "; ".join(parts) + ".") if parts else ""


def render(summary: dict, folds: list[dict], settings: dict | None = None) -> str:
    families = [fold["family"] for fold in folds]
    note = variant(settings or {})
    lines = [
        "# Abstention and the photos' operating point (issue 22)", "", *([note, ""] if note else []),
        "Leave-one-family-out folds of `research.lofo` (the shipped recipe refitted per fold: CLIP depth 4 float net of "
        "the int8 weights + CNN margin, C=0.01, families weighted, Platt on the fold's validation split). Each cell: "
        "held-out family's faces caught as Fake / called Real. Photos: the fold's held-out photo collections, pooled "
        "over folds (each collection held out once). Made by `python -m research.abstain screen` (its docstring "
        "defines the rules).", "",
        "| rule | held-out photos called Fake | held-out photos called Real | worst diffusion family called Real | "
        + " | ".join(f"{family} Fake / Real" for family in families) + " |",
        "|---|---:|---:|---:|" + "---:|" * len(families),
    ]
    for rule, row in summary.items():
        cells = [f"{row['per_family'][f]['fake']:.0%} / {row['per_family'][f]['real']:.0%}" for f in families]
        lines.append(f"| {rule} | {row['held_out_photos_called_fake']:.1%} of {row['held_out_photos']} | "
                     f"{row['held_out_photos_called_real']:.1%} | {row['worst_diffusion_called_real']:.0%} | " + " | ".join(cells) + " |")
    lines += ["", "Per fold: AUC of the family against the fold's photos, validation photos the Fake cut was set on, the "
              "share of faces beyond the distance limit.", "",
              "| held-out family | AUC | validation photos | photo-aware Fake cut | far: fakes / photos |", "|---|---:|---:|---:|---:|"]
    for fold in folds:
        far = fold["far_share"]
        lines.append(f"| {fold['family']} | {fold['auc_vs_fold_photos']:.3f} | {fold['validation_photos']} | "
                     f"{fold['rules']['photo-aware']['fake_from']:.3f} | {far['held_out_fakes']:.0%} / {far['held_out_photos']:.0%} |")
    return "\n".join(lines) + "\n"


def fold_margins(args, family: str, margins: np.ndarray) -> np.ndarray:
    """The CNN margin a fold's head reads: the shipped member's, or (`--fold_margins`, `research.cnn_folds`) the margins
    of the CNN retrained without that fold's family and photo collections."""
    if not args.fold_margins:
        return margins
    path = Path(args.fold_margins) / f"margins-{family}.npy"
    if not path.is_file():
        raise SystemExit(f"--fold_margins: no {path} (research.cnn_folds train scores one file per fold)")
    fold = np.load(path)
    if len(fold) != len(margins):
        raise SystemExit(f"--fold_margins: {path} has {len(fold)} rows, the cache {len(margins)} (a capped cache or --extra_fakes?)")
    return fold


def head_inputs(clip: np.ndarray, margins: np.ndarray, cnn_only: bool = False) -> np.ndarray:
    """The fused head's input: the tower's features and the CNN margin (`--cnn_only`: the margin alone)."""
    return margins[:, None] if cnn_only else np.hstack([clip, margins[:, None]])


def screen(args) -> int:
    from research.lofo import load_table, photo_folds
    from training.sources import FAMILIES

    _, table = load_table(args.dataset)
    table, clip, margins, _ = load_cache(Path(args.cache), table, args.size, args.depths)
    families = [name for name, _ in FAMILIES if (table["family"] == name).any()]
    if args.extra_fakes and args.fold_margins:
        raise SystemExit("--fold_margins has no margins for --extra_fakes rows")
    if args.extra_fakes:  # research.reconstruct: more train fakes, of a family of their own that no fold holds out
        extra = np.load(args.extra_fakes)
        n = len(extra["margins"])
        table = {"split": np.r_[table["split"], np.full(n, "train")], "label": np.r_[table["label"], np.ones(n, dtype=table["label"].dtype)],
                 "source": np.r_[table["source"].astype(str), np.char.add("reconstructed_", extra["sources"].astype(str))],
                 "family": np.r_[table["family"].astype(str), np.full(n, "reconstruction")]}
        clip, margins = np.vstack([clip, extra[f"features_{args.size}"]]), np.r_[margins, extra["margins"]]
    folds_of = photo_folds(table, families)
    folds = [fold_rules(head_inputs(clip, fold_margins(args, family, margins), args.cnn_only), clip, table, family, folds_of[family],
                        args.photo_share, args.strict_real, args.components, args.C, args.photo_weight, args.reconstruction_weight,
                        args.late_fusion)
             for family in families]
    summary = summarize(folds)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "abstain.json").write_text(json.dumps({"settings": vars(args), "summary": summary, "folds": folds,
                                                     "candidates": {rule: as_lofo_candidate(folds, rule) for rule in summary}}, indent=2))
    (output / "README.md").write_text(render(summary, folds, vars(args)))
    print(render(summary, folds, vars(args)))
    return 0


def write_familiarity(args) -> int:
    """The folder's familiarity (`deepfake_detector.familiarity`) from the cached features of its own tower: fitted on
    the train split, the limit at the validation faces' `--quantile`; written into the folder and its config.json."""
    from deepfake_detector.familiarity import Familiarity
    from research.lofo import load_table
    from training.hub import update_config

    _, table = load_table(args.dataset)
    table, clip, _, _ = load_cache(Path(args.cache), table, args.size)
    familiarity = Familiarity.fit(clip[table["split"] == "train"], clip[table["split"] == "validation"], args.components, args.quantile)
    block = familiarity.save(args.model) | {"quantile": args.quantile, "fitted_on": f"{args.dataset}: train split (validation for the limit)"}
    update_config(args.model, familiarity=block)
    print(json.dumps(block))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    features = commands.add_parser("features")
    features.add_argument("--dataset", required=True)
    features.add_argument("--model", default="models/deepfake-detector-clip-cnn-fused")
    features.add_argument("--cache", required=True)
    features.add_argument("--batch_size", type=int, default=32)
    features.add_argument("--train_cap", type=int, default=None, help="at most this many train rows per source (seeded; the CPU's time)")
    features.add_argument("--sizes_only", action="store_true", help="skip the folder's own tower (its features and P(fake) left empty)")
    features.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    features.add_argument("--also_sizes", type=int, nargs="*", default=[128], help="the same tower's features at these input sizes too (px)")
    features.add_argument("--tower", help="research.convert_clip's whole tower: also cache every depth's features (depth_means)")
    rules = commands.add_parser("screen")
    rules.add_argument("--dataset", required=True)
    rules.add_argument("--cache", required=True)
    rules.add_argument("--output", required=True)
    rules.add_argument("--photo_share", type=float, default=0.03)
    rules.add_argument("--strict_real", type=float, default=0.01)
    rules.add_argument("--components", type=int, default=32)
    rules.add_argument("--C", type=float, default=0.01, help="the head's inverse L2 strength (shipped: 0.01)")
    rules.add_argument("--reconstruction_weight", type=float, default=1.0, help="--extra_fakes rows weigh this many times what a family's share gives them")
    rules.add_argument("--photo_weight", type=float, default=1.0, help="everyday-photo rows weigh this many times more in the head (shipped: 1)")
    rules.add_argument("--extra_fakes", help="research.reconstruct's npz: reconstructed real train faces added as train fakes")
    rules.add_argument("--size", type=int, default=None, help="the features the tower gave at this input size (features --also_sizes)")
    rules.add_argument("--fold_margins", help="research.cnn_folds' margins-<family>.npy: each fold's head reads its own retrained CNN's margin")
    rules.add_argument("--cnn_only", action="store_true", help="the head reads the CNN margin alone (a Platt map of the CNN)")
    rules.add_argument("--late_fusion", action="store_true", help="the CLIP head fitted alone on train; its score and the CNN margin weighed by a logistic regression on the fold's validation split")
    rules.add_argument("--depths", type=int, nargs="*", default=None, help="the whole tower's features after these layers instead (features --tower; 13: final class token)")
    familiar = commands.add_parser("familiarity", help="write a folder's familiarity from the cache (its own tower's features)")
    familiar.add_argument("--dataset", required=True)
    familiar.add_argument("--cache", required=True)
    familiar.add_argument("--model", required=True)
    familiar.add_argument("--size", type=int, default=None, help="the features at this input size (the folder's own)")
    familiar.add_argument("--components", type=int, default=32)
    familiar.add_argument("--quantile", type=float, default=0.95)
    args = parser.parse_args(argv)
    return {"features": extract, "screen": screen, "familiarity": write_familiarity}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
