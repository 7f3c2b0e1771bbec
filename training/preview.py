"""Write a PNG grid of augmented real and fake samples: look at what the model will see.

    python -m training.preview --data data/faces-dataset --preset robust --output artifacts/preview.png
    python -m training.preview --data ../shared/data/faces --preset seed --output artifacts/preview-seed.png

Each row is one image: the original, then `--repeats` draws of the preset (de-normalised back to pixels).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np

from deepfake_detector.model import LABEL_NAMES


def _samples(data: str, per_label: int, seed: int) -> list[tuple[str, str, bytes, list]]:
    """(label, source, bytes, landmarks) for `per_label` random images of each label."""
    rng = random.Random(seed)
    path = Path(data)
    if (path / "dataset_dict.json").is_file() or (path / "arrow").is_dir() or (path / "data").is_dir():
        from training.data import load_built_dataset

        split = load_built_dataset(data)["train"]
        labels = split["label"]
        picked = []
        for label in (0, 1):
            indices = [i for i, value in enumerate(labels) if value == label]
            for i in rng.sample(indices, min(per_label, len(indices))):
                row = split[i]
                picked.append((LABEL_NAMES[label], row["source"], row["image"]["bytes"], row["landmarks"]))
        return picked
    from deepfake_detector.faces import detect_faces
    from deepfake_detector.images import load_rgb_array
    from training.sources import iter_source_files

    files = list(iter_source_files(data))
    picked = []
    for label in LABEL_NAMES:
        candidates = [f for f in files if f.label == label]
        for file in rng.sample(candidates, min(per_label, len(candidates))):
            data_bytes = file.read()
            faces = detect_faces(load_rgb_array(data_bytes))
            landmarks = [c for point in faces[0].landmarks for c in point] if faces else []
            picked.append((label, file.source, data_bytes, landmarks))
    return picked


def render_preview(data: str, preset: str, output: str | Path, per_label: int = 4, repeats: int = 5, seed: int = 0, input_size: int = 128) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepfake_detector.images import load_rgb_array
    from training.transforms import apply_preset, make_preset

    data_config = {"input_size": (3, input_size, input_size), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    pipeline = make_preset(preset, data_config, size=input_size)
    samples = _samples(data, per_label, seed)
    figure, axes = plt.subplots(len(samples), repeats + 1, figsize=(1.6 * (repeats + 1), 1.7 * len(samples)), squeeze=False)
    for row, (label, source, data_bytes, landmarks) in enumerate(samples):
        image = load_rgb_array(data_bytes)
        axes[row][0].imshow(image)
        axes[row][0].set_title(f"{label}/{source}\n{image.shape[1]}x{image.shape[0]}", fontsize=7)
        for column in range(1, repeats + 1):
            tensor = apply_preset(pipeline, image, landmarks)
            pixels = np.clip(tensor.numpy().transpose(1, 2, 0) * 0.5 + 0.5, 0, 1)
            axes[row][column].imshow(pixels)
            axes[row][column].set_title(f"{preset} #{column}", fontsize=7)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=90)
    plt.close(figure)
    return output


def main(argv: list[str] | None = None) -> int:
    from training.transforms import PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", "--dataset", required=True, help="a built dataset folder or a <label>/<source>/ image folder")
    parser.add_argument("--preset", default="robust", choices=PRESETS)
    parser.add_argument("--output", default="artifacts/preview.png")
    parser.add_argument("--per_label", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--input_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = render_preview(args.data, args.preset, args.output, args.per_label, args.repeats, args.seed, args.input_size)
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
