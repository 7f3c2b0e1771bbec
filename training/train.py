"""Fine-tune any timm architecture on the built face dataset with Accelerate; calibrate, evaluate, save, push.

    accelerate launch -m training.train --dataset data/faces-dataset --model tf_efficientnet_lite0 \
        --pretrained_file weights/tf_efficientnet_lite0.safetensors --output_dir runs/lite0
    accelerate launch --multi_gpu --mixed_precision bf16 -m training.train --dataset ORG/faces --model convnext_tiny \
        --pretrained --output_dir runs/convnext --push_to_hub --hub_model_id ORG/deepfake-convnext

The same loop runs on CPU, one GPU and several GPUs or nodes. Classes and sources are balanced by a weighted sampler
(each label half of every epoch; within a label, sources weighted by sqrt(count)). A checkpoint is written every epoch
(and every --checkpointing_steps); --resume_from_checkpoint latest restores model, optimiser, scheduler, sampler
position and epoch. The best epoch on validation balanced accuracy is kept; every process then scores its share of
validation through the app's `predict()`, the margins are gathered (all of validation, in order), and the main process
calibrates on them (class-balanced Platt or isotonic map, threshold 0.5, Uncertain band for a stated false-fake rate:
`training.calibration`), evaluates the test split through `predict()` (with the ICIAP perturbations) and writes the
output folder in the Hub layout.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm


@dataclass
class TrainConfig:
    dataset: str
    model: str
    output_dir: str
    preset: str = "robust"
    input_size: int = 0  # 0: 128 for robust (the canonical face), 160 for seed
    pretrained: bool = False
    pretrained_file: str = ""
    epochs: int = 5
    batch_size: int = 48
    eval_batch_size: int = 64
    learning_rate: float = 6e-4
    weight_decay: float = 1e-4
    warmup_ratio: float = 0.05
    gradient_accumulation_steps: int = 1
    samples_per_epoch: int = 0  # 0: the train split's size
    max_train_samples: int = 0  # 0: all (use a few dozen for smoke tests)
    max_eval_samples: int = 0
    exclude_sources: str = ""  # comma-separated: held out of train and validation (leave-one-source-out)
    max_train_side: int = 0  # >0: images with a longer side above this are held out of train and validation
    label_smoothing: float = 0.05
    drop_rate: float = 0.2
    freeze_blocks: int = -1  # >=0: the stem and this many first blocks get no gradient (timm EfficientNet/MobileNet)
    test_time_flip: bool = False  # the model folder averages each face with its mirror image (calibrated with it on)
    channels_last: bool = False  # NHWC memory format: measured 1.5x faster training on this CPU (AVX-512) for lite0
    stop_after_training: bool = False  # write the best epoch's uncalibrated folder only: no calibration, no test run
    face_cache: str = ""  # a folder: decode every row's canonical face once and train from it (training.face_cache)
    num_workers: int = 2
    seed: int = 0
    checkpointing_steps: int = 0
    keep_checkpoints: int = 2
    resume_from_checkpoint: str = ""
    perturbations: str = "icip"
    report_to: str = "tensorboard"
    push_to_hub: bool = False
    hub_model_id: str = ""
    hub_dataset_id: str = ""  # the training data's Hub id, listed in the model card (defaults to --dataset if a Hub id)


# The README's flag convention: the other spelling of the same option (`--model` here is a timm architecture).
FLAG_ALIASES = {"dataset": ("--data",), "model": ("--architecture",), "output_dir": ("--output",)}


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in TrainConfig.__dataclass_fields__.items():
        value = default.default
        flag = f"--{name}"
        if name in ("dataset", "model", "output_dir"):
            parser.add_argument(flag, *FLAG_ALIASES[name], required=True)
        elif isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(value), default=value)
    args = parser.parse_args(argv)
    config = TrainConfig(**vars(args))
    if config.push_to_hub and not config.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id ORG/NAME")
    from training.transforms import TRAINING_PRESETS  # here, not at import: albumentations costs half a second

    if config.preset not in TRAINING_PRESETS:
        parser.error(f"--preset must be one of {', '.join(TRAINING_PRESETS)} (eval is the validation transform)")
    if config.pretrained and config.pretrained_file:
        parser.error("use either --pretrained (timm weights from the Hub) or --pretrained_file (local safetensors)")
    if not config.input_size:
        config.input_size = 160 if config.preset == "seed" else 128
    return config


def hold_out(split, config: TrainConfig):
    """Drop the held-out sources and resolutions (generalisation experiments) from a split."""
    excluded = {s.strip() for s in config.exclude_sources.split(",") if s.strip()}
    if not excluded and not config.max_train_side:
        return split
    keep = [
        i
        for i, (source, width, height) in enumerate(zip(split["source"], split["width"], split["height"]))
        if source not in excluded and (not config.max_train_side or max(width, height) <= config.max_train_side)
    ]
    return split.select(keep)


def create_model(config: TrainConfig) -> torch.nn.Module:
    """A timm model with a 2-way head; ImageNet weights from the Hub (--pretrained) or a safetensors file, which timm
    loads like its own weights (pretrained_cfg_overlay file=), dropping the ImageNet head."""
    import timm

    if config.model not in timm.list_models() and not timm.is_model(config.model):
        raise ValueError(f"Unknown timm model {config.model!r}; see timm.list_models().")
    overlay = {"file": config.pretrained_file} if config.pretrained_file else None
    try:
        model = timm.create_model(
            config.model, pretrained=config.pretrained or bool(overlay), pretrained_cfg_overlay=overlay, num_classes=2, drop_rate=config.drop_rate
        )
    except RuntimeError as error:  # a tensor of another shape
        if not overlay:
            raise
        raise ValueError(f"{config.pretrained_file} does not fit {config.model}: {error}") from None
    if overlay:
        # With the head dropped timm loads non-strictly and only logs missing or unknown tensors; a wrong file must stop.
        from safetensors import safe_open

        with safe_open(config.pretrained_file, "pt") as weights:
            names, own = set(weights.keys()), set(model.state_dict())
        if names - own:
            raise ValueError(f"{config.pretrained_file} does not fit {config.model}: unknown tensors {sorted(names - own)[:3]}")
        head = model.pretrained_cfg.get("classifier", "classifier")  # BatchNorm's step counter: torch fills it in
        missing = sorted(k for k in own - names if not k.startswith(head) and not k.endswith("num_batches_tracked"))
        if missing:
            raise ValueError(f"{config.pretrained_file} lacks tensors of {config.model}: {missing[:3]}")
    # timm's EfficientNet init draws a 2-way head from U(+-1/sqrt(2)): logits of +-20 at step 0 (measured), a loss of
    # ~4 and wrecked pretrained features in the first steps. Start the new head near zero instead.
    head = model.get_classifier()
    if isinstance(head, torch.nn.Linear):
        torch.nn.init.normal_(head.weight, std=0.01)
        torch.nn.init.zeros_(head.bias)
    return model


# Parameter-name prefixes of the stem for the architectures --freeze_blocks knows (timm EfficientNet family).
STEM_PREFIXES = ("conv_stem.", "bn1.")


def frozen_parameter_names(model: torch.nn.Module, freeze_blocks: int) -> list[str]:
    """Names of the parameters --freeze_blocks turns off: the stem and blocks[0..freeze_blocks-1]. Backward then stops
    before the high-resolution early layers, most of the CPU time (56 vs 18 images/s on lite0). Their BatchNorm
    running statistics still adapt to the new data in train mode."""
    if freeze_blocks < 0:
        return []
    if not hasattr(model, "blocks") or not hasattr(model, "conv_stem"):
        raise ValueError(f"--freeze_blocks knows timm EfficientNet/MobileNet models (conv_stem + blocks), not {type(model).__name__}")
    if freeze_blocks > len(model.blocks):
        raise ValueError(f"--freeze_blocks {freeze_blocks}: the model has only {len(model.blocks)} blocks")
    prefixes = STEM_PREFIXES + tuple(f"blocks.{i}." for i in range(freeze_blocks))
    return [name for name, _ in model.named_parameters() if name.startswith(prefixes)]


def freeze(model: torch.nn.Module, freeze_blocks: int) -> torch.nn.Module:
    """Turn off the gradients of `frozen_parameter_names`; a negative count leaves the model as it is."""
    if freeze_blocks < 0:
        return model
    frozen = set(frozen_parameter_names(model, freeze_blocks))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name not in frozen)
    return model


def training_data(config: TrainConfig, dataset, train_split, validation_split, data_config: dict):
    """(train, validation) torch datasets: from the canonical-face cache with --face_cache, else from the bytes.

    The cache holds the whole of each split (`dataset[name]`), so leave-one-source-out runs and subsets share it; the
    rows kept are found through the `cache_row` column `main` adds before selecting."""
    from training.transforms import batch_transform, make_preset

    if not config.face_cache:
        train_data = train_split.with_transform(batch_transform(make_preset(config.preset, data_config, config.input_size)))
        return train_data, validation_split.with_transform(batch_transform(make_preset("eval", data_config)))
    from training import face_cache

    sets = []
    for name, split, preset in (("train", train_split, config.preset), ("validation", validation_split, "eval")):
        faces, landmarks = face_cache.build(dataset[name], Path(config.face_cache), name)
        pipeline = make_preset(preset, data_config, config.input_size, canonical_input=True)
        sets.append(face_cache.CachedFaces(faces, landmarks, dataset[name]["label"], pipeline, rows=split["cache_row"]))
    return tuple(sets)


def data_config_for(model: torch.nn.Module, input_size: int) -> dict:
    import timm

    data_config = dict(timm.data.resolve_model_data_config(model))
    data_config["input_size"] = (3, input_size, input_size)
    return data_config


def sample_weights(labels: list[int], sources: list[str]) -> torch.Tensor:
    """Each label gets half the draws; within a label, a source's share grows with sqrt(its size)."""
    counts = Counter(zip(labels, sources))
    by_label = Counter()
    for (label, _), n in counts.items():
        by_label[label] += math.sqrt(n)
    weights = [0.5 * math.sqrt(counts[(l, s)]) / by_label[l] / counts[(l, s)] for l, s in zip(labels, sources)]
    return torch.tensor(weights, dtype=torch.double)


def collate(batch: list[dict]) -> dict:
    return {
        "pixel_values": torch.stack([item["pixel_values"] for item in batch]),
        "labels": torch.tensor([item["labels"] for item in batch]),
    }


def evaluate_logits(model, loader, accelerator) -> tuple[np.ndarray, np.ndarray]:
    """Validation logits (n, 2) and labels (n,), gathered across processes."""
    model.eval()
    all_logits, all_labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["pixel_values"])
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            all_logits.append(logits.float().cpu())
            all_labels.append(labels.cpu())
    model.train()
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


def validation_scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    fake_probability = torch.softmax(torch.as_tensor(logits), dim=-1)[:, 1].numpy()
    scores = {"balanced_accuracy": float(balanced_accuracy_score(labels, fake_probability >= 0.5))}
    scores["roc_auc"] = float(roc_auc_score(labels, fake_probability)) if len(set(labels.tolist())) == 2 else float("nan")
    return scores


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted((output_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return checkpoints[-1] if checkpoints else None


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    output_dir = Path(config.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=config.report_to if config.report_to != "none" else None,
        project_dir=str(output_dir / "logs"),
    )
    set_seed(config.seed)
    from training.data import hub_dataset_id, load_built_dataset

    dataset = load_built_dataset(config.dataset)
    config.hub_dataset_id = config.hub_dataset_id or hub_dataset_id(config.dataset) or ""  # the card lists a Hub dataset
    train_split, validation_split = (dataset[name].add_column("cache_row", list(range(len(dataset[name])))) for name in ("train", "validation"))
    train_split = hold_out(train_split, config)
    validation_split = hold_out(validation_split, config)
    if config.max_train_samples:
        train_split = train_split.shuffle(seed=config.seed).select(range(min(config.max_train_samples, len(train_split))))
    if config.max_eval_samples:
        validation_split = validation_split.shuffle(seed=config.seed).select(range(min(config.max_eval_samples, len(validation_split))))

    model = freeze(create_model(config), config.freeze_blocks)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    data_config = data_config_for(model, config.input_size)
    with accelerator.main_process_first():  # the main process builds the face cache, the others then read it
        train_data, validation_data = training_data(config, dataset, train_split, validation_split, data_config)

    weights = sample_weights(train_split["label"], train_split["source"])
    samples_per_epoch = config.samples_per_epoch or len(train_split)
    generator = torch.Generator()
    sampler = torch.utils.data.WeightedRandomSampler(weights, samples_per_epoch, replacement=True, generator=generator)
    loader_args = {"collate_fn": collate, "num_workers": config.num_workers, "persistent_workers": False}
    train_loader = torch.utils.data.DataLoader(train_data, batch_size=config.batch_size, sampler=sampler, drop_last=True, **loader_args)
    validation_loader = torch.utils.data.DataLoader(validation_data, batch_size=config.eval_batch_size, **loader_args)

    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = steps_per_epoch * config.epochs
    from transformers import get_cosine_schedule_with_warmup

    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader, validation_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, validation_loader, scheduler)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best_score": -1.0, "best_epoch": -1, "history": []}
    if config.resume_from_checkpoint:
        checkpoint = latest_checkpoint(output_dir) if config.resume_from_checkpoint == "latest" else Path(config.resume_from_checkpoint)
        if checkpoint is None or not checkpoint.is_dir():
            raise ValueError(f"No checkpoint to resume from at {config.resume_from_checkpoint} (looked in {output_dir / 'checkpoints'}).")
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / "training_state.json").read_text())
        accelerator.print(f"Resumed from {checkpoint}: epoch {state['epoch']}, step {state['step_in_epoch']} in epoch")

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "training_config.json").write_text(json.dumps(asdict(config), indent=2))
    accelerator.init_trackers("train", config={k: v for k, v in asdict(config).items() if isinstance(v, (int, float, str, bool))})
    best_path = output_dir / "checkpoints" / "best.safetensors"

    def save_checkpoint() -> None:
        accelerator.wait_for_everyone()
        path = output_dir / "checkpoints" / f"step_{state['global_step']}"
        accelerator.save_state(str(path))
        if accelerator.is_main_process:
            (path / "training_state.json").write_text(json.dumps(state, indent=2))
            for old in sorted((output_dir / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[: -config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)

    model.train()
    train_started, images_seen = time.time(), 0
    while state["epoch"] < config.epochs:
        epoch = state["epoch"]
        generator.manual_seed(config.seed * 1000 + epoch)  # the epoch's draw order depends on (seed, epoch) only
        loader = accelerator.skip_first_batches(train_loader, state["step_in_epoch"]) if state["step_in_epoch"] else train_loader
        progress = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not accelerator.is_local_main_process, initial=state["step_in_epoch"], total=len(train_loader))
        running_loss = 0.0
        for batch in progress:
            with accelerator.accumulate(model):
                pixels = batch["pixel_values"].contiguous(memory_format=torch.channels_last) if config.channels_last else batch["pixel_values"]
                logits = model(pixels)
                loss = loss_fn(logits, batch["labels"])
                accelerator.backward(loss)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state["step_in_epoch"] += 1
            state["global_step"] += 1
            images_seen += batch["labels"].shape[0] * accelerator.num_processes
            running_loss = 0.9 * running_loss + 0.1 * loss.item() if running_loss else loss.item()
            progress.set_postfix(loss=f"{running_loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=state["global_step"])
            if config.checkpointing_steps and state["global_step"] % config.checkpointing_steps == 0:
                save_checkpoint()
        logits, labels = evaluate_logits(model, validation_loader, accelerator)
        scores = validation_scores(logits, labels)
        images_per_second = images_seen / max(time.time() - train_started, 1e-9)
        accelerator.log({f"validation/{k}": v for k, v in scores.items()} | {"train/images_per_second": images_per_second}, step=state["global_step"])
        accelerator.print(f"epoch {epoch + 1}: validation {scores}, {images_per_second:.1f} train images/s")
        state["history"].append({"epoch": epoch + 1, **scores, "train_images_per_second": images_per_second})
        score = scores["balanced_accuracy"] + 1e-3 * (0 if math.isnan(scores["roc_auc"]) else scores["roc_auc"])
        if score > state["best_score"] and accelerator.is_main_process:
            from safetensors.torch import save_file

            state["best_score"], state["best_epoch"] = score, epoch + 1
            best_path.parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in accelerator.unwrap_model(model).state_dict().items()}, str(best_path))
        state["epoch"], state["step_in_epoch"] = epoch + 1, 0
        save_checkpoint()
    accelerator.end_training()

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_best_folder(config, accelerator.unwrap_model(model), best_path)
    accelerator.wait_for_everyone()
    if config.stop_after_training:
        return 0
    margins, labels = gathered_app_path_margins(output_dir, validation_split, accelerator)
    if accelerator.is_main_process:
        finish(config, margins, labels, dataset, state)
    accelerator.wait_for_everyone()
    return 0


def save_best_folder(config: TrainConfig, model, best_path: Path) -> None:
    """The best epoch's weights as the Hub-layout folder, not yet calibrated (threshold 0.5, temperature 1)."""
    from safetensors.torch import load_file

    from training.hub import save_model_folder

    model.load_state_dict(load_file(str(best_path)))
    model = model.to(memory_format=torch.contiguous_format)  # safetensors stores contiguous tensors only (--channels_last)
    output_dir = Path(config.output_dir)
    extra = {"model_name": Path(config.hub_model_id or output_dir.name).name, "preset": config.preset, "test_time_flip": config.test_time_flip}
    save_model_folder(model.cpu(), output_dir, threshold=0.5, temperature=1.0, input_size=config.input_size, extra_config=extra)


def gathered_app_path_margins(folder: Path, split, accelerator) -> tuple[np.ndarray, np.ndarray]:
    """Validation margins through `predict()` (the app's path) and labels, each process scoring its share of the
    split, gathered so that every process returns all of validation in split order. Without the gather each process
    would calibrate on 1/N of validation. Every process must call this (the gather is collective)."""
    from accelerate.utils import gather_object

    from deepfake_detector.model import load_detector
    from training.calibration import app_path_margins

    detector = load_detector(folder)
    with accelerator.split_between_processes(list(range(len(split)))) as indices:
        margins, labels = app_path_margins(detector, split.select(indices)) if indices else (np.zeros(0), np.zeros(0, dtype=int))
        mine = list(zip(indices, margins.tolist(), labels.tolist()))
    rows = sorted(gather_object(mine) if accelerator.num_processes > 1 else mine)
    if [row[0] for row in rows] != list(range(len(split))):
        raise RuntimeError(f"gathered {len(rows)} validation rows for {len(split)} images")
    return np.asarray([row[1] for row in rows]), np.asarray([row[2] for row in rows])


def finish(config: TrainConfig, margins: np.ndarray, labels: np.ndarray, dataset, state: dict) -> None:
    """Calibration on the gathered validation margins -> config.json -> test evaluation -> card -> (push). Main process."""
    from deepfake_detector.model import load_detector
    from training.calibration import calibrate, config_values
    from training.data import source_counts
    from training.evaluate import evaluate_records, records_from_dataset, write_outputs
    from training.hub import push_folder, update_config
    from training.model_card import write_model_card

    output_dir = Path(config.output_dir)
    calibration = calibrate(margins, labels)
    update_config(output_dir, **config_values(calibration))
    detector = load_detector(output_dir)
    test_split = dataset["test"]
    if config.max_eval_samples:
        test_split = test_split.shuffle(seed=config.seed).select(range(min(config.max_eval_samples, len(test_split))))
    metrics, predictions = evaluate_records(
        detector, records_from_dataset(test_split), perturbations=config.perturbations or None, data_description=f"{config.dataset} (test split)"
    )
    metrics["training"] = {
        "history": state["history"], "best_epoch": state["best_epoch"], "dataset": config.dataset, "preset": config.preset,
        "source_counts": source_counts(dataset),
    }
    metrics["calibration"] = calibration
    write_outputs(output_dir, metrics, predictions)
    write_model_card(output_dir, config=asdict(config))
    if config.push_to_hub:
        print(push_folder(output_dir, config.hub_model_id))


if __name__ == "__main__":
    sys.exit(main())
