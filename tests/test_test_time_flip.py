"""Test-time flip: a face and its mirror image get one score, and the folder's config.json turns it on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import load_detector

from conftest import BUNDLED_MODEL, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()
BUNDLED = BUNDLED_MODEL
pytestmark = needs_corpus


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    files = [sorted((FACES / folder).iterdir())[0] for folder in ("real/ffhq", "fake/stargan", "fake/sd21", "fake/tpdne")]
    return [load_rgb_array(file.read_bytes()) for file in files]


def model_folder(tmp_path: Path, flip: bool) -> Path:
    """A copy of the bundled model with test_time_flip set as asked (the bundled folder itself uses the flip)."""
    folder = tmp_path / f"model-flip-{flip}"
    shutil.copytree(BUNDLED, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"test_time_flip": flip}))
    return folder


def test_a_face_and_its_mirror_get_one_score(crops, tmp_path):
    """Exactly for the model input (the canonical face's JPEG round trip is not mirror-symmetric to the last bit)."""
    import torch

    from deepfake_detector.preprocess import eval_tensor

    plain, flipped = load_detector(model_folder(tmp_path, False)), load_detector(model_folder(tmp_path, True))
    assert not plain.test_time_flip and flipped.test_time_flip
    batch = torch.stack([eval_tensor(crop, plain.data_config) for crop in crops])
    mirrored = torch.flip(batch, dims=[3])
    assert np.allclose(flipped.fake_probabilities(batch), flipped.fake_probabilities(mirrored), atol=1e-5)
    assert not np.allclose(plain.fake_probabilities(batch), plain.fake_probabilities(mirrored), atol=1e-3)  # without it, they differ



def test_the_flip_score_is_the_mean_of_both_views(crops, tmp_path):
    import torch

    from deepfake_detector.preprocess import eval_tensor

    plain, flipped = load_detector(model_folder(tmp_path, False)), load_detector(model_folder(tmp_path, True))
    batch = torch.stack([eval_tensor(crop, plain.data_config) for crop in crops])
    expected = (plain.logits(batch) + plain.logits(torch.flip(batch, dims=[3]))) / 2
    assert np.allclose(flipped.logits(batch), expected, atol=1e-4)
