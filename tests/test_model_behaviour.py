"""Behavioural tests of the bundled default model on real faces: what a user does to a photo must not flip it.

These run the real model (models/deepfake-detector-effnet-lite0) on real images of the dev corpus's test split
sources; they check invariances and the format shortcut, not accuracy (that is training.evaluate's job)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_detector.images import load_rgb_array
from deepfake_detector.predict import classify_crops
from conftest import corpus_dir

FACES = corpus_dir()  # DFD_CORPUS, else ../shared/data/faces (tests/conftest.py)
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"needs the dev corpus at {FACES} (set DFD_CORPUS)")


@pytest.fixture(scope="module")
def detector(model_dir):
    from deepfake_detector.model import load_detector

    return load_detector(model_dir)


def _sample(n_per_source: int = 6) -> list[Path]:
    files = []
    for source in ("real/ffhq", "real/celeba_stargan_input", "fake/stargan", "fake/tpdne", "fake/attgan"):
        files += sorted((FACES / source).iterdir())[-n_per_source:]
    return files


def _resave(image: np.ndarray, fmt: str, **kwargs) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, **kwargs)
    return load_rgb_array(buffer.getvalue())


def test_horizontal_flip_does_not_change_the_verdict(detector):
    images = [load_rgb_array(f) for f in _sample()]
    original = classify_crops(images, detector)
    flipped = classify_crops([np.ascontiguousarray(image[:, ::-1]) for image in images], detector)
    flips = np.mean((original >= detector.threshold) != (flipped >= detector.threshold))
    assert flips <= 0.15, flips
    assert np.mean(np.abs(original - flipped)) < 0.1


@pytest.mark.parametrize("fmt, kwargs", [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"quality": 90})])
def test_resaving_in_another_format_does_not_flip_it(detector, fmt, kwargs):
    images = [load_rgb_array(f) for f in _sample()]
    original = classify_crops(images, detector)
    resaved = classify_crops([_resave(image, fmt, **kwargs) for image in images], detector)
    assert np.mean((original >= detector.threshold) != (resaved >= detector.threshold)) <= 0.1
    assert np.mean(np.abs(original - resaved)) < 0.05


def test_high_resolution_format_swap_does_not_move_the_score(detector):
    """The 1024-px shortcut (CelebA-HQ reals JPEG, StyleGAN fakes PNG) must not drive the score: swapping the
    format of each file (JPEG -> PNG, PNG -> JPEG q95) leaves P(fake) where it was."""
    files = sorted((FACES / "real" / "celebahq").iterdir())[:6] + sorted((FACES / "fake" / "stylegan2").iterdir())[:6]
    images = [load_rgb_array(f) for f in files]
    swapped = [_resave(image, "PNG") if f.suffix == ".jpg" else _resave(image, "JPEG", quality=95) for f, image in zip(files, images)]
    difference = np.abs(classify_crops(images, detector) - classify_crops(swapped, detector))
    assert difference.max() < 0.1, difference


def test_probabilities_are_calibrated_probabilities(detector):
    images = [load_rgb_array(f) for f in _sample(2)]
    probabilities = classify_crops(images, detector)
    assert probabilities.shape == (len(images),)
    assert np.all((probabilities >= 0) & (probabilities <= 1)) and np.isfinite(probabilities).all()
    assert 0 < detector.threshold < 1 and detector.temperature > 0
