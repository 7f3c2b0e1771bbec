"""A first screen of the lever every frozen head pointed to: training CLIP's fifth layer (LP-FT: the head first fitted
on the frozen layer, then layer and head trained together) on the train faces and their processed copies, with or
without tying each copy's logit to its clean face's. Too slow here for six leave-one-source-out trainings (one layer
trains at about 17 faces/s on 2 cores), so one screen: SD 2.1 and every image >= 512 px are held out *together* from
a 3,000-face train subsample, and the frozen-layer heads are scored under the same protocol.

Inputs: the faces framed at 1.75x the box (`training.app_faces` caches, "clean" and "augmented-1"); layer 4's tokens
from the smoothed int8 tower (what the app runs), computed once here; layer 5 and the head in float.
Numbers: `sd21` (ROC AUC of every SD 2.1 face against the in-distribution test reals), `highres` (ROC AUC among every
>= 512-px image), `test_auc` (in-distribution test faces), `processed_auc` (1,000 other train faces, no person shared
with the subsample, on their processed copies) and `clean_auc` (the same faces clean).

    PYTHONPATH=. python reports/generalization/clip-finetune/screen.py            # the tie strengths 0 and 1
    PYTHONPATH=. python reports/generalization/clip-finetune/screen.py 0.3        # other tie strengths, added
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit

from training import clip_probe
from training.data import load_built_dataset
from training.depth_probe import fit_probe
from training.generalization import held_out_mask
from training.processing_directions import linear_map

OUTPUT = Path(__file__).with_name("screen.json")
ARGS = ["--dataset", "data/faces-dataset-v2", "--app_faces", "data/app-faces-v2", "--clip_weights",
        "weights/vit_base_patch16_clip_quickgelu_224.safetensors", "--crop_scale", "1.75", "--output_dir", "/tmp/unused",
        "--augmented_views", "0"]


def tokens(runner, faces: np.ndarray, data_config: dict) -> np.ndarray:
    """Layer 4's tokens (n, 197, 768) float16, one face per call (int8)."""
    from deepfake_detector.preprocess import to_model_tensor

    out = np.zeros((len(faces), 197, 768), dtype=np.float16)
    with torch.inference_mode():
        for i, face in enumerate(faces):
            out[i] = runner.forward_features(to_model_tensor(face, data_config)[None])[0].numpy()
    return out


def pooled(block, x: torch.Tensor) -> torch.Tensor:
    return block(x)[:, 1:].mean(1)


def features(block, toks: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([pooled(block, torch.from_numpy(toks[i:i + 64]).float()).numpy() for i in range(0, len(toks), 64)])


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    start = time.time()
    dataset = load_built_dataset("data/faces-dataset-v2")
    cache = Path("data/app-faces-v2")
    from training import app_faces

    faces = {s: app_faces.build(dataset[s], cache, s, "clean", 1.75) for s in ("train", "validation", "test")}
    processed = app_faces.build(dataset["train"], cache, "train", "augmented-1", 1.75)
    held = {s: np.asarray(held_out_mask(dataset[s], "sd21", ["sd21"])) | np.asarray(held_out_mask(dataset[s], "highres", [])) for s in faces}
    train = dataset["train"]
    labels, groups = np.asarray(train["label"]), np.asarray(train["group"])
    pool = np.flatnonzero(~held["train"])
    rng = np.random.default_rng(0)
    subsample_part, fold_part = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(pool, groups=groups[pool]))
    subsample = np.sort(rng.choice(pool[subsample_part], 3000, replace=False))
    fold = np.sort(rng.choice(pool[fold_part], 1000, replace=False))

    args = clip_probe.build_parser().parse_args(ARGS + ["--depth", "4"])
    cache_dir = clip_probe.check_args(args)
    _, runner, _ = clip_probe.build_runner(args, dataset, cache_dir)
    data_config = clip_probe.tower_data_config(runner)
    # the rows scored: SD 2.1 and >= 512 px from every split, the in-distribution test faces
    scored = {s: np.flatnonzero(held[s]) for s in faces}
    test_in = np.flatnonzero(~held["test"])
    tok = {
        "sub": tokens(runner, faces["train"][subsample], data_config), "sub_p": tokens(runner, processed[subsample], data_config),
        "fold": tokens(runner, faces["train"][fold], data_config), "fold_p": tokens(runner, processed[fold], data_config),
        "test": tokens(runner, faces["test"][test_in], data_config),
        **{f"held_{s}": tokens(runner, faces[s][scored[s]], data_config) for s in faces},
    }
    print(f"tokens in {time.time() - start:.0f} s", flush=True)
    test_labels = np.asarray(dataset["test"]["label"])[test_in]
    held_labels = np.concatenate([np.asarray(dataset[s]["label"])[scored[s]] for s in faces])
    held_sd21 = np.concatenate([np.asarray(dataset[s]["source"])[scored[s]] == "sd21" for s in faces])
    held_big = np.concatenate([np.asarray(held_out_mask(dataset[s], "highres", []))[scored[s]] for s in faces])

    def measure(score) -> dict:
        """score(name) -> decision values for a token set."""
        test_scores, held_scores = score("test"), np.concatenate([score(f"held_{s}") for s in faces])
        reals = test_scores[test_labels == 0]
        sd21 = held_scores[held_sd21]
        return {
            "sd21": round(float(roc_auc_score(np.r_[np.ones(len(sd21)), np.zeros(len(reals))], np.r_[sd21, reals])), 3),
            "highres": round(float(roc_auc_score(held_labels[held_big], held_scores[held_big])), 3),
            "test_auc": round(float(roc_auc_score(test_labels, test_scores)), 4),
            "clean_auc": round(float(roc_auc_score(labels[fold], score("fold"))), 4),
            "processed_auc": round(float(roc_auc_score(labels[fold], score("fold_p"))), 4),
        }

    float_tower = clip_probe.build_tower(args.clip_weights, 5, 224)
    block = float_tower.blocks[4]
    frozen = {name: features(block, values) for name, values in tok.items()}
    results = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    for key, views in (("frozen layer 5, linear, clean rows", ["sub"]), ("frozen layer 5, linear, + processed rows", ["sub", "sub_p"])):
        probe = fit_probe(np.concatenate([frozen[v] for v in views]), np.tile(labels[subsample], len(views)))
        results[key] = measure(lambda name: probe.decision_function(frozen[name]))
        print(key, results[key], flush=True)
    weight, bias = linear_map(fit_probe(frozen["sub"], labels[subsample]))  # LP: the head starts as the clean probe

    ties = [float(v) for v in sys.argv[1:]] or [0.0, 1.0]
    for tie in ties:
        key = "layer 5 trained (LP-FT), + processed rows" + (f", tied (lambda {tie:g})" if tie else "")
        trained = clip_probe.build_tower(args.clip_weights, 5, 224).blocks[4]
        head = torch.nn.Linear(768, 1)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight[None]).float())
            head.bias.fill_(bias)
        optimizer = torch.optim.AdamW([{"params": trained.parameters(), "lr": 1e-5}, {"params": head.parameters(), "lr": 1e-4}], weight_decay=0.01)
        y = torch.from_numpy(labels[subsample].astype(np.float32))
        class_weight = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
        trained.train()
        for epoch in range(2):
            for batch in torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch)).split(16):
                index = batch.numpy()
                clean_logit = head(pooled(trained, torch.from_numpy(tok["sub"][index]).float())).squeeze(1)
                copy_logit = head(pooled(trained, torch.from_numpy(tok["sub_p"][index]).float())).squeeze(1)
                loss = sum(torch.nn.functional.binary_cross_entropy_with_logits(l, y[batch], weight=class_weight[batch]) for l in (clean_logit, copy_logit)) / 2
                loss = loss + tie * ((copy_logit - clean_logit) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            print(f"{key}: epoch {epoch + 1} done at {time.time() - start:.0f} s", flush=True)
        trained.eval()
        tuned = {name: features(trained, values) for name, values in tok.items()}
        results[key] = measure(lambda name: tuned[name] @ head.weight.detach().numpy()[0] + float(head.bias))
        print(key, results[key], flush=True)
        OUTPUT.write_text(json.dumps(results, indent=2))
    OUTPUT.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
