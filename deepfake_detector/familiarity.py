"""Is a face like the faces the model was trained on? A face that is not is never called Real.

Issue 22 asks the detector to abstain where the evidence is unlike training: a face from a generator family the model
never saw can land on the real side of the threshold (held out, up to 22% of a family's faces did). What the head
reads (the CLIP tower's pooled features) is summarised by the training faces' mean and top principal components; a
face's distance is the Mahalanobis distance in those components, and the limit is a quantile of the validation
faces' distances (both classes). Beyond the limit the verdict Real becomes Uncertain; Fake and Uncertain stay.
Measured with each family held out (`reports/abstain/128-full/`): the worst diffusion family called Real 22% -> 9%, at
the cost of held-out everyday photos called Real 43% -> 30% (those become Uncertain).

A folder opts in with config.json `"familiarity": {"file": "familiarity.safetensors", "limit": <number>, ...}`; the
file holds `mean` (d,), `basis` (d, k) and `inverse_variance` (k,). Only that file name is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE = "familiarity.safetensors"
COMPONENTS = 32
QUANTILE = 0.95


@dataclass
class Familiarity:
    mean: np.ndarray  # (d,)
    basis: np.ndarray  # (d, k): the top principal directions of the training features
    inverse_variance: np.ndarray  # (k,)
    limit: float  # distances above it are "unlike training"

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(n,) Mahalanobis distances of features (n, d) in the principal components."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.mean):
            raise ValueError(f"features must be (n, {len(self.mean)}), got {features.shape}")
        projected = (features - self.mean) @ self.basis
        return np.sqrt((projected**2 * self.inverse_variance).sum(axis=1))

    def unlike(self, features: np.ndarray) -> np.ndarray:
        return self.distances(features) > self.limit

    @classmethod
    def fit(cls, train: np.ndarray, validation: np.ndarray, components: int = COMPONENTS, quantile: float = QUANTILE) -> "Familiarity":
        """Mean and top `components` principal directions of `train` (n, d); the limit: the `quantile` of `validation`'s distances."""
        train = np.asarray(train, dtype=np.float64)
        if len(train) <= components:
            raise ValueError(f"need more than {components} training rows, got {len(train)}")
        mean = train.mean(axis=0)
        _, singular, vt = np.linalg.svd(train - mean, full_matrices=False)
        variance = singular[:components] ** 2 / (len(train) - 1)
        model = cls(mean, vt[:components].T, 1.0 / np.maximum(variance, 1e-12), np.inf)
        model.limit = float(np.quantile(model.distances(validation), quantile))
        return model

    def save(self, folder: str | Path) -> dict:
        """Write FILE into `folder`; returns the config.json block."""
        import torch
        from safetensors.torch import save_file

        tensors = {"mean": self.mean, "basis": self.basis, "inverse_variance": self.inverse_variance}
        save_file({name: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for name, value in tensors.items()}, str(Path(folder) / FILE))
        return {"file": FILE, "limit": self.limit, "components": int(self.basis.shape[1])}


def load_familiarity(folder: Path, config: dict) -> Familiarity | None:
    """The folder's Familiarity (config.json "familiarity"), None when it has none; a malformed block is an error."""
    block = config.get("familiarity")
    if block is None:
        return None
    limit = block.get("limit") if isinstance(block, dict) else None
    if not isinstance(block, dict) or block.get("file") != FILE or isinstance(limit, bool) or not isinstance(limit, (int, float)) or not np.isfinite(limit) or limit <= 0:
        raise ValueError(f'config.json "familiarity" must be {{"file": "{FILE}", "limit": <positive number>}}, got {block!r}')
    from safetensors.numpy import load_file

    tensors = load_file(str(Path(folder) / FILE))
    mean, basis, inverse = (np.asarray(tensors.get(name), dtype=np.float64) for name in ("mean", "basis", "inverse_variance"))
    if mean.ndim != 1 or basis.shape != (len(mean), len(inverse)) or inverse.ndim != 1 or not np.isfinite(basis).all():
        raise ValueError(f"{FILE}: mean (d,), basis (d, k) and inverse_variance (k,) expected")
    return Familiarity(mean, basis, inverse, float(limit))
