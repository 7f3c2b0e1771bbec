"""How much a re-save moves each candidate's P(fake): the behaviour tests' measures (tests/test_model_behaviour.py),
as numbers per candidate (reports/ablation/resave_sensitivity.json), and the same question on the whole test split: each of its 1,925
faces against its own copy re-saved once as JPEG 80-98 or WEBP 80-95 (`research.app_faces` "resaved-1", framed as the
candidate's `predict()` frames it), the displayed P(fake) of both. From the repo root:
    python -m research.resave_sensitivity NAME=FOLDER [NAME=FOLDER ...]
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, "tests")
from test_model_behaviour import FACES, _resave, _sample  # noqa: E402  the tests' own samples and re-save

from deepfake_detector.images import load_rgb_array  # noqa: E402
from deepfake_detector.model import load_detector  # noqa: E402
from deepfake_detector.predict import classify_crops, verdict_for  # noqa: E402
from deepfake_detector.preprocess import to_model_tensor  # noqa: E402
from research import app_faces  # noqa: E402
from training.data import load_built_dataset  # noqa: E402

test_split = load_built_dataset("data/faces-dataset-v2")["test"]


def displayed(detector, faces: np.ndarray) -> np.ndarray:
    """The calibrated P(fake) of canonical faces, in batches of 64 (an int8 folder still runs one face per call)."""
    return np.concatenate([detector.fake_probabilities(torch.stack([to_model_tensor(face, detector.data_config) for face in faces[i:i + 64]]))
                           for i in range(0, len(faces), 64)])

output = Path("reports/ablation/resave_sensitivity.json")
results = json.loads(output.read_text()) if output.is_file() else {}
for argument in sys.argv[1:]:
    name, folder = argument.split("=", 1)
    detector = load_detector(folder)
    images = [load_rgb_array(f) for f in _sample()]
    original = classify_crops(images, detector)
    row = {}
    for fmt, kwargs in (("PNG", {}), ("JPEG q90", {"quality": 90}), ("WEBP q90", {"quality": 90})):
        resaved = classify_crops([_resave(image, fmt.split()[0], **kwargs) for image in images], detector)
        row[f"{fmt}: mean |change of P(fake)| (test limit 0.05)"] = round(float(np.mean(np.abs(original - resaved))), 4)
        row[f"{fmt}: verdicts flipped (test limit 0.10)"] = round(float(np.mean((original >= detector.threshold) != (resaved >= detector.threshold))), 4)
    files = sorted((FACES / "real" / "celebahq").iterdir())[:6] + sorted((FACES / "fake" / "stylegan2").iterdir())[:6]
    pictures = [load_rgb_array(f) for f in files]
    swapped = [_resave(p, "PNG") if f.suffix == ".jpg" else _resave(p, "JPEG", quality=95) for f, p in zip(files, pictures)]
    row["1024-px PNG <-> JPEG 95 swap: max |change of P(fake)| (test limit 0.10)"] = round(float(np.abs(classify_crops(pictures, detector) - classify_crops(swapped, detector)).max()), 4)
    clean, resaved = (displayed(detector, app_faces.build(test_split, Path("data/app-faces-v2"), "test", view, detector.face_crop_scale))
                      for view in ("clean", "resaved-1"))
    change = np.abs(resaved - clean)
    row["test split, re-saved once: mean |change of P(fake)|"] = round(float(change.mean()), 4)
    row["test split, re-saved once: 99th percentile |change|"] = round(float(np.quantile(change, 0.99)), 4)
    row["test split, re-saved once: max |change|"] = round(float(change.max()), 4)
    row["test split, re-saved once: verdicts flipped"] = round(float(np.mean((clean >= detector.threshold) != (resaved >= detector.threshold))), 4)
    shown = [[verdict_for(float(p), detector.threshold, detector.band, detector.fake_band) for p in probabilities] for probabilities in (clean, resaved)]
    row["test split, re-saved once: shown Real <-> Fake"] = round(float(np.mean([{a, b} == {"Real", "Fake"} for a, b in zip(*shown)])), 4)
    results[name] = row
    print(name, row, flush=True)
    output.write_text(json.dumps(results, indent=2))
