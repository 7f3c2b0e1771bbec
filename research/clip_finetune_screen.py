"""A screen of the lever every frozen head pointed to: training CLIP's fifth layer (LP-FT: the head first fitted on
the frozen layer, then layer and head trained together) on the train faces and their processed copies, with or
without tying each copy's logit to its clean face's. Too slow here for six leave-one-source-out trainings (one layer
trains at about 17 faces/s on 2 cores), so one screen: SD 2.1 and every image >= 512 px are held out *together* from
the train faces, and the frozen-layer heads are scored under the same protocol.

Inputs: the faces framed at 1.75x the box (`research.app_faces` caches, "clean" and "augmented-1"); layer 4's tokens
from the smoothed int8 tower (what the app runs), computed once (kept on disk with `--tokens DIR`, resumable); layer 5
and the head in float. Train faces: `--train_faces 3000` drawn from three quarters of the people (stop 13's screen),
or `all` of them; `--epochs` passes over them at a constant learning rate (with `--checkpoint DIR` each epoch is saved and a rerun
resumes after the last one, so a larger `--epochs` continues a finished run; every epoch is scored).
Numbers: `sd21` (ROC AUC of every SD 2.1 face against the in-distribution test reals), `highres` (ROC AUC among every
>= 512-px image), `test_auc` (in-distribution test faces), `processed_auc` (1,000 faces of the other quarter of the
people, on their processed copies) and `clean_auc` (the same faces clean).

    python -m research.clip_finetune_screen                    # stop 13: ties 0 and 1
    python -m research.clip_finetune_screen --ties 0.3         # other tie strengths, added
    # stop 14, all train faces (add --tie_on features, or --no_copies --ties 0, for the other two rows)
    python -m research.clip_finetune_screen --train_faces all --epochs 1 --ties 1 \
        --tokens runs/clip-finetune/tokens --checkpoint runs/clip-finetune/all
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from tqdm import tqdm

from research import clip_probe
from research.depth_probe import fit_probe
from research.generalization import held_out_mask
from research.processing_directions import linear_map
from training.data import load_built_dataset

OUTPUT = Path(__file__).resolve().parents[1] / "reports/generalization/clip-finetune/screen.json"
ARGS = ["--dataset", "data/faces-dataset-v2", "--app_faces", "data/app-faces-v2", "--clip_weights",
        "weights/vit_base_patch16_clip_quickgelu_224.safetensors", "--crop_scale", "1.75", "--output_dir", "/tmp/unused",
        "--augmented_views", "0"]
SHAPE = (197, 768)


def tokens(runner, faces: np.ndarray, data_config: dict, path: Path | None = None, desc: str = "tokens") -> np.ndarray:
    """Layer 4's tokens (n, 197, 768) float16, one face per call (int8, as the app runs it). With `path`, kept in
    `<path>.npy` and resumed from `<path>.partial.npy` / `<path>.done` after a crash."""
    from deepfake_detector.preprocess import to_model_tensor

    if path is not None and path.with_suffix(".npy").is_file():
        return np.load(path.with_suffix(".npy"), mmap_mode="r")
    if path is None:
        out, start = np.zeros((len(faces), *SHAPE), dtype=np.float16), 0
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial, done = path.with_suffix(".partial.npy"), path.with_suffix(".done")
        start = int(done.read_text()) if done.is_file() and partial.is_file() else 0
        out = np.lib.format.open_memmap(partial, mode="r+" if start else "w+", dtype=np.float16, shape=(len(faces), *SHAPE))
    with torch.inference_mode():
        for i in tqdm(range(start, len(faces)), desc=desc, unit="face", initial=start, total=len(faces)):
            out[i] = runner.forward_features(to_model_tensor(faces[i], data_config)[None])[0].numpy()
            if path is not None and (i + 1) % 256 == 0:
                out.flush()
                done.write_text(str(i + 1))
    if path is None:
        return out
    out.flush()
    del out
    partial.replace(path.with_suffix(".npy"))
    done.unlink(missing_ok=True)
    return np.load(path.with_suffix(".npy"), mmap_mode="r")


def pooled(block, x: torch.Tensor) -> torch.Tensor:
    return block(x)[:, 1:].mean(1)


def features(block, toks: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate([pooled(block, torch.from_numpy(np.array(toks[i:i + 64])).float()).numpy() for i in range(0, len(toks), 64)])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_faces", default="3000", help="how many train faces ('all': every face of the three quarters of the people)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--ties", type=float, nargs="+", default=[0.0, 1.0], help="tie strengths lambda to train with (0: untied)")
    parser.add_argument("--tie_on", choices=["logit", "features"], default="logit",
                        help="what a copy is tied to its clean face by: the head's logit, or layer 5's mean patch token "
                             "(squared difference in units of each feature's spread over the frozen train faces, averaged)")
    parser.add_argument("--tokens", type=Path, help="folder for layer 4's tokens (float16 memmaps, ~300 KB per face)")
    parser.add_argument("--checkpoint", type=Path, help="folder for the trained layer and head after each epoch (resumes)")
    parser.add_argument("--no_copies", action="store_true", help="train layer and head on the clean faces only (no processed copies, no tie)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    if args.train_faces != "all" and not args.train_faces.isdigit():
        parser.error(f"--train_faces must be a number or 'all', got {args.train_faces!r}")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.no_copies and any(args.ties):
        parser.error("--no_copies trains without processed copies: there is nothing to tie (use --ties 0)")
    return args


def main(argv=None) -> None:
    options = parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    start = time.time()
    dataset = load_built_dataset("data/faces-dataset-v2")
    cache = Path("data/app-faces-v2")
    from research import app_faces

    faces = {s: app_faces.build(dataset[s], cache, s, "clean", 1.75) for s in ("train", "validation", "test")}
    processed = app_faces.build(dataset["train"], cache, "train", "augmented-1", 1.75)
    held = {s: np.asarray(held_out_mask(dataset[s], "sd21", ["sd21"])) | np.asarray(held_out_mask(dataset[s], "highres", [])) for s in faces}
    train = dataset["train"]
    labels, groups = np.asarray(train["label"]), np.asarray(train["group"])
    pool = np.flatnonzero(~held["train"])
    rng = np.random.default_rng(0)
    subsample_part, fold_part = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(pool, groups=groups[pool]))
    if options.train_faces == "all":
        subsample = np.sort(pool[subsample_part])
        rng.choice(pool[subsample_part], 3000, replace=False)  # the same fold as the 3,000-face screen
        suffix = f", all {len(subsample):,} faces"
    else:
        subsample = np.sort(rng.choice(pool[subsample_part], int(options.train_faces), replace=False))
        suffix = "" if options.train_faces == "3000" else f", {int(options.train_faces):,} faces"
    fold = np.sort(rng.choice(pool[fold_part], 1000, replace=False))

    args = clip_probe.build_parser().parse_args(ARGS + ["--depth", "4"])
    cache_dir = clip_probe.check_args(args)
    _, runner, _ = clip_probe.build_runner(args, dataset, cache_dir)
    data_config = clip_probe.tower_data_config(runner)
    # the rows scored: SD 2.1 and >= 512 px from every split, the in-distribution test faces
    scored = {s: np.flatnonzero(held[s]) for s in faces}
    test_in = np.flatnonzero(~held["test"])
    sets = {
        "sub": faces["train"][subsample], "sub_p": processed[subsample],
        "fold": faces["train"][fold], "fold_p": processed[fold],
        "test": faces["test"][test_in],
        **{f"held_{s}": faces[s][scored[s]] for s in faces},
    }
    size = "all" if options.train_faces == "all" else options.train_faces
    stems = {name: f"{name}-{size}" if name.startswith("sub") else name for name in sets}  # only the train faces vary
    tok = {name: tokens(runner, rows, data_config, options.tokens / stems[name] if options.tokens else None, name)
           for name, rows in sets.items()}
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

    results = json.loads(options.output.read_text()) if options.output.is_file() else {}

    def record(key: str, value: dict) -> None:
        results[key] = value
        print(key, value, flush=True)
        options.output.write_text(json.dumps(results, indent=2))

    float_tower = clip_probe.build_tower(args.clip_weights, 5, 224)
    block = float_tower.blocks[4]
    frozen = {name: features(block, values) for name, values in tok.items()}
    probes = {}
    for key, views in (("frozen layer 5, linear, clean rows", ["sub"]), ("frozen layer 5, linear, + processed rows", ["sub", "sub_p"])):
        probes[key] = probe = fit_probe(np.concatenate([frozen[v] for v in views]), np.tile(labels[subsample], len(views)))
        record(key + suffix, measure(lambda name, probe=probe: probe.decision_function(frozen[name])))
    weight, bias = linear_map(probes["frozen layer 5, linear, clean rows"])  # LP: the head starts as the clean probe
    spread = torch.from_numpy(frozen["sub"].std(0) + 1e-6).float()

    for tie in options.ties:
        on = " on features" if options.tie_on == "features" else ""
        rows = ", clean rows only" if options.no_copies else ", + processed rows"
        key = "layer 5 trained (LP-FT)" + rows + (f", tied{on} (lambda {tie:g})" if tie else "") + suffix
        trained = clip_probe.build_tower(args.clip_weights, 5, 224).blocks[4]
        head = torch.nn.Linear(768, 1)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight[None]).float())
            head.bias.fill_(bias)
        optimizer = torch.optim.AdamW([{"params": trained.parameters(), "lr": 1e-5}, {"params": head.parameters(), "lr": 1e-4}], weight_decay=0.01)
        first_epoch = 0
        run = "clean" if options.no_copies else f"tie{'-features' if on else ''}{tie:g}"
        state_path = options.checkpoint / f"{size}-{run}.pt" if options.checkpoint else None  # never another run's layer
        if state_path is not None and state_path.is_file():
            state = torch.load(state_path, weights_only=True)
            trained.load_state_dict(state["layer"])
            head.load_state_dict(state["head"])
            optimizer.load_state_dict(state["optimizer"])
            first_epoch = int(state["epoch"])
            print(f"{key}: resumed after epoch {first_epoch}", flush=True)
        y = torch.from_numpy(labels[subsample].astype(np.float32))
        class_weight = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
        for epoch in range(first_epoch, options.epochs):
            trained.train()
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch)).split(16)
            for batch in tqdm(order, desc=f"tie {tie:g} epoch {epoch + 1}", unit="batch"):
                index = np.sort(batch.numpy())  # sorted: the memmaps read forwards
                target = y[index]
                clean = pooled(trained, torch.from_numpy(np.array(tok["sub"][index])).float())
                clean_logit = head(clean).squeeze(1)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(clean_logit, target, weight=class_weight[index])
                if not options.no_copies:
                    copy = pooled(trained, torch.from_numpy(np.array(tok["sub_p"][index])).float())
                    copy_logit = head(copy).squeeze(1)
                    loss = (loss + torch.nn.functional.binary_cross_entropy_with_logits(copy_logit, target, weight=class_weight[index])) / 2
                    moved = (copy_logit - clean_logit) if options.tie_on == "logit" else (copy - clean) / spread
                    loss = loss + tie * (moved ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            print(f"{key}: epoch {epoch + 1} done at {time.time() - start:.0f} s", flush=True)
            if state_path is not None:
                state_path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"layer": trained.state_dict(), "head": head.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1}, state_path.with_suffix(".tmp"))
                state_path.with_suffix(".tmp").replace(state_path)
            trained.eval()
            tuned = {name: features(trained, values) for name, values in tok.items() if not name.startswith("sub")}
            w, b = head.weight.detach().numpy()[0], float(head.bias)
            scores = lambda name, tuned=tuned, w=w, b=b: tuned[name] @ w + b
            stop13_row = options.train_faces == "3000" and epoch + 1 == 2  # the rows stop 13 named without epochs
            record(key + ("" if stop13_row else f", {epoch + 1} epoch{'s' if epoch else ''}"), measure(scores))


if __name__ == "__main__":
    main()
