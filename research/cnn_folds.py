"""Today's CNN retrained with the extra data, one run per leave-one-family-out fold (issue 22's first candidate).

    python -m research.cnn_folds faces --dataset data/faces-dataset-v3 --output data/cnn-folds/faces.npz \
        --check_cache data/abstain-deep
    python -m research.cnn_folds train --dataset data/faces-dataset-v3 --faces data/cnn-folds/faces.npz \
        --runs runs/cnn-folds --margins data/cnn-folds
    python -m research.abstain screen --dataset data/faces-dataset-v3 --cache data/abstain-deep --size 128 \
        --fold_margins data/cnn-folds --output reports/abstain/cnn-folds/fused

`faces`: every row's first face as `predict()` frames it (`research.abstain.row_faces`), canonicalised as the CNN
member reads it (128 px, JPEG q75: `deepfake_detector.preprocess.canonicalize`), in the table's row order (train,
validation, test). `--check_cache`: the shipped member's margins on these faces must equal `research.abstain
features`' cached margins (the same faces, the same net).

`train`: for each family of `research.lofo` (and `all`: nothing held out), `research.finetune` from the shipped CNN
(`models/deepfake-detector-effnet-lite0`, r1-flip: its stem and first two blocks frozen, the whole net including the
head fine-tuned) on the v3 dataset, the family's sources and its photo collections (`research.lofo.photo_folds`)
excluded from train and validation; then the fold's net scores every face: `<margins>/margins-<family>.npy`, in the
table's order, which `research.abstain screen --fold_margins` puts in place of the shipped member's margin, fold by
fold. A fold already scored is skipped (a crash loses one fold at most). r1-flip was trained on the GANs and SD 2.1
(v2 dataset): those two folds are not held out for any candidate that starts from it.

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

SHIPPED_CNN = "models/deepfake-detector-effnet-lite0"


def canonical_faces(dataset_path: str, crop_scale: float, batch: int = 64) -> np.ndarray:
    from tqdm import tqdm

    from deepfake_detector.preprocess import canonicalize
    from research.abstain import SPLITS, row_faces
    from training.data import load_built_dataset

    dataset = load_built_dataset(dataset_path)
    faces = []
    for name in SPLITS:
        split = dataset[name]
        for start in tqdm(range(0, len(split), batch), desc=name, mininterval=30):
            rows = np.arange(start, min(start + batch, len(split)))
            faces += [canonicalize(face) for face in row_faces(split, rows, crop_scale)]  # 128 px, q75: the member's config
    return np.stack(faces)


def margins_of(folder: str | Path, faces: np.ndarray, batch: int = 128) -> np.ndarray:
    """logit(fake) - logit(real) of a CNN folder on canonical faces (its test-time flip as its config.json says)."""
    import torch

    from deepfake_detector.model import fake_margin, load_detector
    from deepfake_detector.preprocess import to_model_tensor

    detector = load_detector(folder)
    out = []
    for start in range(0, len(faces), batch):
        tensor = torch.stack([to_model_tensor(face, detector.data_config) for face in faces[start : start + batch]])
        out.append(fake_margin(detector.logits(tensor), detector.fake_index))
    return np.concatenate(out)


def make_faces(args) -> int:
    faces = canonical_faces(args.dataset, args.crop_scale)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial.npz")
    np.savez(partial, faces=faces)
    partial.replace(output)
    print(f"{len(faces)} canonical faces -> {output}")
    if args.check_cache:
        from research.abstain import SPLITS

        cached = np.concatenate([np.load(Path(args.check_cache) / f"{name}.npz")["margins"] for name in SPLITS])
        ours = margins_of(SHIPPED_CNN, faces)
        gap = float(np.abs(ours - cached).max())
        print(f"shipped member's margins, these faces vs {args.check_cache}: largest difference {gap:.2e}")
        if gap > 1e-3:
            raise SystemExit("the canonical faces do not reproduce the cached margins")
    return 0


def fold_sources(dataset_path: str) -> dict[str, list[str]]:
    """family -> the sources a fold holds out: the family's own and its photo collections (`all`: none)."""
    from research.lofo import load_table, photo_folds
    from training.sources import FAMILIES

    _, table = load_table(dataset_path)
    families = [name for name, _ in FAMILIES if (table["family"] == name).any()]
    photos = photo_folds(table, families)
    held = {family: sorted(set(table["source"][table["family"] == family].astype(str))) + photos[family] for family in families}
    return {"all": [], **held}


def train_folds(args) -> int:
    faces = np.load(args.faces)["faces"]
    margins_dir = Path(args.margins)
    margins_dir.mkdir(parents=True, exist_ok=True)
    folds = fold_sources(args.dataset)
    chosen = args.families or list(folds)
    for family in chosen:
        target = margins_dir / f"margins-{family}.npy"
        if target.exists():
            print(f"{family}: scored already ({target})")
            continue
        run = Path(args.runs) / family
        if not (run / "model.safetensors").exists():
            command = [sys.executable, "-m", "research.finetune", "--init_from", args.init_from, "--freeze_blocks", "2", "--",
                       "--dataset", args.dataset, "--model", "tf_efficientnet_lite0", "--output_dir", str(run),
                       "--preset", "robust", "--input_size", "128", "--epochs", str(args.epochs),
                       "--samples_per_epoch", str(args.samples_per_epoch), "--batch_size", "48",
                       "--learning_rate", str(args.learning_rate), "--label_smoothing", "0.05", "--drop_rate", "0.2",
                       "--channels_last", "--face_cache", args.face_cache, "--stop_after_training", "--test_time_flip",
                       "--checkpointing_steps", "0", "--seed", str(args.seed)]
            if folds[family]:
                command += ["--exclude_sources", ",".join(folds[family])]
            print(f"{family}: holding out {folds[family] or 'nothing'}", flush=True)
            subprocess.run(command, check=True)
        scores = margins_of(run, faces)
        np.save(margins_dir / f"margins-{family}.partial.npy", scores)
        (margins_dir / f"margins-{family}.partial.npy").replace(target)
        (margins_dir / f"held-out-{family}.json").write_text(json.dumps({"held_out_sources": folds[family], "run": str(run)}, indent=2))
        print(f"{family}: scored {len(scores)} faces -> {target}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    faces = commands.add_parser("faces")
    faces.add_argument("--dataset", required=True)
    faces.add_argument("--output", required=True)
    faces.add_argument("--crop_scale", type=float, default=1.45, help="the fused folder's face_crop_scale")
    faces.add_argument("--check_cache", help="research.abstain's cache: its member margins must be reproduced")
    folds = commands.add_parser("train")
    folds.add_argument("--dataset", required=True)
    folds.add_argument("--faces", required=True)
    folds.add_argument("--runs", required=True)
    folds.add_argument("--margins", required=True)
    folds.add_argument("--families", nargs="*", help="these folds only (default: all, then every family)")
    folds.add_argument("--init_from", default=SHIPPED_CNN)
    folds.add_argument("--face_cache", default="data/face-cache-v3")
    folds.add_argument("--epochs", type=int, default=3)
    folds.add_argument("--samples_per_epoch", type=int, default=3000)
    folds.add_argument("--learning_rate", type=float, default=2e-4)
    folds.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return {"faces": make_faces, "train": train_folds}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
