"""Fine-tune an existing model folder with its stem and first blocks frozen: the CPU-affordable recipe.

    accelerate launch -m research.finetune --init_from models/deepfake-detector-effnet-lite0 --freeze_blocks 2 \
        --source_boost sd21=3 -- --dataset data/faces-dataset-v2 --model tf_efficientnet_lite0 --output_dir runs/ft

Everything after `--` goes to `training.train` (same loop, sampler, checkpoints, calibration, test evaluation, model
folder). This wrapper only changes where the weights come from and what is trained:

- `--init_from FOLDER`: all weights, the 2-way head included, from FOLDER/model.safetensors (strict: every tensor
  must fit). `training.train --pretrained_file` is for ImageNet backbones and re-initialises the head.
- `--freeze_blocks N`: the stem (conv_stem, bn1) and blocks[0..N-1] get no gradient; backward stops before the
  high-resolution early layers, which is most of the CPU time (measured elsewhere: 56 vs 18 images/s on lite0).
  Their BatchNorm running statistics still adapt to the new data in train mode.
- `--source_boost SOURCE=FACTOR` (repeatable; `photo_*` matches every photo source): multiplies a source's share of
  its label's draws in `training.train`'s sampler (each label still gets half the draws).

The wrapper's own settings are added to the run's training_config.json (key `finetune`), so the recipe is read back
from one file.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

import torch

from training import train


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise ValueError("Put training.train's flags after `--`, e.g. `... --freeze_blocks 2 -- --dataset DIR --model NAME --output_dir DIR`.")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init_from", required=True, help="model folder (config.json + model.safetensors) to start from")
    parser.add_argument("--freeze_blocks", type=int, default=2, help="freeze the stem and this many first blocks (0: stem only, -1: nothing)")
    parser.add_argument("--source_boost", action="append", default=[], help="SOURCE=FACTOR, repeatable; glob patterns allowed")
    args = parser.parse_args(argv[:split])
    args.boosts = {}
    for item in args.source_boost:
        source, _, factor = item.partition("=")
        try:
            args.boosts[source] = float(factor)
        except ValueError:
            raise ValueError(f"--source_boost {item!r}: expected SOURCE=FACTOR, e.g. sd21=3") from None
        if args.boosts[source] <= 0:
            raise ValueError(f"--source_boost {item!r}: the factor must be positive")
    return args, argv[split + 1 :]


def load_and_freeze(config: train.TrainConfig, init_from: Path, freeze_blocks: int) -> torch.nn.Module:
    """The architecture of `config.model` with every weight of `init_from` (timm's `local-dir:`, strict; `main` has
    checked that model.safetensors is there), early layers frozen."""
    import timm

    folder_config = json.loads((init_from / "config.json").read_text())
    if folder_config.get("architecture") != config.model:
        raise ValueError(f"--init_from {init_from} holds {folder_config.get('architecture')!r}, but --model is {config.model!r}")
    model = timm.create_model(f"local-dir:{init_from}", pretrained=True, drop_rate=config.drop_rate)
    return train.freeze(model, freeze_blocks)


def boosted_sample_weights(boosts: dict[str, float], sample_weights=train.sample_weights):
    """`sample_weights` (training.train's) with some sources' shares multiplied, renormalised so each label keeps half
    the draws."""

    def weights(labels: list[int], sources: list[str]) -> torch.Tensor:
        base = sample_weights(labels, sources)
        factor = torch.tensor(
            [next((f for pattern, f in boosts.items() if fnmatch.fnmatch(s, pattern)), 1.0) for s in sources], dtype=torch.double
        )
        boosted = base * factor
        labels_tensor = torch.tensor(labels)
        for label in labels_tensor.unique():
            mask = labels_tensor == label
            boosted[mask] *= base[mask].sum() / boosted[mask].sum()
        return boosted

    return weights


def main(argv: list[str] | None = None) -> int:
    args, train_argv = parse_args(list(sys.argv[1:] if argv is None else argv))
    init_from = Path(args.init_from)
    if not (init_from / "model.safetensors").is_file():
        raise ValueError(f"--init_from {init_from} has no model.safetensors")
    config_probe = train.parse_args(train_argv)
    if config_probe.pretrained or config_probe.pretrained_file:
        raise ValueError("--init_from replaces --pretrained/--pretrained_file; give only one source of weights")
    recipe = {
        "launcher": "research.finetune",
        "init_from": str(init_from),
        "freeze_blocks": args.freeze_blocks,
        "source_boost": args.boosts,
        "train_argv": train_argv,
    }
    # training.train builds its model and sampler through these two module functions; route them through ours.
    train.create_model = lambda config: load_and_freeze(config, init_from, args.freeze_blocks)
    if args.boosts:
        train.sample_weights = boosted_sample_weights(args.boosts)
    output_dir = Path(config_probe.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "finetune_config.json").write_text(json.dumps(recipe, indent=2))
    status = train.main(train_argv)
    config_path = output_dir / "training_config.json"
    if config_path.is_file():
        merged = json.loads(config_path.read_text()) | {"finetune": recipe}
        config_path.write_text(json.dumps(merged, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
