"""deepfake_detector.familiarity: a face unlike the training faces is never called Real.

The arithmetic on synthetic features (the limit is the validation quantile; a far point is flagged); the folder
format (round trip, malformed blocks refused, no flip or int8 copy beside it); and the shipped default on real photos:
the same forward pass as without it, and a 1927 black-and-white group photo whose faces it flags turns from Real to
Uncertain, face by face and as a photo, while a modern colour portrait stays Real.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.familiarity import FILE, Familiarity, load_familiarity
from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import DEFAULT_MODEL_DIR, load_detector
from deepfake_detector.predict import _locate, predict

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
CNN = REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"


def test_the_limit_is_the_validation_quantile_and_a_far_point_is_unlike():
    rng = np.random.default_rng(0)
    train, validation = rng.normal(size=(2000, 16)), rng.normal(size=(1000, 16))
    model = Familiarity.fit(train, validation, components=8, quantile=0.95)
    assert np.mean(model.unlike(validation)) == pytest.approx(0.05, abs=0.002)
    assert 0.02 < np.mean(model.unlike(rng.normal(size=(2000, 16)))) < 0.09  # fresh rows of the same distribution
    assert model.unlike(np.full((1, 16), 6.0))[0] and not model.unlike(train.mean(axis=0, keepdims=True))[0]
    with pytest.raises(ValueError, match=r"\(n, 16\)"):
        model.distances(np.zeros((3, 15)))
    with pytest.raises(ValueError, match="more than 8"):
        Familiarity.fit(train[:8], validation, components=8)


def test_a_folder_round_trips_and_malformed_blocks_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    model = Familiarity.fit(rng.normal(size=(300, 6)), rng.normal(size=(100, 6)), components=4)
    block = model.save(tmp_path)
    loaded = load_familiarity(tmp_path, {"familiarity": block})
    points = rng.normal(size=(50, 6))
    assert np.allclose(loaded.distances(points), model.distances(points), rtol=1e-5) and loaded.limit == model.limit
    assert load_familiarity(tmp_path, {}) is None
    for bad in ({"file": "../elsewhere.safetensors", "limit": 3.0}, {"file": FILE, "limit": -1.0}, {"file": FILE, "limit": True},
                {"file": FILE, "limit": float("nan")}, {"file": FILE}, "familiar"):
        with pytest.raises(ValueError, match="familiarity"):
            load_familiarity(tmp_path, {"familiarity": bad})


def test_familiarity_beside_a_flipped_net_is_refused(tmp_path):
    folder = tmp_path / "cnn"
    shutil.copytree(CNN, folder, ignore=shutil.ignore_patterns("*.png", "predictions.csv"))
    config = json.loads((folder / "config.json").read_text())
    rng = np.random.default_rng(2)
    features = load_detector(CNN).net.num_features
    block = Familiarity.fit(rng.normal(size=(100, features)), rng.normal(size=(50, features)), components=4).save(folder)
    (folder / "config.json").write_text(json.dumps(config | {"test_time_flip": True, "familiarity": block}))
    with pytest.raises(ValueError, match="test_time_flip"):
        load_detector(folder)


@pytest.fixture(scope="module")
def detector():
    detector = load_detector(DEFAULT_MODEL_DIR)
    if detector.familiarity is None:
        pytest.fail(f"the default model {DEFAULT_MODEL_DIR} ships without familiarity")
    return detector


def test_the_forward_pass_is_the_same_with_and_without_it(detector):
    crops = _locate(load_rgb_array((EXAMPLES / "solvay-1927.jpg").read_bytes()), 6, detector.face_crop_scale)[1]
    logits, distances = detector.outputs_of_crops(crops)
    plain, none = dataclasses.replace(detector, familiarity=None).outputs_of_crops(crops)
    assert none is None and distances.shape == (len(crops),)
    assert np.allclose(logits, plain, atol=1e-5)


def test_faces_unlike_training_are_uncertain_not_real(detector):
    image = load_rgb_array((EXAMPLES / "solvay-1927.jpg").read_bytes())
    without = predict(image, dataclasses.replace(detector, familiarity=None))
    flagged = predict(image, detector)
    assert without.verdict == "Real" and all(face.verdict == "Real" for face in without.faces if face.judged)
    unlike = [face for face in flagged.faces if face.judged and face.unlike_training]
    assert len(unlike) >= 10 and all(face.verdict == "Uncertain" for face in unlike)
    assert flagged.verdict == "Uncertain" and flagged.faces_flagged == 0
    assert [f.fake_probability for f in flagged.faces] == [f.fake_probability for f in without.faces]  # only the verdict moves
    shown = flagged.to_json()["faces"][0]
    assert shown["unlike_training"] is True and shown["verdict"] == "Uncertain"
    portrait = predict(load_rgb_array((EXAMPLES / "grace-hopper.jpg").read_bytes()), detector)
    assert portrait.verdict == "Real" and not portrait.faces[0].unlike_training
    assert portrait.to_json()["faces"][0]["unlike_training"] is False
