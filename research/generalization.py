"""Leave-one-source-out and resolution hold-out: how the recipe does on sources it never saw.

    python -m research.generalization --dataset data/faces-dataset --model tf_efficientnet_lite0 \
        --pretrained_file weights/tf_efficientnet_lite0.safetensors --output_dir runs/generalization \
        --holdout stargan --holdout attgan --holdout tpdne --holdout stylegan=stylegan1,stylegan2,sd15 \
        --holdout ffhq --holdout highres -- --epochs 2 --samples_per_epoch 4000

For each hold-out, the training script runs with those sources (or, for `highres`, every image whose longer side is
>= 512 px) removed from train and validation. The model is then scored on every held-out image from all splits (it
never saw any of them) and on the in-distribution test split without them. For a one-class hold-out, the ROC AUC pairs
the held-out images with the in-distribution test images of the other class. Arguments after `--` go to training.
Writes OUTPUT_DIR/generalization.json and generalization.md (a table for the model card).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HIGHRES_SIDE = 512


def parse_holdout(text: str) -> tuple[str, list[str]]:
    name, _, sources = text.partition("=")
    return name, [s for s in (sources or name).split(",") if s]


def held_out_mask(split, name: str, sources: list[str]) -> list[bool]:
    if name == "highres":
        return [max(w, h) >= HIGHRES_SIDE for w, h in zip(split["width"], split["height"])]
    return [source in sources for source in split["source"]]


def predict_scorer(detector):
    """P(fake) and labels of some rows of a split, through the app's path (`training.evaluate`, face detection)."""
    from training.evaluate import evaluate_records, records_from_dataset

    def scores(split, split_name: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        _, predictions = evaluate_records(detector, records_from_dataset(split.select(indices)), progress=False)
        labels = np.array([1 if label in (1, "fake") else 0 for label in predictions["label"]])
        return predictions["fake_probability"].to_numpy(dtype=float), labels

    return scores


def cached_scorer(detector, cache_dir: Path, dataset, batch_size: int = 256):
    """P(fake) and labels from the canonical-face cache (`training.face_cache`): the dataset's own face crops, without
    face detection. ~30x faster than `predict_scorer`, which makes held-out sources of 10,000 images affordable."""
    import torch

    from deepfake_detector.preprocess import to_model_tensor
    from training import face_cache

    caches = {}

    def scores(split, split_name: str, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        if split_name not in caches:
            caches[split_name] = face_cache.build(dataset[split_name], cache_dir, split_name)[0]
        faces, probabilities = caches[split_name], []
        for start in range(0, len(indices), batch_size):
            batch = torch.stack([to_model_tensor(np.asarray(faces[i]), detector.data_config) for i in indices[start : start + batch_size]])
            probabilities.append(detector.fake_probabilities(batch))
        labels = np.asarray(split["label"])[indices]
        return (np.concatenate(probabilities) if probabilities else np.zeros(0)), labels

    return scores


def score(detector, dataset, name: str, sources: list[str], scorer=None) -> dict:
    """Held-out and in-distribution numbers of one hold-out run; `scorer` defaults to the app's path."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    scorer = scorer or predict_scorer(detector)
    held_probs, held_labels = [], []
    for split_name in ("train", "validation", "test"):
        split = dataset[split_name]
        indices = [i for i, held in enumerate(held_out_mask(split, name, sources)) if held]
        if indices:
            probs, labels = scorer(split, split_name, indices)
            held_probs.append(probs)
            held_labels.append(labels)
    test = dataset["test"]
    keep = [i for i, held in enumerate(held_out_mask(test, name, sources)) if not held]
    in_probs, in_labels = scorer(test, "test", keep)
    held_probs, held_labels = np.concatenate(held_probs), np.concatenate(held_labels)
    held_predicted = held_probs >= detector.threshold
    result = {
        "holdout": name,
        "sources": sources,
        "held_out_images": int(len(held_labels)),
        "held_out_real": int((held_labels == 0).sum()),
        "held_out_fake": int((held_labels == 1).sum()),
        "in_distribution_test_images": int(len(in_labels)),
        "in_distribution_balanced_accuracy": float(balanced_accuracy_score(in_labels, in_probs >= detector.threshold)),
        "in_distribution_roc_auc": float(roc_auc_score(in_labels, in_probs)),
    }
    if len(set(held_labels.tolist())) == 2:
        result["held_out_balanced_accuracy"] = float(balanced_accuracy_score(held_labels, held_predicted))
        result["held_out_roc_auc"] = float(roc_auc_score(held_labels, held_probs))
    else:
        # one class held out: its accuracy is that class's recall; AUC against the other class of the test split
        result["held_out_accuracy"] = float((held_predicted == held_labels).mean())
        other = in_labels != held_labels[0]
        labels = np.concatenate([held_labels, in_labels[other]])
        result["held_out_roc_auc_vs_test_counterpart"] = float(roc_auc_score(labels, np.concatenate([held_probs, in_probs[other]])))
    return result


def held_out_auc(result: dict) -> float | None:
    """A `score` result's held-out ROC AUC: among the held-out images when they hold both classes, else against the
    in-distribution test images of the other class."""
    return result.get("held_out_roc_auc", result.get("held_out_roc_auc_vs_test_counterpart"))


def render_table(results: list[dict], title: str = "Generalisation: held-out sources and resolutions") -> str:
    def f(value) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"## {title}",
        "",
        "The same recipe retrained with whole sources (or every image >= 512 px) removed from train and validation, then",
        "scored on every held-out image. These numbers, not the in-distribution ones, say what to expect from a new",
        "generator or camera.",
        "",
        "| held out | images (real/fake) | held-out accuracy | held-out ROC AUC | in-distribution test balanced acc. / AUC |",
        "|---|---|---:|---:|---|",
    ]
    for r in results:
        accuracy = r.get("held_out_balanced_accuracy", r.get("held_out_accuracy"))
        auc = held_out_auc(r)
        kind = " (balanced)" if "held_out_balanced_accuracy" in r else ""
        auc_kind = "" if "held_out_roc_auc" in r else " (vs test counterpart)"
        lines.append(
            f"| {r['holdout']} ({', '.join(r['sources'])}) | {r['held_out_images']} ({r['held_out_real']}/{r['held_out_fake']}) "
            f"| {f(accuracy)}{kind} | {f(auc)}{auc_kind} | {f(r['in_distribution_balanced_accuracy'])} / {f(r['in_distribution_roc_auc'])} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", "--data", required=True)
    parser.add_argument("--model", "--architecture", required=True, help="timm architecture name")
    parser.add_argument("--pretrained_file", default="")
    parser.add_argument("--output_dir", "--output", required=True)
    parser.add_argument("--holdout", action="append", required=True, help="NAME or NAME=src1,src2; 'highres' holds out >= 512 px")
    parser.add_argument("--skip_training", action="store_true", help="score existing runs only")
    parser.add_argument(
        "--face_cache", default="",
        help="a canonical-face cache folder (training.face_cache): train from it, skip each run's calibration and test "
        "pass (--stop_after_training), and score the dataset's own face crops from it instead of through face detection",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = build_parser().parse_args(argv)

    from deepfake_detector.model import load_detector
    from training.data import load_built_dataset

    output = Path(args.output_dir)
    dataset = load_built_dataset(args.dataset)
    results = []
    for holdout in args.holdout:
        name, sources = parse_holdout(holdout)
        run_dir = output / name
        if not args.skip_training and not (run_dir / "model.safetensors").is_file():
            command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "-m", "training.train",
                       "--dataset", args.dataset, "--model", args.model, "--output_dir", str(run_dir), "--perturbations", ""]
            command += ["--max_train_side", str(HIGHRES_SIDE - 1)] if name == "highres" else ["--exclude_sources", ",".join(sources)]
            if args.pretrained_file:
                command += ["--pretrained_file", args.pretrained_file]
            if args.face_cache:
                command += ["--face_cache", args.face_cache, "--stop_after_training"]
            subprocess.run(command + train_args, check=True)
        detector = load_detector(run_dir)
        scorer = cached_scorer(detector, Path(args.face_cache), dataset) if args.face_cache else None
        result = score(detector, dataset, name, sources, scorer) | {"scored": "cached face crops" if args.face_cache else "predict()"}
        print(json.dumps(result))
        results.append(result)
        output.mkdir(parents=True, exist_ok=True)
        (output / "generalization.json").write_text(json.dumps(results, indent=2))
        (output / "generalization.md").write_text(render_table(results))
    print(render_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
