"""How small may a face be before the detector's verdict stops meaning anything? Measured, not guessed.

    python -m research.face_size --model models/deepfake-detector-effnet-lite0 --data data/faces-dataset \
        --split test --per_class 150 --output reports/face-size

Each test image (a face crop) is shrunk so that its detected face is S pixels wide, pasted into a neutral 512-px
canvas (so the face is small *in a photo*, as a visitor's group photo would have it) and sent through the app's own
`predict()`. Per size: how often the face is still found, ROC AUC and balanced accuracy (at the model's threshold) on
the faces found, with n. Writes face_size.json, face_size.md and face_size.png; the app's minimum face size
(deepfake_detector.predict.MIN_FACE_SIDE) is the smallest width whose ROC AUC is within 0.03 of the large-face level
(measured 2026-11-29 with the previous model: 0.852 at 40 px against 0.880 at 64-128 px; 0.835 at 32, 0.803 at 24, 0.707
at 16; with the current one, on the v2 test split: 0.906 at 40 px against 0.905-0.929 at 64-128 px, 0.881 at 32).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

SIZES = (16, 24, 32, 40, 48, 64, 80, 96, 128)
CANVAS = 512


def shrink_into_canvas(rgb: np.ndarray, face_width: int, box_width: float) -> np.ndarray:
    """`rgb` scaled so that a face `box_width` px wide becomes `face_width` px, centred on a grey CANVAS square."""
    import cv2

    scale = face_width / max(1.0, box_width)
    height, width = rgb.shape[:2]
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(rgb, new, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    side = max(CANVAS, *small.shape[:2])
    canvas = np.full((side, side, 3), 127, dtype=np.uint8)
    y, x = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    return canvas


def measure(model: str, data: str, split: str, per_class: int, seed: int = 0) -> dict:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from deepfake_detector.faces import detect_faces
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict
    from training.data import load_built_dataset

    detector = load_detector(model)
    rows = load_built_dataset(data)[split]
    labels = np.asarray(rows["label"])
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.permutation(np.flatnonzero(labels == k))[:per_class] for k in (0, 1)])
    samples = []
    for index in chosen:
        row = rows[int(index)]
        rgb = load_rgb_array(row["image"]["bytes"])
        faces = detect_faces(rgb)
        if faces:  # the original size of the face, to scale from
            samples.append((rgb, faces[0].box[2], int(row["label"])))
    results = {}
    for size in tqdm(SIZES, desc="face sizes"):
        found, truth, scores = 0, [], []
        for rgb, box_width, label in samples:
            prediction = predict(shrink_into_canvas(rgb, size, box_width), detector)
            if prediction.face_found:
                found += 1
                truth.append(label)
                scores.append(prediction.fake_probability)
        truth, scores = np.asarray(truth), np.asarray(scores)
        both = len(set(truth.tolist())) == 2
        results[size] = {
            "n": len(samples),
            "found": found,
            "found_rate": found / len(samples),
            "roc_auc": float(roc_auc_score(truth, scores)) if both else None,
            "balanced_accuracy": float(balanced_accuracy_score(truth, scores >= detector.threshold)) if both else None,
        }
    return {"model": detector.name, "data": f"{data} ({split} split)", "threshold": detector.threshold, "sizes": results}


def write(result: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output.mkdir(parents=True, exist_ok=True)
    (output / "face_size.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Accuracy against face size — {result['model']}",
        "",
        f"Data: {result['data']}, faces shrunk into a {CANVAS}-px photo and sent through `predict()`; threshold "
        f"{result['threshold']:.3f}.",
        "",
        "| face width (px) | n | found | ROC AUC (found) | balanced accuracy (found) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, row in result["sizes"].items():
        auc = f"{row['roc_auc']:.3f}" if row["roc_auc"] is not None else "–"
        bal = f"{row['balanced_accuracy']:.3f}" if row["balanced_accuracy"] is not None else "–"
        lines.append(f"| {size} | {row['n']} | {row['found_rate']:.0%} | {auc} | {bal} |")
    (output / "face_size.md").write_text("\n".join(lines) + "\n")
    sizes = [int(size) for size in result["sizes"]]
    rows = list(result["sizes"].values())
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for key, label in (("roc_auc", "ROC AUC"), ("balanced_accuracy", "balanced accuracy"), ("found_rate", "face found")):
        axis.plot(sizes, [np.nan if row[key] is None else row[key] for row in rows], marker="o", label=label)
    axis.set_xlabel("face width in the photo (px)")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(output / "face_size.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", "--model_dir", default="models/deepfake-detector-effnet-lite0")
    parser.add_argument("--data", "--dataset", default="data/faces-dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--per_class", type=int, default=150)
    parser.add_argument("--output", "--output_dir", default="reports/face-size")
    args = parser.parse_args(argv)
    write(measure(args.model, args.data, args.split, args.per_class), Path(args.output))
    print((Path(args.output) / "face_size.md").read_text())


if __name__ == "__main__":
    main()
