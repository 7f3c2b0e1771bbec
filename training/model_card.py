"""Render the model card (Hub YAML header with model-index + sections) from a model folder's metrics.json.

`render_model_card` is pure; `write_model_card` writes the folder's README.md. The repository's model_card.md is the
default model's card rendered by the same function (with image paths relative to the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

PLOTS = ("confusion_matrix.png", "roc_curve.png", "per_source.png", "per_perturbation.png", "reliability.png")


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def model_index(metrics: dict, name: str, dataset_id: str) -> list[dict]:
    """`model-index` results: exactly the clean test numbers of metrics.json."""
    per_class = metrics.get("per_class", {})
    results = [
        {"type": "accuracy", "name": "Accuracy", "value": metrics["accuracy"]},
        {"type": "balanced_accuracy", "name": "Balanced accuracy", "value": metrics["balanced_accuracy"]},
        {"type": "roc_auc", "name": "ROC AUC", "value": metrics["roc_auc"]},
    ]
    for label in ("real", "fake"):
        if label in per_class:
            results.append({"type": "f1", "name": f"F1 ({label})", "value": per_class[label]["f1"]})
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "image-classification", "name": "Deepfake face detection"},
                    "dataset": {"type": dataset_id, "name": "Real and GAN-generated faces", "split": "test"},
                    "metrics": results,
                }
            ],
        }
    ]


def _table_per_class(metrics: dict) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, values in metrics.get("per_class", {}).items():
        rows.append(f"| {label} | {_fmt(values.get('precision'))} | {_fmt(values.get('recall'))} | {_fmt(values.get('f1'))} | {values.get('support')} |")
    return "\n".join(rows)


def _table_per_source(metrics: dict) -> str:
    rows = ["| source | images | accuracy |", "|---|---:|---:|"]
    for source, values in sorted(metrics.get("per_source", {}).items()):
        rows.append(f"| {source} | {values.get('count')} | {_fmt(values.get('accuracy'))} |")
    return "\n".join(rows)


def _table_per_perturbation(metrics: dict) -> str:
    block = metrics.get("per_perturbation") or {}
    if not block:
        return "_Not evaluated (run `training.evaluate --perturbations icip`)._"
    rows = ["| perturbation | parameters | balanced accuracy | accuracy | ROC AUC | F1 real | F1 fake |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, values in block.items():
        params = ", ".join(f"{k}={v}" for k, v in (values.get("params") or {}).items())
        per_class = values.get("per_class", {})
        rows.append(
            f"| {name} | {params} | {_fmt(values.get('balanced_accuracy'))} | {_fmt(values.get('accuracy'))} | {_fmt(values.get('roc_auc'))} "
            f"| {_fmt(per_class.get('real', {}).get('f1'))} | {_fmt(per_class.get('fake', {}).get('f1'))} |"
        )
    return "\n".join(rows)


def _targets(metrics: dict) -> str:
    """The project's targets, each met or missed with its number."""
    per_class = metrics.get("per_class", {})
    perturbed = metrics.get("per_perturbation") or {}
    worst = min(perturbed.items(), key=lambda kv: kv[1].get("balanced_accuracy", 1.0)) if perturbed else None
    checks = [
        ("balanced accuracy (clean) >= 0.97", metrics.get("balanced_accuracy"), 0.97),
        ("real-class F1 >= 0.95", per_class.get("real", {}).get("f1"), 0.95),
        ("ROC AUC >= 0.99", metrics.get("roc_auc"), 0.99),
    ]
    if worst:
        checks.append((f"balanced accuracy >= 0.90 under every perturbation (worst: {worst[0]})", worst[1].get("balanced_accuracy"), 0.90))
    rows = ["| target | measured | |", "|---|---:|---|"]
    for name, value, bound in checks:
        met = value is not None and value >= bound
        rows.append(f"| {name} | {_fmt(value)} | {'met' if met else '**missed**'} |")
    return "\n".join(rows)


def render_model_card(metrics: dict, config: dict, model_config: dict, extra_sections: str = "", asset_prefix: str = "") -> str:
    """The card's markdown. `asset_prefix` is prepended to plot file names (e.g. `models/NAME/`)."""
    name = model_config.get("model_name") or Path(config.get("output_dir", "model")).name
    dataset = config.get("dataset", "")
    # Only a Hub id belongs in the YAML `datasets` list; a locally built dataset is described by dataset_card.md.
    hub_dataset = config.get("hub_dataset_id") or (
        dataset if dataset.count("/") == 1 and not Path(dataset).exists() and not dataset.startswith((".", "/")) else None
    )
    dataset_id = hub_dataset or "faces-dataset"
    dataset_note = "" if hub_dataset else (
        " (built locally, not yet on the Hub, so the YAML header names no Hub dataset; pass `--hub_dataset_id` when "
        "rendering after `build_dataset --push_to_hub`)"
    )
    header = {
        "license": "cc-by-nc-4.0",
        "library_name": "timm",
        "pipeline_tag": "image-classification",
        "tags": ["deepfake-detection", "image-classification", "timm", "faces", "gan-detection"],
        "datasets": [hub_dataset] if hub_dataset else None,
        "metrics": ["accuracy", "balanced_accuracy", "roc_auc", "f1"],
        "base_model": f"timm/{model_config.get('architecture')}" if config.get("pretrained") or config.get("pretrained_file") else None,
        "model-index": model_index(metrics, name, dataset_id),
    }
    header = {k: v for k, v in header.items() if v is not None}
    calibration = model_config.get("calibration", {})
    plots = "\n".join(f"![{p[:-4].replace('_', ' ')}]({asset_prefix}{p})" for p in PLOTS if p in metrics.get("plots", PLOTS))
    architecture = model_config.get("architecture")
    size = model_config.get("pretrained_cfg", {}).get("input_size", [3, 128, 128])[-1]
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}: a deepfake face image detector

A `{architecture}` ({size}x{size} input) fine-tuned to tell **real face photos** from **GAN-generated or GAN-edited
faces** (StarGAN, AttGAN, StyleGAN, StyleGAN2 / thispersondoesnotexist.com). It outputs a calibrated probability that a
face is fake; the app runs it face by face with a Grad-CAM heatmap.

**Licence: CC BY-NC 4.0, research only.** The training images come from CelebA, CelebA-HQ and FFHQ and from
non-commercially licensed generators; the weights inherit those terms.

## Intended use

- Research on deepfake detection; a second opinion when checking whether a face photo was generated by a GAN of the
  families above; teaching.

## Out-of-scope use

- **Not a forensic or legal proof.** A "Fake" verdict is a statistical estimate that can be wrong; never use it alone
  to accuse a person, moderate content automatically, or decide anything about someone.
- Generators it has not seen (diffusion models, StyleGAN3, face swaps in videos, new commercial tools): expect much
  lower accuracy (see *Generalisation*).
- Images without a face, non-photographic images, identification of people.

## Training data

The project's dataset card (`dataset_card.md`): {metrics.get('training', {}).get('dataset', dataset_id)}{dataset_note} — real faces
from CelebA (incl. StarGAN/AttGAN inputs), CelebA-HQ and FFHQ; fakes from StarGAN, AttGAN, StyleGAN (v1),
StyleGAN2/TPDNE and three SD 1.5 images. CelebA/CelebA-HQ/FFHQ-derived images are **non-commercial research data**.
Splits are grouped by person/latent, so no face is in two splits.

Preprocessing, identical in training and in the app: square crop, **canonical 128 px (area resize) and a JPEG q75 round
trip** for every image of both classes, then the model's input size. Training preset `{config.get('preset')}` adds random
crop, flips/rotations, blur/sharpen/down-up-scaling, colour jitter, noise and random JPEG quality 40-95 to both classes.
Class and source imbalance: a weighted sampler draws each label half the time and weights sources within a label by
sqrt(size) (no loss weights).

## Evaluation (test split, {metrics.get('n_images')} images)

Accuracy **{_fmt(metrics.get('accuracy'))}**, balanced accuracy **{_fmt(metrics.get('balanced_accuracy'))}**, ROC AUC
**{_fmt(metrics.get('roc_auc'), 4)}** at threshold {_fmt(metrics.get('threshold'))}.

{_table_per_class(metrics)}

### Per source

{_table_per_source(metrics)}

### Per perturbation (the ICIAP 2022 test processing)

{_table_per_perturbation(metrics)}

### Targets

{_targets(metrics)}

{plots}

{extra_sections}

## Calibration

Temperature **{_fmt(calibration.get('temperature'))}** fitted on validation (NLL with each class weighted equally: training
drew real and fake faces 50/50 while the validation split is about 3/4 fake, and an upload's origin is unknown, so a
probability here means "P(fake) if real and fake were equally likely"), then the decision threshold
**{_fmt(calibration.get('threshold'))}** maximising validation balanced accuracy. Validation expected calibration error
(class-balanced) {_fmt(calibration.get('validation_ece_before'))} before and {_fmt(calibration.get('validation_ece_after'))} after. The app
reports "Uncertain" within 0.1 of the threshold.

## Bias, risks and limitations

- **Generators covered**: StarGAN, AttGAN, StyleGAN v1 (6 images), StyleGAN2/TPDNE. GDWCT (part of the challenge) is
  absent from the training data. Diffusion faces: 3 images only.
- **Faces only**, roughly frontal, as framed by the face detector (libfacedetection); tiny faces, profiles and heavy
  occlusion are out of distribution.
- **Resolution**: everything is brought to 128 px; artefacts that only show at full resolution are not used, by design
  (the dev corpus' high-resolution images separate by format and domain, not by realness).
- **Demographics**: CelebA/FFHQ over-represent young, light-skinned faces; accuracy on other groups was not measured
  and may be lower. Real photos of under-represented people may be called fake more often.
- **Adversaries** can defeat it (adversarial noise, new generators, re-photographing).

## Model examination

The app shows Grad-CAM (`pytorch-grad-cam`) on the last convolutional stage for each face: where the evidence for
"fake" lies. Heatmaps are a coarse explanation, not a localisation of the manipulation.

## How to use

```python
import timm, torch
model = timm.create_model("hf-hub:ORG/{name}", pretrained=True).eval()   # or "local-dir:path/to/folder"
# Preprocess exactly as in training: deepfake_detector.preprocess.eval_tensor (square crop, 128 px, JPEG q75, normalise)
from deepfake_detector.model import load_detector
from deepfake_detector.predict import predict
from deepfake_detector.images import load_rgb_array
detector = load_detector("hf-hub:ORG/{name}")   # threshold and temperature come from config.json
print(predict(load_rgb_array("photo.jpg"), detector).to_json())
```

## How to retrain

```bash
python -m training.build_dataset --source ../shared/data/faces --output data/faces-dataset
python -m training.convert_weights --weights efficientnet-lite0 --output weights/tf_efficientnet_lite0.safetensors
accelerate launch -m training.train --dataset data/faces-dataset --model {architecture} \\
    --pretrained_file weights/tf_efficientnet_lite0.safetensors --preset {config.get('preset')} \\
    --epochs {config.get('epochs')} --batch_size {config.get('batch_size')} --learning_rate {config.get('learning_rate')} \\
    --samples_per_epoch {config.get('samples_per_epoch')} --output_dir runs/{name}
```

The resolved configuration is in `training_config.json`; every number above can be recomputed from `predictions.csv`.
"""


def write_model_card(
    folder: str | Path, config: dict | None = None, extra_sections: str = "", asset_prefix: str = "", hub_dataset_id: str = ""
) -> str:
    """Render the card from folder/metrics.json, config.json and training_config.json; write folder/README.md."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    model_config = json.loads((folder / "config.json").read_text())
    if config is None:
        config_path = folder / "training_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if hub_dataset_id:
        config = {**config, "hub_dataset_id": hub_dataset_id}
    extra_path = folder / "card_sections.md"
    if not extra_sections and extra_path.is_file():
        extra_sections = extra_path.read_text()
    card = render_model_card(metrics, config, model_config, extra_sections=extra_sections, asset_prefix=asset_prefix)
    if not asset_prefix:
        (folder / "README.md").write_text(card)
    return card


def comparison_section(models: dict[str, dict]) -> str:
    """One table over several models' metrics.json (same test split, same evaluation), plus the published numbers."""
    rows = [
        "## Comparison with the original project's recipe",
        "",
        "Both rows below were trained on the same grouped split of the dev corpus and evaluated by the same code on the",
        "same test images and perturbations.",
        "",
        "| model | recipe | accuracy | balanced acc. | ROC AUC | F1 real | F1 fake | worst perturbation (balanced acc.) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, entry in models.items():
        metrics, recipe = entry["metrics"], entry["recipe"]
        per_class = metrics.get("per_class", {})
        perturbed = metrics.get("per_perturbation") or {}
        worst = min(perturbed.items(), key=lambda kv: kv[1].get("balanced_accuracy", 1.0)) if perturbed else None
        worst_text = f"{worst[0]}: {_fmt(worst[1].get('balanced_accuracy'))}" if worst else "n/a"
        rows.append(
            f"| {name} | {recipe} | {_fmt(metrics.get('accuracy'))} | {_fmt(metrics.get('balanced_accuracy'))} | {_fmt(metrics.get('roc_auc'))} "
            f"| {_fmt(per_class.get('real', {}).get('f1'))} | {_fmt(per_class.get('fake', {}).get('f1'))} | {worst_text} |"
        )
    rows += [
        "",
        "For reference only (**not comparable**: the ICIAP 2022 challenge's own test set, which is not available here): the",
        "original project's MobileNetV3 reported 81% accuracy with real-class F1 0.71; the challenge winner reportedly",
        "reached about 94%.",
        "",
    ]
    return "\n".join(rows)


def speed_section(benchmark: dict, metrics: dict) -> str:
    history = metrics.get("training", {}).get("history", [])
    train_rate = history[-1].get("train_images_per_second") if history else None
    return "\n".join(
        [
            "## Speed (CPU, `python -m training.benchmark`)",
            "",
            f"- One face photo, detection + classification: **{_fmt(benchmark.get('predict_ms'), 0)} ms** median"
            f" ({_fmt(benchmark.get('predict_with_gradcam_ms'), 0)} ms with the Grad-CAM heatmap) on {benchmark.get('machine')}.",
            f"- Batched classification (evaluation): {_fmt(benchmark.get('classify_images_per_second'), 0)} images/s.",
            f"- Training: {_fmt(train_rate, 1)} images/s; the decode + augmentation pipeline alone delivers"
            f" {_fmt(benchmark.get('pipeline_images_per_second'), 0)} images/s per worker, so it is not the bottleneck.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Render the default model's card into its folder (README.md) and the repository's model_card.md."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--baseline_dir", help="a second model folder to compare with (same test split)")
    parser.add_argument("--generalization", help="generalization.md from training.generalization")
    parser.add_argument("--benchmark", help="JSON from training.benchmark")
    parser.add_argument("--output", default="model_card.md")
    parser.add_argument("--hub_dataset_id", default="", help="the dataset's Hub id (ORG/NAME), listed in the card's YAML")
    args = parser.parse_args(argv)
    folder = Path(args.model_dir)
    metrics = json.loads((folder / "metrics.json").read_text())
    sections = []
    if args.baseline_dir:
        models = {}
        for path in (folder, Path(args.baseline_dir)):
            config = json.loads((path / "training_config.json").read_text())
            pretrained = "ImageNet-pretrained" if config.get("pretrained") or config.get("pretrained_file") else "from scratch"
            recipe = f"{config['model']}, {config['input_size']} px, preset `{config['preset']}`, {pretrained}, {config['epochs']} epochs x {config['samples_per_epoch']} images"
            models[path.name] = {"metrics": json.loads((path / "metrics.json").read_text()), "recipe": recipe}
        sections.append(comparison_section(models))
    if args.generalization:
        sections.append(Path(args.generalization).read_text())
    if args.benchmark:
        sections.append(speed_section(json.loads(Path(args.benchmark).read_text()), metrics))
    extra = "\n".join(sections)
    (folder / "card_sections.md").write_text(extra)  # kept with the model so a re-render includes it
    write_model_card(folder, extra_sections=extra, hub_dataset_id=args.hub_dataset_id)
    relative = folder.resolve().relative_to(Path(args.output).resolve().parent)
    Path(args.output).write_text(write_model_card(folder, extra_sections=extra, asset_prefix=f"{relative.as_posix()}/", hub_dataset_id=args.hub_dataset_id))
    print(f"Wrote {folder / 'README.md'} and {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
