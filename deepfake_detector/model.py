"""Load a detector: a timm model folder in the layout the Hugging Face Hub holds, locally or as `hf-hub:ORG/NAME[@rev]`.

The folder holds `config.json` (timm's: `architecture`, `num_classes`, `label_names`, `pretrained_cfg`; ours on
top: `threshold`, `temperature`, `canonical_size`, ...) and `model.safetensors`. Only safetensors are loaded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"
HUB_FILES = ["config.json", "model.safetensors", "metrics.json", "README.md", "*.png", "*.md"]


@dataclass
class Detector:
    """A loaded model with everything inference needs; `net` is in eval mode on the CPU."""

    net: torch.nn.Module
    config: dict
    data_config: dict
    name: str
    folder: Path
    label_names: list[str] = field(default_factory=lambda: ["real", "fake"])

    @property
    def threshold(self) -> float:
        """Decision threshold on the calibrated fake probability, fitted on validation."""
        return float(self.config.get("threshold", 0.5))

    @property
    def temperature(self) -> float:
        """Temperature that calibrates the softmax, fitted on validation."""
        return float(self.config.get("temperature", 1.0))

    @property
    def fake_index(self) -> int:
        return self.label_names.index("fake")

    def fake_probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Calibrated P(fake) for a batch of model-ready tensors of shape (b, 3, H, W)."""
        with torch.inference_mode():
            logits = self.net(batch)
        return logits_to_fake_probability(logits, self.temperature, self.fake_index)


def logits_to_fake_probability(logits: torch.Tensor, temperature: float, fake_index: int = 1) -> np.ndarray:
    """softmax(logits / T)[:, fake]: logits of shape (b, 2) -> (b,) probabilities."""
    return torch.softmax(logits.float() / temperature, dim=-1)[:, fake_index].detach().cpu().numpy()


def resolve_model_folder(model_id: str | os.PathLike) -> tuple[Path, str]:
    """(local folder, display name) for a folder path, `local-dir:PATH` or `hf-hub:ORG/NAME[@revision]`."""
    model_id = str(model_id)
    if model_id.startswith("hf-hub:"):
        from huggingface_hub import snapshot_download

        repo_id, _, revision = model_id[len("hf-hub:") :].partition("@")
        folder = snapshot_download(repo_id=repo_id, revision=revision or None, allow_patterns=HUB_FILES)
        return Path(folder), model_id
    folder = Path(model_id.removeprefix("local-dir:")).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder} is not a model folder (no config.json). Pass a folder written by training.train "
            "or hf-hub:ORG/NAME."
        )
    return folder, folder.name


def load_detector(model_id: str | os.PathLike = DEFAULT_MODEL_DIR) -> Detector:
    """Build the timm architecture named in `config.json` and load `model.safetensors` into it."""
    import timm
    from safetensors.torch import load_file

    folder, name = resolve_model_folder(model_id)
    config = json.loads((folder / "config.json").read_text())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing; only safetensors weights are loaded.")
    model_args = dict(config.get("model_args", {}))
    model_args["num_classes"] = config["num_classes"]
    net = timm.create_model(
        config["architecture"], pretrained=False, pretrained_cfg_overlay=config.get("pretrained_cfg", {}), **model_args
    )
    net.load_state_dict(load_file(weights))
    net.eval()
    data_config = timm.data.resolve_model_data_config(net)
    label_names = list(config.get("label_names", ["real", "fake"]))
    return Detector(net=net, config=config, data_config=data_config, name=config.get("model_name", name), folder=folder, label_names=label_names)
