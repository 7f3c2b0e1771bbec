"""Class token vs mean patch token of CLIP layers 4, 5 and 6 under the same hold-outs (reports/generalization/clip-token-vs-mean.json).

Reads the features `research.depth_probe --clip_onnx ... --output_dir runs/depth-probe-clip` saved (each layer:
class token then mean patch token, 768 + 768) and scores each half with depth_probe's own probe. From the repo root:
    python -m research.clip_token_vs_mean
"""
import numpy as np, json
from research.depth_probe import probe_holdout, all_sources_auc, SPLITS
from research.generalization import parse_holdout, held_out_auc
from training.data import load_built_dataset
ds = load_built_dataset('data/faces-dataset-v2')
npz = {s: np.load(f'runs/depth-probe-clip/{s}.npz') for s in SPLITS}
out = {}
for layer in ('layer4', 'layer5', 'layer6'):
    for part, sl in (('cls', slice(0, 768)), ('mean', slice(768, 1536))):
        f = {s: npz[s][layer][:, sl] for s in SPLITS}
        key = f'{layer}-{part}'
        out[key] = {h: held_out_auc(probe_holdout(f, ds, *parse_holdout(h))) for h in ('sd21','ffhq','tpdne','attgan','stargan','highres')}
        out[key]['in_distribution'] = all_sources_auc(f, ds)
        print(key, {k: round(v, 3) for k, v in out[key].items()}, flush=True)
json.dump(out, open('reports/generalization/clip-token-vs-mean.json', 'w'), indent=2)
