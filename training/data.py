"""The dataset's schema and how to open a built dataset (a local folder or a Hub id)."""

from __future__ import annotations

from pathlib import Path

from deepfake_detector.model import LABEL_NAMES


def features():
    """The `datasets.Features` every split has. `image` holds the original file bytes (not re-encoded)."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.ClassLabel(names=LABEL_NAMES),
            "source": datasets.Value("string"),
            # generator family (training.sources.FAMILIES) of a fake row, "real" for a real one: what is held out whole
            "family": datasets.Value("string"),
            "group": datasets.Value("string"),
            "sha256": datasets.Value("string"),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "format": datasets.Value("string"),
            "path": datasets.Value("string"),
            "origin_repo": datasets.Value("string"),
            "license_note": datasets.Value("string"),
            # First face found by yuface at build time: box x, y, w, h and five landmarks x1, y1, ... x5, y5.
            # Empty lists when no face was found (the image is then used whole).
            "face_box": datasets.Sequence(datasets.Value("int32")),
            "landmarks": datasets.Sequence(datasets.Value("float32")),
        }
    )


def hub_dataset_id(path_or_id: str | Path) -> str | None:
    """`path_or_id` when `load_built_dataset` would read it from the Hub (ORG/NAME, no such local path), else None."""
    return str(path_or_id) if "/" in str(path_or_id) and not Path(path_or_id).exists() else None


def load_built_dataset(path_or_id: str | Path):
    """A DatasetDict from `training.build_dataset` output: its folder (arrow or parquet layout) or a Hub id.

    The `image` column comes back undecoded ({"bytes", "path"}), so that every consumer decodes through
    `deepfake_detector.images.load_image` (one decode path for PNG and JPEG alike).
    """
    import datasets

    path = Path(path_or_id)
    if (path / "dataset_dict.json").is_file():
        dataset = datasets.load_from_disk(str(path))
    elif (path / "arrow" / "dataset_dict.json").is_file():
        dataset = datasets.load_from_disk(str(path / "arrow"))
    elif path.is_dir():
        dataset = datasets.load_dataset(str(path))  # the parquet layout push_to_hub uploads
    elif hub_dataset_id(path_or_id):
        dataset = datasets.load_dataset(str(path_or_id))
    else:
        raise FileNotFoundError(f"No built dataset at {path_or_id}: run `python -m training.build_dataset` first.")
    return dataset.cast_column("image", datasets.Image(decode=False))


def source_counts(dataset) -> dict:
    """{split: {label: {source: images}}} of a DatasetDict: the corpus facts the model card renders."""
    from collections import Counter

    counts = {}
    for split, data in dataset.items():
        pairs = Counter(zip(data["label"], data["source"]))
        by_label: dict = {}
        for (label, source), n in sorted(pairs.items(), key=lambda item: (item[0][0], item[0][1])):
            name = LABEL_NAMES[label] if isinstance(label, int) else str(label)
            by_label.setdefault(name, {})[source] = int(n)
        counts[split] = by_label
    return counts
