"""A built dataset with at most N rows per source and label in each split (seeded): evaluation and calibration that fit
a busy CPU while keeping every row of the thin sources (sd21, everyday photos, high-resolution StyleGAN).

    python -m research.subsample --data data/faces-dataset-v2 --per_source 60 --seed 0 --output runs/v2-per-source-60

The output is a `save_to_disk` DatasetDict that `training.evaluate --data` and `training.calibration --dataset` read.
Capping per source changes the source mix of each class, so metrics on it are not the full split's: compare models
on the same subsample, never against numbers from the full split.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict


def subsample_indices(labels: list[int], sources: list[str], per_source: int, seed: int = 0) -> list[int]:
    """Sorted row indices: every row of a (label, source) with at most `per_source` rows, else a seeded sample."""
    if per_source < 1:
        raise ValueError("--per_source must be at least 1")
    rows = defaultdict(list)
    for index, key in enumerate(zip(labels, sources)):
        rows[key].append(index)
    rng = random.Random(seed)
    chosen = []
    for key in sorted(rows):
        indices = rows[key]
        chosen += indices if len(indices) <= per_source else rng.sample(indices, per_source)
    return sorted(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", "--dataset", required=True, help="built dataset folder or Hub id")
    parser.add_argument("--per_source", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", "--output_dir", required=True)
    args = parser.parse_args(argv)
    import datasets

    from training.data import load_built_dataset

    dataset = load_built_dataset(args.data)
    subset = datasets.DatasetDict(
        {split: data.select(subsample_indices(data["label"], data["source"], args.per_source, args.seed)) for split, data in dataset.items()}
    )
    subset.save_to_disk(args.output)
    for split, data in subset.items():
        print(f"{split}: {len(data)} of {len(dataset[split])} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
