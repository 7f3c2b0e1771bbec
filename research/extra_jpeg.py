"""The extra corpus (../shared/data/extra, rebuilt) through `predict()` as visitors' copies: every file re-encoded as
JPEG q90 first, so that a detector which learned "PNG = generated" gains nothing. Per label and per split of its
repository in the built dataset (train: seen; validation / test: repositories the head never trained on).

    python -m research.extra_jpeg --extra data/extra --dataset data/faces-dataset-v3 \
        --model models/NEW --model models/deepfake-detector-effnet-lite0 --output reports/lofo/extra-jpeg.json
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image


def jpeg_copy(path: Path, quality: int = 90):
    from deepfake_detector.images import load_rgb_array

    buffer = io.BytesIO()
    Image.fromarray(load_rgb_array(path.read_bytes())).save(buffer, format="JPEG", quality=quality)
    return load_rgb_array(buffer.getvalue())


def repository_splits(dataset_path: str) -> dict[str, str]:
    from training.data import load_built_dataset

    dataset = load_built_dataset(dataset_path)
    return {group.removeprefix("repo:"): split for split, data in dataset.items() for group in set(data["group"]) if group.startswith("repo:")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict

    rows = list(csv.DictReader(open(Path(args.extra) / "MANIFEST.csv")))
    split_of = repository_splits(args.dataset)
    images = [(row, jpeg_copy(Path(args.extra) / row["path"])) for row in tqdm(rows, desc="JPEG copies", mininterval=10)]
    results = {}
    for model in args.model:
        detector = load_detector(model)
        counts = defaultdict(Counter)
        for row, image in tqdm(images, desc=Path(model).name, mininterval=10):
            verdict = predict(image, detector).verdict
            for key in (row["label"], f"{row['label']} ({split_of.get(row['origin_repo'], '?')} repositories)"):
                counts[key][verdict] += 1
        results[Path(model).name] = {
            key: {"photos": sum(c.values()), **dict(c), "called_fake": c["Fake"] / sum(c.values()), "called_real": c["Real"] / sum(c.values())}
            for key, c in sorted(counts.items())
        }
        print(Path(model).name, json.dumps(results[Path(model).name], indent=1), flush=True)
    Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
