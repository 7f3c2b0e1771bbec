"""The Model tab: what the served model is, its headline test numbers, its plots, report and card, all read from the
files in the model's folder (metrics.json, report.md, README.md, *.png). Nothing here names a server path: plots
travel as data URIs and the card's relative image links are dropped.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from huggingface_hub import ModelCard

from deepfake_detector.model import Detector

PLOTS = (
    ("reliability.png", "Reliability (calibration) on the test split"),
    ("confusion_matrix.png", "Confusion matrix"),
    ("roc_curve.png", "ROC curve"),
    ("per_source.png", "Accuracy per source"),
    ("per_perturbation.png", "Robustness to perturbations"),
)
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _png_uri(file: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(file.read_bytes()).decode("ascii")


def _drop_relative_images(markdown: str) -> str:
    """A card's relative image links would not render in the page (the tab shows the folder's plots itself)."""
    return _IMAGE_LINK.sub(lambda m: m.group(0) if m.group(2).startswith(("https://", "data:")) else "", markdown)


def _metrics(folder: Path) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_summary(detector: Detector, metrics: dict) -> str:
    """The Model tab's first screen: what the model is, what it detects and not, headline numbers with their n."""
    lines = [
        f"## {detector.name}",
        f"A `{detector.config.get('architecture', '?')}` classifier of face crops. It gives each face a calibrated "
        "probability of being **generated or edited** by the generators it was trained on (StarGAN, AttGAN, "
        "StyleGAN, StyleGAN2, Stable Diffusion 2.1). It has **not** learnt what generated faces have in common: "
        "a generator it never saw (another diffusion model, a face swap) may well pass as real, and a score is never "
        "proof.",
    ]
    if metrics.get("n_images"):
        real = (metrics.get("per_class") or {}).get("real", {})
        called_fake = 1 - real["recall"] if "recall" in real else None
        numbers = [f"balanced accuracy **{metrics['balanced_accuracy']:.2f}**" if "balanced_accuracy" in metrics else "",
                   f"ROC AUC **{metrics['roc_auc']:.2f}**" if "roc_auc" in metrics else "",
                   f"real faces called fake **{called_fake:.0%}** (of {real.get('support', '?')})" if called_fake is not None else ""]
        lines.append(f"On its held-out test split (n = {metrics['n_images']:,} faces): " + ", ".join(n for n in numbers if n) + ".")
    lines.append(f"Decision threshold {detector.threshold:.2f}; calibration: {detector.calibration_summary}.")
    return "\n\n".join(lines)


def model_tab(detector: Detector, model_id: str) -> tuple[str, str, str]:
    """(summary markdown, plots HTML, details markdown) from the files in the model's folder; no server path.

    `model_id` is what the detector was loaded from: an `hf-hub:ORG/NAME` id adds a link to its model card."""
    folder = Path(detector.folder)
    metrics = _metrics(folder)
    lines = [model_summary(detector, metrics)]
    card_file = folder / "README.md"
    card = ModelCard.load(card_file) if card_file.is_file() else None
    if model_id.startswith("hf-hub:"):
        repo = model_id[len("hf-hub:"):].partition("@")[0]
        lines.append(f"Model card: [huggingface.co/{repo}](https://huggingface.co/{repo})")
    datasets = detector.config.get("dataset") or (card.data.to_dict().get("datasets") if card else None)
    datasets = [datasets] if isinstance(datasets, str) and datasets else (datasets or [])
    if datasets:
        lines.append("Dataset card: " + ", ".join(f"[{d}](https://huggingface.co/datasets/{d})" for d in datasets))
    else:
        lines.append(
            "Dataset card: the training data was built with `training.build_dataset`; its card is `dataset_card.md` "
            "in this app's repository (sources, splits, licences, confounds)."
        )
    report = folder / "report.md"  # written by training.evaluate next to metrics.json, from the same numbers
    details = []
    if report.is_file():
        details.append("## Measured results\n\n" + report.read_text(encoding="utf-8").partition("\n")[2].replace("\n## ", "\n### "))
    if card is not None and card.text.strip():
        details.append("## Model card\n\n" + card.text.strip())
    figures = [
        f'<figure style="display:inline-block;margin:6px;max-width:100%"><img src="{_png_uri(folder / file)}" alt="{title}" '
        f'style="max-width:min(480px,100%)"><figcaption>{title}</figcaption></figure>'
        for file, title in PLOTS
        if (folder / file).is_file()
    ]
    return "\n\n".join(lines), "".join(figures), _drop_relative_images("\n\n".join(details))
