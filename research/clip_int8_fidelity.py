"""How faithfully each int8 scheme keeps CLIP layer 3 / layer 4 mean patch tokens (reports/generalization/clip-int8/int8_fidelity.json).

For 400 app-framed test faces (`research.app_faces`, seeded sample) the five-layer float32 tower's features are the
reference; each int8 variant's features are compared per feature dimension (correlation across faces, which is what a
standardised linear probe reads): [median, 5th percentile] over the 768 dimensions. From the repo root, after
`python -m research.clip_probe ... --app_faces data/app-faces-v2` has built the face caches:
    python -m research.clip_int8_fidelity
"""
import copy
import json

import numpy as np
import torch
import torch.ao.nn.quantized.dynamic as nnqd

from deepfake_detector.model import quantize_dynamic_int8
from research.clip_probe import build_tower, layer_means, tower_data_config
from research.smooth_quant import smooth

torch.set_num_threads(2)
faces = np.load("data/app-faces-v2/test.clean.npy", mmap_mode="r")
faces = np.asarray(faces[np.sort(np.random.default_rng(0).choice(len(faces), 400, replace=False))])
calibration = np.asarray(np.load("data/app-faces-v2/train.clean.npy", mmap_mode="r")[::60][:256])
model = build_tower("weights/vit_base_patch16_clip_quickgelu_224.safetensors", 5, 224)
reference = layer_means(model, faces, batch_size=16)


def per_dimension(net) -> dict:
    values = layer_means(net, faces, batch_size=1)
    out = {}
    for layer in (3, 4):
        a, b = reference[:, layer], values[:, layer]
        c = (((a - a.mean(0)) / a.std(0)) * ((b - b.mean(0)) / b.std(0))).mean(0)
        out[f"layer{layer}"] = [round(float(np.median(c)), 4), round(float(np.percentile(c, 5)), 4)]
    return out


results = {"torch dynamic int8 (reduce_range=True, as shipped by torch)": per_dimension(quantize_dynamic_int8(model))}
forward = nnqd.Linear.forward
nnqd.Linear.forward = lambda self, x: torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)
results["torch dynamic int8, full 8-bit activations"] = per_dimension(quantize_dynamic_int8(model))  # may saturate on AVX2
nnqd.Linear.forward = forward
for alpha in (0.5, 0.75):
    smoothed = copy.deepcopy(model)
    info = smooth(smoothed, calibration, tower_data_config(smoothed), alpha=alpha)
    results[f"smoothquant alpha {alpha}, torch dynamic int8 (reduce_range=True)"] = per_dimension(quantize_dynamic_int8(smoothed)) | info
json.dump(results, open("reports/generalization/clip-int8/int8_fidelity.json", "w"), indent=2)
print(json.dumps(results, indent=2))
