"""research.smooth_quant: the float tower computes the same function after smoothing, its inputs lose their outlier
channels, and the int8 tower made from it follows the float features more closely than without smoothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import needs_corpus

from deepfake_detector.model import quantize_dynamic_int8
from research.clip_probe import build_tower, layer_means, tower_data_config
from research.smooth_quant import smooth


def per_dimension_correlation(reference: np.ndarray, other: np.ndarray) -> float:
    """Median over feature dimensions of the correlation across faces (what a standardised linear probe reads)."""
    a = (reference - reference.mean(0)) / reference.std(0)
    b = (other - other.mean(0)) / other.std(0)
    return float(np.median((a * b).mean(0)))


@pytest.fixture(scope="module")
def faces(faces_dir):
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.preprocess import canonicalize

    files = [path for folder in ("real/ffhq", "real/celeba_stargan_input", "fake/stargan", "fake/sd21")
             for path in sorted((faces_dir / folder).iterdir())[:12]]
    return np.stack([canonicalize(load_rgb_array(path.read_bytes())) for path in files])


@needs_corpus
def test_smoothing_keeps_the_float_function_and_helps_int8(clip_weights, faces):
    model = build_tower(clip_weights, 3, 128)
    reference = layer_means(model, faces, batch_size=16)[:, -1]
    plain = layer_means(quantize_dynamic_int8(model), faces, batch_size=1)[:, -1]
    smoothed = copy.deepcopy(model)
    info = smooth(smoothed, faces[::2], tower_data_config(smoothed), alpha=0.75)
    np.testing.assert_allclose(layer_means(smoothed, faces, batch_size=16)[:, -1], reference, atol=1e-4 * np.abs(reference).max())
    assert info["outlier_ratio_after"] < info["outlier_ratio_before"] / 2
    with_smoothing = layer_means(quantize_dynamic_int8(smoothed), faces, batch_size=1)[:, -1]
    assert per_dimension_correlation(reference, with_smoothing) > per_dimension_correlation(reference, plain) + 0.005


def test_alpha_outside_its_range_is_refused(tmp_path):
    from research import clip_probe

    with pytest.raises(SystemExit, match="--smooth_quant"):
        clip_probe.main(["--dataset", "x", "--app_faces", "x", "--clip_weights", __file__, "--smooth_quant", "1.5", "--output_dir", str(tmp_path)])
