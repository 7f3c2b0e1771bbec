"""Leave-one-source-out of linear heads on cached int8 CLIP features of app-framed faces (reports/generalization/clip-int8/heads.json).

Reads the per-layer mean patch tokens `research.clip_probe` cached (`--features_dir`, default
data/app-faces-v2/clip-features) for one quantization tag, and refits depth_probe's probe per hold-out: layer 4 (the
five-layer tower) and layer 3 (four layers), fitted on the clean train faces alone or with the processed copy
(augmented-1) too. From the repo root:
    QUANT=dynamic-int8 python -m research.clip_int8_heads          # torch's int8 as it is
    QUANT=dynamic-int8-sq0.75 python -m research.clip_int8_heads   # SmoothQuant 0.75 first
"""
import json
import os
from pathlib import Path

import numpy as np

from research.depth_probe import probe_holdout
from research.generalization import held_out_auc
from training.data import load_built_dataset

QUANT = os.environ.get("QUANT", "dynamic-int8-sq0.75")
features = Path("data/app-faces-v2/clip-features")
dataset = load_built_dataset("data/faces-dataset-v2")
load = lambda split, view: np.load(features / f"{split}.app-{view}.vit_base_patch16_clip_quickgelu_224.224px.{QUANT}.npy", mmap_mode="r")
output = Path("reports/generalization/clip-int8/heads.json")
results = json.loads(output.read_text()) if output.is_file() else {}
for layer in (4, 3):
    clean = {split: np.ascontiguousarray(load(split, "clean")[:, layer]) for split in ("train", "validation", "test")}
    processed = np.ascontiguousarray(load("train", "augmented-1")[:, layer])
    for views, extra in (("clean", []), ("clean+processed", [processed])):
        rows = [probe_holdout(clean, dataset, name, [name], extra_train=extra) for name in ("sd21", "ffhq", "tpdne", "attgan", "stargan", "highres")]
        key = f"{QUANT} layer{layer} {views}"
        results[key] = {r["holdout"]: round(held_out_auc(r), 4) for r in rows}
        results[key]["in_distribution_mean"] = round(float(np.mean([r["in_distribution_roc_auc"] for r in rows])), 4)
        print(key, results[key], flush=True)
        output.write_text(json.dumps(results, indent=2))
