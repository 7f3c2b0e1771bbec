"""A fused folder refitted with its CLIP tower reading another input size (issue 22's speed target).

    python -m research.refit_fused --model models/deepfake-detector-clip-cnn-fused --dataset data/faces-dataset-v3 \
        --cache data/abstain --size 128 --output runs/deepfake-detector-clip-cnn-fused-128

The shipped default reads the 128-px canonical face upsampled to CLIP's 224 px: 196 patches a face. Read at 128 px
(position embeddings resampled as timm does), the same tower sees 64 patches: about a third of the work, no pixel
lost (the canonical face has 128). Same weights (the int8 integers and scales copied), same member CNN (the integers and scales copied as stored); the head refitted as the default's was (standardised
logistic regression, C=0.01, families weighted; `research.depth_probe.fit_probe`) on the features
`research.abstain features --also_sizes SIZE` cached for the train split, then
calibrated by `training.calibration` (Platt; the everyday-photo bound if given).

Research only: nothing in `deepfake_detector/` or `training/` imports this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/deepfake-detector-clip-cnn-fused")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--cache", required=True, help="research.abstain features cache (with --also_sizes SIZE)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--C", type=float, default=0.01)
    parser.add_argument("--max_photo_false_fake", type=float, default=0.03)
    parser.add_argument("--train_cap", type=int, default=None, help="what the cache's train split was capped at (recorded)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    import torch

    from deepfake_detector.model import MEMBER_DIR, load_detector, read_safetensors
    from research.abstain import load_cache, tower_at
    from research.clip_probe import copy_member, set_linear_head
    from research.depth_probe import family_weights, fit_probe
    from research.lofo import load_table
    from research.processing_directions import linear_map
    from training import calibration
    from training.hub import save_model_folder, save_sharded

    source = Path(args.model)
    detector = load_detector(source)
    _, table = load_table(args.dataset)
    table, clip, margins, _ = load_cache(Path(args.cache), table, args.size)
    train = np.flatnonzero(table["split"] == "train")
    x = np.hstack([clip, margins[:, None]])
    weights = family_weights(table["label"][train], table["family"][train], table["source"][train])
    probe = fit_probe(x[train], table["label"][train], sample_weight=weights, C=args.C)
    weight, bias = linear_map(probe)
    net, _ = tower_at(detector, args.size)
    set_linear_head(net, weight[:-1], bias)
    config = json.loads((source / "config.json").read_text())
    keep = ("model_name", "preset", "test_time_flip", "face_crop_scale", "canonical_size", "canonical_jpeg_quality")
    output = Path(args.output)
    save_model_folder(
        net, output, input_size=args.size,
        extra_config={key: config[key] for key in keep if key in config} | {
            "model_name": output.name, "quantization": "int8-weights",
            "fusion": config["fusion"] | {"weight": float(weight[-1])}},
        model_args=config["model_args"] | {"img_size": args.size},
    )
    # The default's own int8 integers and scales (re-quantizing their float net moves 0.02% of them by one step),
    # with the resampled position embeddings and the new head.
    tensors = read_safetensors(source)
    changed = {name: value.detach().contiguous() for name, value in net.state_dict().items() if name == "pos_embed" or name.startswith("head.")}
    save_sharded(tensors | changed, output)
    copy_member(source / MEMBER_DIR, output / MEMBER_DIR)
    recipe = json.loads((source / "training_config.json").read_text()) | {
        "input_size": args.size, "C": args.C, "train_rows_fitted": int(len(train)), "member_weight": float(weight[-1]), "output_dir": str(output),
        "from_model": str(source), "refit": {"by": "research.refit_fused", "from_input_size": int(detector.data_config["input_size"][-1]), "input_size": args.size,
                                             "train_cap_per_source": args.train_cap, "max_photo_false_fake": args.max_photo_false_fake},
    }
    (output / "training_config.json").write_text(json.dumps(recipe, indent=2))
    check = load_detector(output)  # the folder computes what the probe computes, on cached faces' features
    logits = check.net.get_classifier()(torch.from_numpy(clip[train[:16]])).detach().numpy()
    expected = probe.decision_function(x[train[:16]]) - weight[-1] * margins[train[:16]]
    if not np.allclose(logits[:, 1] - logits[:, 0], expected, atol=1e-3):
        raise RuntimeError("the saved head disagrees with the fitted probe")
    calibration.main(["--model_dir", str(output), "--dataset", args.dataset, "--method", "platt",
                      *(["--max_photo_false_fake", str(args.max_photo_false_fake)] if args.max_photo_false_fake else [])])
    print(f"Wrote {output}: the tower at {args.size} px, head on {len(train)} train rows, member weight {weight[-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
