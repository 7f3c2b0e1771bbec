"""A detector made of a frozen CLIP tower and a linear head: the recipe the CLIP probes pointed to, as a model folder.

    python -m training.clip_probe --dataset data/faces-dataset-v2 --face_cache data/face-cache-v2 \
        --clip_weights weights/vit_base_patch16_clip_quickgelu_224.safetensors --depth 6 \
        --output_dir runs/clip-d6 --holdout sd21 --holdout ffhq --holdout tpdne --holdout attgan --holdout stargan --holdout highres

The tower (`training.convert_clip`) is cut after `--depth` encoder layers and reads the 128-px canonical face as it is
(8 x 8 patches, position embeddings resampled by timm). The head is a class-balanced logistic regression on the
mean patch token of the last kept layer (`--pool mean`; or the normalised class token, `--pool token`), fitted on the train split's cached faces (no augmentation: nothing is trained but the head),
then written into timm's own `head` so the folder loads, explains (Grad-CAM) and calibrates like every other model.
Every `--holdout` refits the head without that source and scores it as `training.generalization` does: the
leave-one-source-out numbers of this very recipe (`loso.json`, the format `training.ablation` reads). Then the usual
calibration on validation through `predict()`. Evaluate it with `training.evaluate` like any model folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.convert_clip import ARCHITECTURE
from training.depth_probe import SPLITS, fit_probe, probe_holdout
from training.generalization import held_out_auc, parse_holdout

# What the head reads. "mean": the mean of the patch tokens of the last kept layer, no final norm (the probes' better
# half: reports/generalization/clip-token-vs-mean.json); "token": the class token after the final layer norm.
POOLS = {
    "mean": ({"global_pool": "avg", "final_norm": False, "fc_norm": False}, "mean patch token of the last kept layer"),
    "token": ({"global_pool": "token"}, "class token after the final layer norm"),
}


def build_tower(weights: str | Path, depth: int, input_size: int, pool: str = "mean"):
    """The converted CLIP tower cut after `depth` layers, at `input_size` px, pooled by `pool` (POOLS), with a fresh
    2-class head."""
    import timm

    return timm.create_model(
        ARCHITECTURE, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, num_classes=2, depth=depth,
        img_size=input_size, **POOLS[pool][0],
    ).eval()


def head_features(model, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n, D): what the head reads (timm's pre-logits) for canonical faces (n, h, w, 3) uint8, preprocessed exactly
    as at inference (`to_model_tensor` with the model's data config)."""
    import timm
    import torch
    from tqdm.auto import tqdm

    from deepfake_detector.preprocess import to_model_tensor

    # the registry's pretrained_cfg still says 224 px for a tower built at another size: the built size decides
    data_config = timm.data.resolve_model_data_config(model) | {"input_size": (3, *model.patch_embed.img_size)}
    parts = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(faces), batch_size), desc="frozen CLIP", unit="batch"):
            batch = torch.stack([to_model_tensor(np.asarray(face), data_config) for face in faces[start : start + batch_size]])
            parts.append(model.forward_head(model.forward_features(batch), pre_logits=True).numpy())
    return np.concatenate(parts).astype(np.float32)


def set_head(model, probe) -> None:
    """Write a fitted StandardScaler + LogisticRegression pipeline into the model's 2-class head so that
    logit(fake) - logit(real) equals the probe's decision function."""
    import torch

    scaler, regression = probe[0], probe[-1]
    weight = regression.coef_[0] / scaler.scale_
    bias = regression.intercept_[0] - float(np.dot(weight, scaler.mean_))
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(np.stack([-weight / 2, weight / 2])).float())
        model.head.bias.copy_(torch.tensor([-bias / 2, bias / 2], dtype=torch.float32))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", "--data", required=True)
    parser.add_argument("--face_cache", required=True, help="canonical-face cache folder (training.face_cache)")
    parser.add_argument("--clip_weights", required=True, help="training.convert_clip's safetensors file")
    parser.add_argument("--depth", type=int, default=6, help="encoder layers kept (the probes: layers 4-7 generalise best)")
    parser.add_argument("--input_size", type=int, default=128, help="px the tower reads (128: the canonical face as it is)")
    parser.add_argument("--pool", choices=sorted(POOLS), default="mean", help="what the head reads (see POOLS)")
    parser.add_argument("--output_dir", "--output", required=True)
    parser.add_argument("--holdout", action="append", default=[], help="NAME or NAME=src1,src2; 'highres' holds out >= 512 px")
    parser.add_argument("--no_calibration", action="store_true", help="leave threshold 0.5 and no calibration map")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.depth <= 12:
        raise SystemExit(f"--depth must be 1-12 (ViT-B/16 has 12 layers), got {args.depth}")
    if args.input_size % 16:
        raise SystemExit(f"--input_size must be a multiple of the 16-px patch, got {args.input_size}")
    if not Path(args.clip_weights).is_file():
        raise SystemExit(f"--clip_weights {args.clip_weights}: no such file; make it with python -m training.convert_clip --output PATH")
    from training import face_cache
    from training.data import load_built_dataset
    from training.hub import save_model_folder

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    dataset = load_built_dataset(args.dataset)
    model = build_tower(args.clip_weights, args.depth, args.input_size, args.pool)
    features = {split: head_features(model, face_cache.build(dataset[split], Path(args.face_cache), split)[0]) for split in SPLITS}
    labels = np.asarray(dataset["train"]["label"])

    loso = [probe_holdout(features, dataset, *parse_holdout(holdout)) for holdout in args.holdout]
    for result in loso:
        print(f"held out {result['holdout']}: ROC AUC {held_out_auc(result):.3f}", flush=True)
    probe = fit_probe(features["train"], labels)
    set_head(model, probe)
    name = output.name
    save_model_folder(
        model, output, input_size=args.input_size,
        extra_config={"model_name": name, "preset": "none (frozen tower, linear head)", "test_time_flip": False},
        model_args={"depth": args.depth, "img_size": args.input_size, **POOLS[args.pool][0]},
    )
    recipe = {
        "recipe": "clip_probe", "dataset": args.dataset, "model": ARCHITECTURE, "clip_weights": args.clip_weights,
        "depth": args.depth, "input_size": args.input_size, "head": "training.depth_probe.fit_probe: standardised, class-balanced logistic regression, C=0.1",
        "pool": args.pool, "features": POOLS[args.pool][1], "train_images": int(len(labels)), "output_dir": str(output),
    }
    (output / "training_config.json").write_text(json.dumps(recipe, indent=2))
    (output / "loso.json").write_text(json.dumps(loso, indent=2))

    # The folder must compute what the probe computes: the saved head, reloaded, against the fitted pipeline.
    from deepfake_detector.model import fake_margin, load_detector
    from deepfake_detector.preprocess import to_model_tensor

    import torch

    detector = load_detector(output)
    faces = face_cache.build(dataset["test"], Path(args.face_cache), "test")[0][:32]
    batch = torch.stack([to_model_tensor(np.asarray(face), detector.data_config) for face in faces])
    margins = fake_margin(detector.logits(batch), detector.fake_index)
    expected = probe.decision_function(features["test"][: len(faces)])
    if not np.allclose(margins, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max()))):
        raise RuntimeError(f"the saved head disagrees with the fitted probe: {margins[:4]} vs {expected[:4]}")
    if not args.no_calibration:
        from training import calibration

        calibration.main(["--model_dir", str(output), "--dataset", args.dataset])
    print(f"Wrote {output}: {args.depth} CLIP layers at {args.input_size} px + linear head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
