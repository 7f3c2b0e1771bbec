"""Augmentation presets on real faces; the file format must not survive the eval transform."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_detector.faces import detect_faces
from deepfake_detector.images import load_rgb_array
from deepfake_detector.preprocess import eval_tensor
from training.transforms import TRAINING_PRESETS, FacialFeatureBlackout, apply_preset, feature_region, make_preset
from conftest import corpus_dir

FACES = corpus_dir()  # DFD_CORPUS, else ../shared/data/faces (tests/conftest.py)
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"needs the dev corpus at {FACES} (set DFD_CORPUS)")
DATA_CONFIG = {"input_size": (3, 128, 128), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _face(relative: str) -> tuple[np.ndarray, np.ndarray]:
    image = load_rgb_array(FACES / relative)
    face = detect_faces(image)[0]
    return image, np.asarray(face.landmarks, dtype=np.float32)


@pytest.mark.parametrize("preset, size", [("seed", 160), ("robust", 128), ("robust_heavy", 128), ("eval", 128)])
@pytest.mark.parametrize("relative", ["real/ffhq/bhunakit_r0.png", "fake/stylegan2/agegan_seed0000.png", "real/celeba/000001.jpg"])
def test_preset_output_shape_and_dtype(preset, size, relative):
    image, landmarks = _face(relative)
    tensor = apply_preset(make_preset(preset, DATA_CONFIG, size=size), image, landmarks)
    assert tensor.shape == (3, size, size) and tensor.dtype == torch.float32
    assert torch.isfinite(tensor).all() and tensor.min() >= -1.001 and tensor.max() <= 1.001


def test_blackout_blanks_the_region_around_a_landmark():
    image, landmarks = _face("real/ffhq/bhunakit_r0.png")
    out = FacialFeatureBlackout(features=("nose",), p=1.0)(image=image, landmarks=landmarks)["image"]
    x, y = landmarks[2].round().astype(int)
    assert (out[y - 2 : y + 3, x - 2 : x + 3] == 0).all()  # around the nose tip
    x0, y0, x1, y1 = feature_region(landmarks, "nose", image.shape)
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (out[outside] == image[outside]).all()  # nothing else touched
    assert image[y0:y1, x0:x1].mean() > 20  # it was not dark before


def test_blackout_without_landmarks_is_a_no_op():
    image, _ = _face("real/ffhq/bhunakit_r0.png")
    assert (FacialFeatureBlackout(p=1.0)(image=image, landmarks=np.zeros((0, 2), np.float32))["image"] == image).all()


def test_eval_preset_equals_the_apps_transform():
    """Training's `eval` preset and the app's `eval_tensor` are the same function of the pixels."""
    image, _ = _face("fake/stylegan2/agegan_seed0001.png")
    assert torch.allclose(apply_preset(make_preset("eval", DATA_CONFIG), image), eval_tensor(image, DATA_CONFIG), atol=1e-5)


def _reencode(path: Path, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("relative", ["fake/stylegan2/agegan_seed0002.png", "real/celebahq/sean_28083.jpg", "real/ffhq/bhunakit_r1.png"])
def test_png_and_jpeg_copies_look_the_same_to_the_model(relative):
    """A PNG and a JPEG (q90) copy of one face come out of the eval transform nearly identical, at 1024 px and 128 px.
    The difference is far below the difference between two different faces."""
    png = eval_tensor(load_rgb_array(_reencode(FACES / relative, "PNG")), DATA_CONFIG)
    jpeg = eval_tensor(load_rgb_array(_reencode(FACES / relative, "JPEG", quality=90)), DATA_CONFIG)
    other = eval_tensor(load_rgb_array(FACES / "real/ffhq/bhunakit_r2.png"), DATA_CONFIG)
    same = (png - jpeg).abs().mean().item()
    assert same < 0.03, same
    assert same < 0.1 * (png - other).abs().mean().item()


def _sharpness(image: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64), cv2.CV_64F).var())


def test_sharpness_does_not_survive_canonicalisation():
    """A sharpened and a blurred copy of a 1024-px face differ ~30x in high-frequency energy (what the linear probes
    learnt); after the canonical 128-px face they differ by less than 2x."""
    import cv2

    from deepfake_detector.preprocess import canonicalize

    image = load_rgb_array(FACES / "fake/stylegan2/agegan_seed0003.png")
    blurred = cv2.GaussianBlur(image, (0, 0), 1.5)
    sharpened = cv2.addWeighted(image, 1.8, blurred, -0.8, 0)
    assert _sharpness(sharpened) / _sharpness(blurred) > 10
    assert _sharpness(canonicalize(sharpened)) / _sharpness(canonicalize(blurred)) < 2


def test_training_presets_always_reencode_both_classes():
    """Every training preset ends in a JPEG compression applied with probability 1, whatever the label."""
    import albumentations as A

    for preset in TRAINING_PRESETS:
        compressions = [t for t in make_preset(preset, DATA_CONFIG).transforms if isinstance(t, A.ImageCompression)]
        assert compressions and all(t.p == 1.0 for t in compressions)


def test_robust_heavy_reaches_the_strengths_the_processing_is_evaluated_at():
    """The heavy preset's ranges cover the ICIAP table's blur, JPEG, scale and crop (the robust preset's do not): if the
    evaluation's processing grows stronger, this fails until training follows."""
    import albumentations as A

    from training.perturbations import PERTURBATION_SETS, PERTURBATIONS

    icip = [PERTURBATIONS[name] for name in PERTURBATION_SETS["icip"]]
    strongest = {
        "sigma": max(p.params["sigma"] for p in icip if "sigma" in p.params),
        "quality": min(p.params["quality"] for p in icip if "quality" in p.params),
        "factor": min(p.params["factor"] for p in icip if "factor" in p.params),
        # the smallest area a crop or the 45-degree cropped rotation keeps: 0.8^2 and 1/2
        "area": min([p.params["fraction"] ** 2 for p in icip if "fraction" in p.params] + [0.5]),
    }

    def ranges(preset: str) -> dict:
        flat = []
        for t in make_preset(preset, DATA_CONFIG, canonical_input=True).transforms:
            flat += list(t.transforms) if isinstance(t, A.OneOf) else [t]
        kind = {type(t).__name__: t for t in flat}
        return {
            "sigma": kind["GaussianBlur"].sigma_limit[1],
            "quality": kind["ImageCompression"].quality_range[0],
            "factor": kind["Downscale"].scale_range[0],
            "area": kind["RandomResizedCrop"].scale[0],
        }

    heavy, robust = ranges("robust_heavy"), ranges("robust")
    assert heavy["sigma"] >= strongest["sigma"] > robust["sigma"]
    assert heavy["quality"] <= strongest["quality"] < robust["quality"]
    assert heavy["factor"] <= strongest["factor"]
    assert heavy["area"] <= strongest["area"] < robust["area"]


def test_train_accepts_every_training_preset_and_refuses_eval(capsys):
    from training.train import parse_args

    base = ["--dataset", "d", "--model", "m", "--output_dir", "o"]
    assert [parse_args(base + ["--preset", p]).preset for p in TRAINING_PRESETS] == list(TRAINING_PRESETS)
    with pytest.raises(SystemExit):
        parse_args(base + ["--preset", "eval"])
    assert "robust_heavy" in capsys.readouterr().err


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown preset"):
        make_preset("fancy", DATA_CONFIG)


def test_preview_writes_a_png(tmp_path):
    from training.preview import render_preview

    source = tmp_path / "faces"
    for label, relative in (("real", "real/ffhq/bhunakit_r0.png"), ("fake", "fake/tpdne/bhunakit_f0.jpg")):
        (source / label / "s").mkdir(parents=True)
        (source / label / "s" / Path(relative).name).write_bytes((FACES / relative).read_bytes())
    output = render_preview(str(source), "robust", tmp_path / "p.png", per_label=1, repeats=2)
    assert Image.open(output).size[0] > 100


@pytest.mark.parametrize("preset", ["robust", "robust_heavy"])
def test_training_sees_a_png_and_its_jpeg_q75_copy_alike(preset):
    """The format shortcut of the 128-px corpus (FFHQ reals PNG, fakes JPEG q75) is gone in training too: with the same
    random draws, the robust preset turns a PNG face and its JPEG q75 copy into nearly the same tensor, much closer
    than the same PNG under two different draws."""
    png_bytes = (FACES / "real/ffhq/bhunakit_r3.png").read_bytes()
    png = load_rgb_array(png_bytes)
    jpeg = load_rgb_array(_reencode(FACES / "real/ffhq/bhunakit_r3.png", "JPEG", quality=75))
    pipeline = make_preset(preset, DATA_CONFIG)
    same_draw, other_draw = [], []
    for seed in range(12):
        pipeline.set_random_seed(seed)
        a = apply_preset(pipeline, png)
        pipeline.set_random_seed(seed)
        b = apply_preset(pipeline, jpeg)
        pipeline.set_random_seed(seed + 100)
        c = apply_preset(pipeline, png)
        same_draw.append((a - b).abs().mean().item())
        other_draw.append((a - c).abs().mean().item())
    assert np.mean(same_draw) < 0.02, np.mean(same_draw)
    assert np.mean(same_draw) < 0.2 * np.mean(other_draw)


def test_the_model_card_quotes_the_augmentation_of_the_run_s_own_preset():
    """A robust_heavy run's card must not claim robust's ranges (it did before: one sentence for every preset)."""
    import json
    from pathlib import Path

    from training.model_card import render_model_card
    from training.transforms import AUGMENTATION_SUMMARY, TRAINING_PRESETS

    assert set(AUGMENTATION_SUMMARY) == set(TRAINING_PRESETS)
    folder = Path(__file__).resolve().parents[1] / "models" / "deepfake-detector-effnet-lite0"
    metrics, config, model_config = (json.loads((folder / name).read_text()) for name in ("metrics.json", "training_config.json", "config.json"))
    heavy = render_model_card(metrics, config | {"preset": "robust_heavy"}, model_config)
    robust = render_model_card(metrics, config | {"preset": "robust"}, model_config)
    assert "JPEG quality 30-95" in heavy and "JPEG quality 40-95" not in heavy
    assert "JPEG quality 40-95" in robust and "sigma up to 3.2" not in robust
