"""A detector made of a frozen CLIP tower and a linear head: the recipe the CLIP probes pointed to, as a model folder.

    python -m research.clip_probe --dataset data/faces-dataset-v2 --app_faces data/app-faces-v2 \
        --clip_weights weights/vit_base_patch16_clip_quickgelu_224.safetensors --depth 5 --input_size 224 \
        --output_dir runs/clip-d5 --holdout sd21 --holdout ffhq --holdout tpdne --holdout attgan --holdout stargan --holdout highres

The tower (`research.convert_clip`) is cut after `--depth` encoder layers and reads the canonical face at
`--input_size` px (position embeddings resampled by timm). The head is a class-balanced logistic regression on the
mean patch token of the last kept layer (`--pool mean`; or the normalised class token, `--pool token`), then written
into timm's own `head` so the folder loads, explains (Grad-CAM) and calibrates like every other model.

What the head is fitted on (`--framing`):
- `app` (default): the faces `predict()` sees (`research.app_faces`: the app's detection and framing), the train split
  once as it is and `--augmented_views` more times randomly processed (mirror, rotation, blur, rescale, crop, JPEG);
  `--crop_scale` frames them wider or tighter than the default 1.45 detector boxes, and the folder's config.json says
  so (`face_crop_scale`), so that `predict()` frames uploads alike; with `--processing_directions K` the processed
  copies are not rows: they teach the K feature directions processing moves along, which the head is fitted without
  (`research.processing_directions`; still one linear head); `--resaved_views N` adds N re-saved copies (JPEG / WEBP,
  nothing else), and with `--invariance_penalty S` no copy is a row: the head pays S times more for weight along what
  the copies move (`research.invariance_penalty`; still one linear head);
- `square`: the centred squares of `training.face_cache`, once, unprocessed (how `clip-d6-160` was made).

`--quantize dynamic-int8` (default) writes `"quantization": "dynamic-int8"` into config.json: the app classifies with
int8 Linear layers (`deepfake_detector.model`), and the head is fitted on the features of that very int8 tower, one
face per call, so what was fitted is what runs. Before quantizing, `--smooth_quant` (default alpha 0.75) moves CLIP's
activation outliers into the weights (`research.smooth_quant`: same float function, int8 features far closer to it).
Mean-token features are cached per layer in `--features_dir`: a tower cut after 5 layers also gives the 4-layer
tower's features (its first four layers are the same modules, smoothed alike).

Every `--holdout` refits the head without that source and scores it as `research.generalization` does: the
leave-one-source-out numbers of this very recipe (`loso.json`, the format `research.ablation` reads). Then the usual
calibration on validation through `predict()`. Evaluate it with `training.evaluate` like any model folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from deepfake_detector.faces import FACE_CROP_SCALE
from deepfake_detector.model import FACE_CROP_SCALE_RANGE, MEMBER_DIR, QUANTIZATIONS, quantize_dynamic_int8
from research.clip_features import ARCHITECTURE
from research.depth_probe import SPLITS, family_weights, fit_probe, probe_holdout
from research.generalization import held_out_auc, parse_holdout

# What the head reads. "mean": the mean of the patch tokens of the last kept layer, no final norm (the probes' better
# half: reports/generalization/clip-token-vs-mean.json); "token": the class token after the final layer norm.
POOLS = {
    "mean": ({"global_pool": "avg", "final_norm": False, "fc_norm": False}, "mean patch token of the last kept layer"),
    "token": ({"global_pool": "token"}, "class token after the final layer norm"),
}


def build_tower(weights: str | Path, depth: int, input_size: int, pool: str = "mean"):
    """The converted CLIP tower cut after `depth` layers, at `input_size` px, pooled by `pool` (POOLS), with a fresh
    2-class head."""
    import timm

    return timm.create_model(
        ARCHITECTURE, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, num_classes=2, depth=depth,
        img_size=input_size, **POOLS[pool][0],
    ).eval()


def head_features(model, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n, D): what the head reads (timm's pre-logits) for canonical faces (n, h, w, 3) uint8, preprocessed exactly
    as at inference (`to_model_tensor` with the model's data config); `batch_size` 1 for an int8 tower."""
    import torch

    with torch.inference_mode():
        return _over_batches(model, faces, batch_size, lambda batch: model.forward_head(model.forward_features(batch), pre_logits=True).numpy())


def layer_means(model, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n, depth, D): the mean patch token (class token excluded, no norm) after every kept layer; the last one is
    what `--pool mean` reads (timm's avg pool with final_norm and fc_norm off)."""
    import torch

    outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, out: outputs.append(out[:, model.num_prefix_tokens :].mean(1))) for block in model.blocks]
    try:
        with torch.inference_mode():
            def run(batch):
                outputs.clear()
                model.forward_features(batch)
                return torch.stack(outputs, dim=1).numpy()

            return _over_batches(model, faces, batch_size, run)
    finally:
        for hook in hooks:
            hook.remove()


def tower_data_config(model) -> dict:
    """timm's data config of a tower; the registry's pretrained_cfg still says 224 px for a tower built at another
    size: the built size decides."""
    import timm

    return timm.data.resolve_model_data_config(model) | {"input_size": (3, *model.patch_embed.img_size)}


def _over_batches(model, faces: np.ndarray, batch_size: int, function) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm

    from deepfake_detector.preprocess import to_model_tensor

    data_config = tower_data_config(model)
    parts = []
    for start in tqdm(range(0, len(faces), batch_size), desc="frozen CLIP", unit="batch" if batch_size > 1 else "face", mininterval=10):
        batch = torch.stack([to_model_tensor(np.asarray(face), data_config) for face in faces[start : start + batch_size]])
        parts.append(function(batch))
    return np.concatenate(parts).astype(np.float32)


def cached_layer_means(model, faces: np.ndarray, cache: Path, stem: str, rows_digest: str, batch_size: int) -> np.ndarray:
    """`layer_means`, kept in `cache/<stem>.npy`; reused for a split with the same rows by any tower at least as deep
    (`stem` must name the weights, size and quantization: the caller's job)."""
    depth = len(model.blocks)
    path, meta = cache / f"{stem}.npy", cache / f"{stem}.json"
    if meta.is_file():
        known = json.loads(meta.read_text())
        if known["rows_digest"] == rows_digest and known["depth"] >= depth:
            return np.load(path, mmap_mode="r")[:, :depth]
    values = layer_means(model, faces, batch_size)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(cache / f"{stem}.partial.npy", values)
    (cache / f"{stem}.partial.npy").replace(path)
    meta.write_text(json.dumps({"rows_digest": rows_digest, "depth": depth, "rows": len(values)}, indent=2))
    return values


def set_head(model, probe) -> None:
    """Write a fitted StandardScaler + LogisticRegression pipeline (or a `ProjectedProbe`) into the model's 2-class
    head so that logit(fake) - logit(real) equals the probe's decision function."""
    from research.processing_directions import linear_map

    set_linear_head(model, *linear_map(probe))


def set_linear_head(model, weight: np.ndarray, bias: float) -> None:
    """The model's 2-class head such that logit(fake) - logit(real) = features @ weight + bias."""
    import torch

    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(np.stack([-weight / 2, weight / 2])).float())
        model.head.bias.copy_(torch.tensor([-bias / 2, bias / 2], dtype=torch.float32))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", "--data", required=True)
    parser.add_argument("--framing", choices=("app", "square"), default="app", help="faces as predict() frames them, or the centred squares")
    parser.add_argument("--app_faces", help="app-framed face cache folder (research.app_faces); --framing app")
    parser.add_argument("--face_cache", help="canonical-face cache folder (training.face_cache); --framing square")
    parser.add_argument("--crop_scale", type=float, default=FACE_CROP_SCALE,
                        help="--framing app: the square cropped around each detected face, in detector boxes (the app's default 1.45)")
    parser.add_argument("--augmented_views", type=int, default=1, help="randomly processed copies of the train split (--framing app)")
    parser.add_argument("--processing_directions", type=int, default=0,
                        help="with --augmented_views: remove the top-k directions processing moves the features along, and "
                             "fit the head on the clean faces only (research.processing_directions; 0: the processed copies are extra rows)")
    parser.add_argument("--resaved_views", type=int, default=0,
                        help="re-saved copies of the train split (JPEG 80-98 / WEBP 80-95; research.app_faces 'resaved-<seed>')")
    parser.add_argument("--invariance_penalty", type=float, default=0.0,
                        help="with --resaved_views or --augmented_views: fit on the clean faces only, penalising weight along what those "
                             "copies move by this strength (research.invariance_penalty; 0: the copies are extra rows)")
    parser.add_argument("--clip_weights", required=True, help="research.convert_clip's safetensors file")
    parser.add_argument("--depth", type=int, default=5, help="encoder layers kept (the probes: layers 4-7 generalise best)")
    parser.add_argument("--input_size", type=int, default=224, help="px the tower reads (CLIP's own 224; 128: the canonical face as it is)")
    parser.add_argument("--pool", choices=sorted(POOLS), default="mean", help="what the head reads (see POOLS)")
    parser.add_argument("--quantize", choices=("none", *QUANTIZATIONS), default="dynamic-int8", help="how the app runs the tower")
    parser.add_argument("--smooth_quant", type=float, default=0.75,
                        help="SmoothQuant alpha applied before int8 (research.smooth_quant; 0: none); measured: per-dimension fidelity 0.930 -> 0.981")
    parser.add_argument("--features_dir", help="where mean-token features are cached (default: the face cache folder's clip-features/)")
    parser.add_argument("--canonical_size", type=int, default=128,
                        help="px of the canonical face the tower reads (--framing app; written to config.json, so predict() frames uploads alike)")
    parser.add_argument("--canonical_jpeg_quality", type=int, default=75, help="JPEG quality of that canonical face's round trip")
    parser.add_argument("--head_weights", choices=("classes", "families"), default="classes",
                        help="how the head weighs its rows: each class alike; or, within the fakes, each generator family alike and, "
                        "within the reals, everyday photos as much as portraits (research.depth_probe.family_weights; the dataset "
                        "needs the family column of build_dataset's v3 layout)")
    parser.add_argument("--C", type=float, default=0.1, help="the head's inverse L2 strength")
    parser.add_argument("--fuse_with", help="a model folder (the CNN) whose logit margin on each face is one more input of the head: the "
                        "folder is copied in as member/ and config.json says \"fusion\" (deepfake_detector.model); the head is one "
                        "logistic regression on [CLIP features, member margin], calibrated afterwards as one")
    parser.add_argument("--output_dir", "--output", required=True)
    parser.add_argument("--holdout", action="append", default=[], help="NAME or NAME=src1,src2; 'highres' holds out >= 512 px")
    parser.add_argument("--no_calibration", action="store_true", help="leave threshold 0.5 and no calibration map")
    return parser


def check_args(args) -> Path:
    """Refuse what cannot run, before anything is loaded; the face cache folder."""
    if not 1 <= args.depth <= 12:
        raise SystemExit(f"--depth must be 1-12 (ViT-B/16 has 12 layers), got {args.depth}")
    if args.input_size % 16:
        raise SystemExit(f"--input_size must be a multiple of the 16-px patch, got {args.input_size}")
    if not Path(args.clip_weights).is_file():
        raise SystemExit(f"--clip_weights {args.clip_weights}: no such file; make it with python -m research.convert_clip --output PATH")
    folder = args.app_faces if args.framing == "app" else args.face_cache
    if not folder:
        raise SystemExit(f"--framing {args.framing} needs --{'app_faces' if args.framing == 'app' else 'face_cache'} DIR")
    if args.framing == "square" and args.augmented_views:
        raise SystemExit("--augmented_views needs --framing app (the square cache holds the rows unprocessed); pass --augmented_views 0")
    if not 0 <= args.smooth_quant < 1:
        raise SystemExit(f"--smooth_quant must be in [0, 1) (0: off), got {args.smooth_quant}")
    if args.augmented_views < 0 or args.resaved_views < 0:
        raise SystemExit(f"--augmented_views and --resaved_views must be >= 0, got {args.augmented_views} and {args.resaved_views}")
    if args.framing == "square" and args.resaved_views:
        raise SystemExit("--resaved_views needs --framing app (the square cache holds the rows as they are); pass --resaved_views 0")
    if args.processing_directions < 0 or (args.processing_directions and not args.augmented_views):
        raise SystemExit("--processing_directions K needs K >= 0 and --augmented_views >= 1 (the processed copies it learns from)")
    if not args.invariance_penalty >= 0 or (args.invariance_penalty and not (args.augmented_views or args.resaved_views)):
        raise SystemExit("--invariance_penalty S needs S >= 0 and copies to learn from (--resaved_views or --augmented_views >= 1)")
    if args.invariance_penalty and args.processing_directions:
        raise SystemExit("pass --invariance_penalty or --processing_directions, not both")
    from deepfake_detector.model import canonical_settings

    try:
        canonical_settings({"canonical_size": args.canonical_size, "canonical_jpeg_quality": args.canonical_jpeg_quality})
    except ValueError as error:
        raise SystemExit(f"--canonical_size / --canonical_jpeg_quality: {error}")
    if args.framing == "square" and (args.canonical_size, args.canonical_jpeg_quality) != (128, 75):
        raise SystemExit("--canonical_size / --canonical_jpeg_quality need --framing app")
    if args.head_weights != "classes" and (args.processing_directions or args.invariance_penalty):
        raise SystemExit("--head_weights families weighs fit_probe's rows; --processing_directions and --invariance_penalty fit their own heads")
    if args.fuse_with and (args.holdout or args.processing_directions or args.invariance_penalty or args.augmented_views or args.resaved_views):
        raise SystemExit("--fuse_with fits one head on the clean train faces: pass no --holdout, copies, directions or penalty with it")
    if args.fuse_with and not (Path(args.fuse_with) / "config.json").is_file():
        raise SystemExit(f"--fuse_with {args.fuse_with}: not a model folder (no config.json)")
    if not args.C > 0:
        raise SystemExit(f"--C must be a positive number, got {args.C}")
    if args.framing == "square" and args.crop_scale != FACE_CROP_SCALE:
        raise SystemExit("--crop_scale needs --framing app (the square cache holds centred squares, not detector crops)")
    if not FACE_CROP_SCALE_RANGE[0] <= args.crop_scale <= FACE_CROP_SCALE_RANGE[1]:
        raise SystemExit(f"--crop_scale must be from {FACE_CROP_SCALE_RANGE[0]} to {FACE_CROP_SCALE_RANGE[1]} detector boxes, got {args.crop_scale}")
    return Path(folder)


def train_views(args) -> list[str]:
    """The train split's views, clean first: `--augmented_views` processed copies, then `--resaved_views` re-saved ones."""
    return (["clean"] + [f"augmented-{k}" for k in range(1, args.augmented_views + 1)]
            + [f"resaved-{k}" for k in range(1, args.resaved_views + 1)])


def split_features(args, model, dataset, cache: Path) -> dict[str, list[np.ndarray]]:
    """Each split's head features, one array per view (train: `train_views`; the other splits: clean)."""
    return {split: [view_features(args, model, dataset, cache, split, view) for view in (train_views(args) if split == "train" else ["clean"])]
            for split in SPLITS}


def view_features(args, model, dataset, cache: Path, split: str, view: str = "clean") -> np.ndarray:
    """One view of one split through the tower `model` (the int8 one when quantized), (n, d); mean-token features are
    cached per layer in `--features_dir`."""
    from training import face_cache

    quantized = args.quantize == "dynamic-int8"
    batch_size = 1 if quantized else 64  # an int8 tower is fitted as the app runs it: one face per call
    faces = split_faces(args, dataset, cache, split, view)
    if args.pool != "mean":
        return np.ascontiguousarray(head_features(model, faces, batch_size))
    features_dir = Path(args.features_dir) if args.features_dir else cache / "clip-features"
    quantized_as = args.quantize + (f"-sq{args.smooth_quant:g}" if args.quantize != "none" and args.smooth_quant else "")
    stem = f"{split}.{framing_tag(args)}-{view}.{Path(args.clip_weights).stem}.{args.input_size}px.{quantized_as}"
    values = cached_layer_means(model, faces, features_dir, stem, face_cache.rows_digest(dataset[split]), batch_size)
    return np.ascontiguousarray(values[:, args.depth - 1])


def build_runner(args, dataset, cache: Path):
    """(the float tower, the tower that computes the features, the SmoothQuant record or {}, the int8 net whose integers
    the folder stores or None): smoothed and quantized
    as `--smooth_quant` / `--quantize` say, calibrated on every 60th clean train face (256 at most)."""
    model = build_tower(args.clip_weights, args.depth, args.input_size, args.pool)
    smoothing = {}
    if args.quantize != "none" and args.smooth_quant:
        from research.smooth_quant import smooth

        calibration_faces = np.asarray(split_faces(args, dataset, cache, "train")[::60][:256])
        smoothing = {"alpha": args.smooth_quant, "calibration_faces": len(calibration_faces),
                     **smooth(model, calibration_faces, tower_data_config(model), alpha=args.smooth_quant)}
    if args.quantize == "int8-weights":  # the float net the folder rebuilds from its stored integers computes the features
        from deepfake_detector.int8_weights import float_state_dict, pack

        int8 = quantize_dynamic_int8(model)
        model.load_state_dict(float_state_dict(pack(model, int8))[0])
        return model, model, smoothing, int8  # int8: what the folder stores (its integers are the weights just loaded)
    runner = model if args.quantize == "none" else quantize_dynamic_int8(model)
    return model, runner, smoothing, (None if args.quantize == "none" else runner)


def framing_tag(args) -> str:
    """The framing in cache names: "square", "app", or "app-x<crop_scale>" for an app framing at another scale, plus
    "-c<size>q<quality>" for a canonical face other than 128 px / q75."""
    tag = f"app-x{args.crop_scale:g}" if args.framing == "app" and args.crop_scale != FACE_CROP_SCALE else args.framing
    return tag if (args.canonical_size, args.canonical_jpeg_quality) == (128, 75) else f"{tag}-c{args.canonical_size}q{args.canonical_jpeg_quality}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cache = check_args(args)
    from training.data import load_built_dataset
    from training.hub import save_model_folder

    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    dataset = load_built_dataset(args.dataset)
    model, runner, smoothing, int8_net = build_runner(args, dataset, cache)
    views = split_features(args, runner, dataset, cache)
    features = {split: values[0] for split, values in views.items()}
    labels = np.asarray(dataset["train"]["label"])

    fit = None
    if args.processing_directions:
        from research.processing_directions import fit_projected_probe

        def fit(train_views: list[np.ndarray], train_labels: np.ndarray):
            return fit_projected_probe(train_views[0], train_views[1:], train_labels, args.processing_directions)
    elif args.invariance_penalty:
        from research.invariance_penalty import fit_penalised_probe

        def fit(train_views: list[np.ndarray], train_labels: np.ndarray):
            return fit_penalised_probe(train_views[0], train_views[1:], train_labels, args.invariance_penalty)

    loso = [probe_holdout(features, dataset, *parse_holdout(holdout), extra_train=views["train"][1:], fit=fit) for holdout in args.holdout]
    for result in loso:
        print(f"held out {result['holdout']}: ROC AUC {held_out_auc(result):.3f}", flush=True)
    member_margins = {}
    if args.fuse_with:  # the member's margin is one more column of the head's input, on the very faces the tower read
        from deepfake_detector.model import load_detector

        member = load_detector(args.fuse_with)
        member_margins = {split: member_margins_of(member, split_faces(args, dataset, cache, split)) for split in ("train", "test")}
        views["train"] = [np.hstack([views["train"][0], member_margins["train"][:, None]])]
    if fit is None:
        weights = None
        if args.head_weights == "families":
            weights = np.tile(family_weights(labels, dataset["train"]["family"], dataset["train"]["source"]), len(views["train"]))
        probe = fit_probe(np.concatenate(views["train"]), np.tile(labels, len(views["train"])), sample_weight=weights, C=args.C)
    else:
        probe = fit(views["train"], labels)
    from research.processing_directions import linear_map

    weight, bias = linear_map(probe)
    member_weight = float(weight[-1]) if args.fuse_with else 0.0
    set_linear_head(model, weight[: model.head.in_features], bias)
    name = output.name
    save_model_folder(
        model, output, input_size=args.input_size,
        extra_config={"model_name": name, "preset": "none (frozen tower, linear head)", "test_time_flip": False, "face_crop_scale": args.crop_scale,
                      "canonical_size": args.canonical_size, "canonical_jpeg_quality": args.canonical_jpeg_quality,
                      **({"fusion": {"member": MEMBER_DIR, "weight": member_weight, "member_model": Path(args.fuse_with).name}} if args.fuse_with else {})},
        model_args={"depth": args.depth, "img_size": args.input_size, **POOLS[args.pool][0]},
        int8_net=int8_net,  # the very integers the head was fitted through
        quantization=args.quantize if args.quantize != "none" else "dynamic-int8",
    )
    recipe = {
        "recipe": "clip_probe", "dataset": args.dataset, "model": ARCHITECTURE, "clip_weights": args.clip_weights,
        "depth": args.depth, "input_size": args.input_size, "head": f"research.depth_probe.fit_probe: standardised logistic regression, C={args.C:g}, rows weighted by {args.head_weights}",
        "head_weights": args.head_weights, "C": args.C,
        "pool": args.pool, "features": POOLS[args.pool][1], "framing": args.framing, "crop_scale": args.crop_scale, "augmented_views": args.augmented_views,
        "resaved_views": args.resaved_views, "processing_directions": args.processing_directions, "invariance_penalty": args.invariance_penalty, "quantize": args.quantize, "smooth_quant": smoothing or None, "train_images": int(len(labels)), "train_rows_fitted": int(len(labels) * (1 if fit else len(views["train"]))),
        "output_dir": str(output),
    }
    if args.fuse_with:
        copy_member(Path(args.fuse_with), output / MEMBER_DIR)
        recipe |= {"fuse_with": args.fuse_with, "member_weight": member_weight}
    (output / "training_config.json").write_text(json.dumps(recipe, indent=2))
    (output / "loso.json").write_text(json.dumps(loso, indent=2))
    test_features = views["test"][0][:32]
    if args.fuse_with:  # the folder's own net computes the CLIP part; the member's weighted margin is added at inference
        test_features = np.hstack([test_features, member_margins["test"][:32, None]])
    verify_saved_head(output, probe, test_features, split_faces(args, dataset, cache, "test")[:32],
                      offset=member_weight * member_margins["test"][:32] if args.fuse_with else 0.0)
    if not args.no_calibration:
        from training import calibration

        calibration.main(["--model_dir", str(output), "--dataset", args.dataset])
    print(f"Wrote {output}: {args.depth} CLIP layers at {args.input_size} px + linear head")
    return 0


def split_faces(args, dataset, cache: Path, split: str, view: str = "clean") -> np.ndarray:
    """A split's canonical faces as `--framing` frames them ((n, 128, 128, 3) uint8; `view` for the app framing)."""
    from research import app_faces
    from training import face_cache

    if args.framing == "app":
        return app_faces.build(dataset[split], cache, split, view, args.crop_scale, args.canonical_size, args.canonical_jpeg_quality)
    return face_cache.build(dataset[split], cache, split)[0]


def member_margins_of(member, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """(n,): a model's logit margin on canonical faces, preprocessed as at inference (its own flip included)."""
    import torch

    from deepfake_detector.model import fake_margin
    from deepfake_detector.preprocess import to_model_tensor

    parts = []
    for start in range(0, len(faces), batch_size):
        batch = torch.stack([to_model_tensor(np.asarray(face), member.data_config) for face in faces[start : start + batch_size]])
        parts.append(fake_margin(member.logits(batch), member.fake_index))
    return np.concatenate(parts).astype(np.float32)


def copy_member(source: Path, destination: Path) -> None:
    """The member's config.json and weights (one file or shards), nothing else: what loading it needs."""
    import shutil

    from deepfake_detector.model import SHARD_INDEX

    destination.mkdir(parents=True, exist_ok=True)
    for file in [source / "config.json", source / "model.safetensors", source / SHARD_INDEX, *source.glob("model-*-of-*.safetensors")]:
        if file.is_file():
            shutil.copyfile(file, destination / file.name)


def verify_saved_head(output: Path, probe, features: np.ndarray, faces: np.ndarray, offset=0.0) -> None:
    """The folder must compute what the probe computes: the saved head, reloaded (and quantized as config.json says),
    on the same faces, against the fitted pipeline on their features."""
    import torch

    from deepfake_detector.model import fake_margin, load_detector
    from deepfake_detector.preprocess import to_model_tensor

    detector = load_detector(output)
    batch = torch.stack([to_model_tensor(np.asarray(face), detector.data_config) for face in faces])
    margins = fake_margin(detector.logits(batch), detector.fake_index)
    expected = probe.decision_function(features) - offset
    if not np.allclose(margins, expected, atol=1e-3 * max(1.0, float(np.abs(expected).max()))):
        raise RuntimeError(f"the saved head disagrees with the fitted probe: {margins[:4]} vs {expected[:4]}")


if __name__ == "__main__":
    sys.exit(main())
