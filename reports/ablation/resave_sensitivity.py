"""How much a re-save moves each candidate's P(fake): the behaviour tests' measures (tests/test_model_behaviour.py),
as numbers per candidate (resave_sensitivity.json). From the repo root:
    PYTHONPATH=. python reports/ablation/resave_sensitivity.py NAME=FOLDER [NAME=FOLDER ...]
"""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "tests")
from test_model_behaviour import FACES, _resave, _sample  # noqa: E402  the tests' own samples and re-save

from deepfake_detector.images import load_rgb_array  # noqa: E402
from deepfake_detector.model import load_detector  # noqa: E402
from deepfake_detector.predict import classify_crops  # noqa: E402

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
    results[name] = row
    print(name, row, flush=True)
    output.write_text(json.dumps(results, indent=2))
