"""Save a model folder in the layout the Hub holds and timm loads, render its card, push it.

Layers as in timm's `_hub.py`: `save_model_folder` (offline) -> `render_model_card` (pure, in
`training.model_card`) -> `push_folder` (only `create_repo` + `upload_folder`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from deepfake_detector.model import LABEL_NAMES


def save_model_folder(
    model: torch.nn.Module,
    folder: str | Path,
    *,
    threshold: float = 0.5,
    temperature: float = 1.0,
    input_size: int | None = None,
    extra_config: dict | None = None,
    model_args: dict | None = None,
    int8_net: torch.nn.Module | None = None,
    quantization: str = "dynamic-int8",
) -> Path:
    """Write `config.json` + `model.safetensors` for `model` (a timm model with 2 outputs) into `folder`.

    `input_size` overrides the model's default square input (the data config the app and evaluation use).
    `extra_config` adds keys at the root of config.json (timm ignores keys it does not know). `model_args` are the
    architecture's arguments timm needs to rebuild it (e.g. a truncated transformer's `depth`, its `img_size`).
    `int8_net` (`deepfake_detector.model.quantize_dynamic_int8(model)`): store its int8 layers' integers instead of
    their float weights and mark the folder `"quantization": "dynamic-int8"` (`deepfake_detector.int8_weights`).
    """
    from timm.models import save_for_hf

    from deepfake_detector.faces import FACE_CROP_SCALE
    from deepfake_detector.preprocess import CANONICAL_JPEG_QUALITY, CANONICAL_SIZE

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data_config = {"crop_pct": 1.0, "crop_mode": "center"}
    if input_size:
        data_config["input_size"] = (3, int(input_size), int(input_size))
    model_config = {
        "label_names": LABEL_NAMES,
        "threshold": float(threshold),
        "temperature": float(temperature),
        "canonical_size": CANONICAL_SIZE,
        "canonical_jpeg_quality": CANONICAL_JPEG_QUALITY,
        "face_crop_scale": FACE_CROP_SCALE,
        **(extra_config or {}),
        **({"quantization": quantization} if int8_net is not None else {}),
    }
    save_for_hf(model, str(folder), model_config=model_config, model_args=model_args, safe_serialization=True, data_config=data_config)
    if int8_net is not None:
        from safetensors.torch import save_file

        from deepfake_detector.int8_weights import pack

        save_sharded(pack(model, int8_net), folder)
    # save_for_hf(safe_serialization=True) writes only model.safetensors; make sure no pickle is left behind.
    (folder / "pytorch_model.bin").unlink(missing_ok=True)
    return folder


# Weights files above this are written as shards (`model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`,
# the Hub's layout for large models), so that no single file of a model folder in a git repository passes 20 MB.
MAX_SHARD_BYTES = 20 * 1024 * 1024


def save_sharded(tensors: dict, folder: Path, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """`tensors` as `model.safetensors`, or as shards of at most `max_shard_bytes` (a larger tensor alone) with the
    Hub's index file when they do not fit in one; an earlier folder's weights files are removed first."""
    from safetensors.torch import save_file

    from deepfake_detector.model import SHARD_INDEX

    for old in [folder / "model.safetensors", folder / SHARD_INDEX, *folder.glob("model-*-of-*.safetensors")]:
        old.unlink(missing_ok=True)
    shards, size = [[]], 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    if len(shards) == 1:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return [folder / "model.safetensors"]
    files, weight_map = [], {}
    for index, names in enumerate(shards, start=1):
        file = folder / f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file({name: tensors[name] for name in names}, str(file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(names, file.name)
        files.append(file)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / SHARD_INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return files


def update_config(folder: str | Path, drop: tuple[str, ...] = (), **values) -> dict:
    """Set root keys of an existing config.json (e.g. threshold and temperature after calibration); remove `drop`."""
    path = Path(folder) / "config.json"
    config = json.loads(path.read_text())
    config.update(values)
    for key in drop:
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2))
    return config


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, commit_message: str = "Upload model") -> str:
    """Upload exactly `folder` to `repo_id` on the Hub (creating the repo if needed); returns the commit URL."""
    from huggingface_hub import create_repo, upload_folder

    create_repo(repo_id, exist_ok=True, private=private)
    info = upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message, ignore_patterns=["checkpoints/*", "logs/*"])
    return str(info)
