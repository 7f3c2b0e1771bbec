"""The dataset card, rendered from training/templates/dataset_card.md.j2 with a build report: every count is computed
from the report, the prose is in the template, and the YAML header is huggingface_hub's DatasetCardData."""

from __future__ import annotations

from collections import Counter

from huggingface_hub import DatasetCard, DatasetCardData

from deepfake_detector.faces import FACE_CROP_SCALE
from training.templates import render_card

SPLITS = ("train", "validation", "test")


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def card_data(total: int) -> DatasetCardData:
    """The YAML header: licence, task, size category and the Parquet shards of each split."""
    return DatasetCardData(
        pretty_name="Real and GAN-generated faces (deepfake face detection, ICIAP 2022 setting)",
        license="other", license_name="celeba-ffhq-non-commercial-research", license_link="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        task_categories=["image-classification"], task_ids=["multi-class-image-classification"],
        tags=["deepfake-detection", "gan-detection", "faces"], size_categories=[_size_category(total)],
        source_datasets=["CelebA", "CelebA-HQ", "FFHQ"], annotations_creators=["machine-generated"], language_creators=["found"],
        multilinguality=["monolingual"], language=["en"],
        configs=[{"config_name": "default", "data_files": [{"split": split, "path": f"data/{split}-*"} for split in SPLITS]}],
    )


def render_dataset_card(report, seed: int = 0, sources: list[str] | None = None) -> str:
    """The card's markdown for a `training.build_dataset.BuildReport`."""
    per_source, per_split = Counter(), Counter()
    for split, labels in report.counts.items():
        for label, by_source in labels.items():
            for source, n in by_source.items():
                per_source[(label, source)] += n
                per_split[(split, label)] += n
    total = sum(per_source.values())
    n_real = sum(n for (label, _), n in per_source.items() if label == "real")

    def by_count(counts: dict) -> list:
        return sorted(counts.items(), key=lambda item: -item[1])

    rows = [{"label": label, "source": source, "n": n, "splits": [report.counts.get(s, {}).get(label, {}).get(source, 0) for s in SPLITS],
             "resolutions": by_count(report.resolutions.get(f"{label}/{source}", {})), "formats": by_count(report.formats.get(f"{label}/{source}", {}))}
            for (label, source), n in sorted(per_source.items())]
    photos = getattr(report, "photos", {}) or {}
    return render_card(
        DatasetCard, card_data(total), "dataset_card.md.j2",
        total=total, n_real=n_real, n_fake=total - n_real, sources=rows, built_from=sources or [], seed=seed,
        splits=[{"split": s, "real": per_split[(s, "real")], "fake": per_split[(s, "fake")]} for s in SPLITS],
        duplicates=len(report.duplicates), skipped=len(report.skipped), kept=getattr(report, "kept_splits", {}) or None,
        photos=sorted(photos.items()), photo_total={key: sum(s[key] for s in photos.values()) for key in ("photos", "people")},
        has_sd21=any(source == "sd21" for (_, source) in per_source), crop_scale=FACE_CROP_SCALE,
    )
