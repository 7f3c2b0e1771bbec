"""Calibration: the displayed probability crosses 0.5 where the classes are equally likely, the operating point keeps
real faces called Fake under the stated rate, and model folders old and new load with the right probability map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_detector.model import calibrated_fake_probability, fake_margin, sigmoid
from training.calibration import (
    apply_map,
    calibrate,
    config_values,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    fit_temperature,
    operating_point,
)

from conftest import corpus_dir  # noqa: E402

FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces


def _population(seed: int = 0, n: int = 6000, keep_real: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """True log-odds z ~ N(0, 2) under equal priors and labels drawn from sigmoid(z); then 2/3 of the reals dropped,
    so the sample is 3/4 fake like the validation split while the balanced posterior is still sigmoid(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, n)
    labels = (rng.random(n) < sigmoid(z)).astype(int)
    keep = (labels == 1) | (rng.random(n) < keep_real)
    return z[keep], labels[keep]


def test_platt_recovers_a_known_scale_and_shift_and_decides_at_one_half():
    """A model over-confident by 2x and shifted by +3 (margin = 2z + 3): Platt undoes both, so the displayed
    probability is 0.5 exactly where the classes are equally likely (z = 0, margin 3); temperature cannot."""
    z, labels = _population()
    margins = 2.0 * z + 3.0
    slope, intercept = fit_platt(margins, labels)
    assert slope == pytest.approx(0.5, rel=0.1)
    assert intercept == pytest.approx(-1.5, abs=0.2)
    calibration = {"method": "platt", "slope": slope, "intercept": intercept}
    assert apply_map(calibration, np.array([3.0]))[0] == pytest.approx(0.5, abs=0.03)
    # The balanced decision at 0.5 on the displayed probability: as many errors either way as the truth allows.
    decided = apply_map(calibration, margins) >= 0.5
    truth = z >= 0
    assert np.mean(decided == truth) > 0.97
    # Temperature scaling keeps the crossing at margin 0 (z = -1.5): it calls far too many reals fake at 0.5.
    temperature = fit_temperature(np.stack([np.zeros_like(margins), margins], axis=1), labels)
    assert sigmoid(np.array([3.0]) / temperature)[0] > 0.6


def test_calibrate_block_puts_threshold_at_half_and_improves_ece():
    z, labels = _population(seed=1)
    margins = 2.0 * z + 3.0
    block = calibrate(margins, labels, method="auto")
    assert block["threshold"] == 0.5 and block["method"] in ("platt", "isotonic")
    assert block["validation_ece_after"] < 0.5 * block["validation_ece_before"]
    assert abs(block["validation_balanced_threshold_after"] - 0.5) < 0.05
    assert set(block["method_comparison_cv"]) == {"platt", "isotonic"}
    # Data drawn from a logistic model: the two-parameter map wins (or ties) out of fold, and auto keeps it.
    assert block["method"] == "platt"
    with pytest.raises(ValueError, match="one number per label"):
        calibrate(np.zeros((len(labels), 2)), labels)


def test_isotonic_map_matches_sklearn_and_is_monotonic():
    from sklearn.isotonic import IsotonicRegression

    from training.calibration import class_balanced_weights

    z, labels = _population(seed=2, n=2000)
    margins = 2.0 * z + 3.0
    knots, probabilities = fit_isotonic(margins, labels)
    assert np.all(np.diff(knots) >= 0) and np.all(np.diff(probabilities) >= 0)
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(margins, labels, sample_weight=class_balanced_weights(labels))
    grid = np.linspace(margins.min() - 1, margins.max() + 1, 101)
    ours = apply_map({"method": "isotonic", "margins": knots, "probabilities": probabilities}, grid)
    assert np.allclose(ours, reference.predict(grid), atol=1e-6)


def test_operating_point_keeps_false_fakes_under_the_rate():
    rng = np.random.default_rng(3)
    real = rng.beta(2, 5, 1000)  # real faces' displayed P(fake): mostly low, a long tail up to ~0.9
    fake = rng.beta(5, 2, 3000)
    probability, labels = np.concatenate([real, fake]), np.concatenate([np.zeros(1000), np.ones(3000)]).astype(int)
    point = operating_point(probability, labels, max_false_fake=0.05)
    band = point["uncertain_band"]
    assert point["target_met_on_validation"] and point["threshold"] == 0.5
    assert np.mean(real >= 0.5 + band) <= 0.05
    assert np.mean(real >= 0.5 + band - 0.005) > 0.05  # the narrowest such band on the grid
    assert point["validation_false_fake_rate"] == pytest.approx(np.mean(real >= 0.5 + band))
    assert point["validation_missed_fake_rate"] == pytest.approx(np.mean(fake < 0.5 - band))


def test_a_photo_bound_widens_the_band_until_the_everyday_photos_hold_it():
    rng = np.random.default_rng(5)
    portraits = rng.beta(2, 8, 900)  # well-lit portraits: low P(fake)
    photos = rng.beta(3, 4, 100)  # everyday photos: higher, the 5% bound over all reals hides them
    fake = rng.beta(8, 2, 3000)
    probability = np.concatenate([portraits, photos, fake])
    labels = np.concatenate([np.zeros(1000), np.ones(3000)]).astype(int)
    is_photo = np.concatenate([np.zeros(900), np.ones(100), np.zeros(3000)]).astype(bool)
    reals_only = operating_point(probability, labels, max_false_fake=0.05)
    with_photos = operating_point(probability, labels, max_false_fake=0.05, photos=is_photo, max_photo_false_fake=0.03)
    assert np.mean(photos >= 0.5 + reals_only["uncertain_band"]) > 0.03  # the shipped rule alone lets photos through
    assert with_photos["uncertain_band"] > reals_only["uncertain_band"] and with_photos["target_met_on_validation"]
    assert np.mean(photos >= 0.5 + with_photos["uncertain_band"]) <= 0.03
    assert np.mean(photos >= 0.5 + with_photos["uncertain_band"] - 0.005) > 0.03  # the narrowest band that holds it
    assert with_photos["validation_photo_faces"] == 100 and with_photos["max_photo_false_fake_rate"] == 0.03
    with pytest.raises(ValueError, match="everyday photos"):
        operating_point(probability, labels, photos=np.zeros(4000, dtype=bool), max_photo_false_fake=0.03)


def _photo_population(top: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, labels, photos): 900 portraits and 3000 fakes far from the cuts, and 100 everyday-photo reals,
    94 at 0.2 and six at `top`: each photo is 1% of them, so a 3% bound lets exactly three through."""
    rng = np.random.default_rng(6)
    photos = np.concatenate([np.full(94, 0.2), top])
    probability = np.concatenate([rng.uniform(0.0, 0.3, 900), photos, rng.uniform(0.7, 1.0, 3000)])
    labels = np.concatenate([np.zeros(1000), np.ones(3000)]).astype(int)
    return probability, labels, np.concatenate([np.zeros(900), np.ones(100), np.zeros(3000)]).astype(bool)


def test_asymmetric_raises_the_fake_cut_alone_to_the_lowest_that_holds_the_photo_bound():
    """Six photos above the symmetric grid's top cut (0.95): the band stays 0.45 (Real below 0.05, as it ships) and
    misses; the Fake cut must pass the fourth highest photo (0.962), so the first grid cut that holds 3% is 0.965."""
    probability, labels, photos = _photo_population([0.952, 0.957, 0.962, 0.972, 0.982, 0.992])
    symmetric = operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03)
    point = operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03, asymmetric=True)
    assert symmetric["uncertain_band"] == 0.45 and not symmetric["target_met_on_validation"] and "fake_band" not in symmetric
    assert {key: value for key, value in point.items() if key in symmetric} == symmetric  # the Real side and its record unchanged
    assert point["fake_band"] == pytest.approx(0.465) and point["fake_band_photo_target_met_on_validation"]
    assert point["validation_photo_false_fake_rate_at_fake_band"] == pytest.approx(0.03)
    assert symmetric["validation_photo_false_fake_rate"] == pytest.approx(0.06)
    real = probability[labels == 0]
    assert point["validation_false_fake_rate_at_fake_band"] == pytest.approx(np.mean(real >= 0.965)) == pytest.approx(0.003)
    fake = probability[labels == 1]
    assert point["validation_fake_uncertain_rate_at_fake_band"] == pytest.approx(np.mean((fake >= 0.05) & (fake < 0.965)))
    assert point["validation_real_uncertain_rate_at_fake_band"] == pytest.approx(np.mean((real >= 0.05) & (real < 0.965)))
    assert config_values(point)["fake_band"] == point["fake_band"] and "fake_band" not in config_values(symmetric)


def test_asymmetric_starts_at_the_symmetric_band_and_records_a_missed_bound():
    # Four photos above every cut (4% > 3%): the grid's top (Fake from 0.995), recorded as missed.
    probability, labels, photos = _photo_population([0.952, 0.957, 0.996, 0.997, 0.998, 0.999])
    point = operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03, asymmetric=True)
    assert point["fake_band"] == pytest.approx(0.495) and not point["fake_band_photo_target_met_on_validation"]
    assert point["validation_photo_false_fake_rate_at_fake_band"] == pytest.approx(0.04)
    # A symmetric band that already holds the bound: the Fake cut stays where it is (the grid starts at the band).
    probability, labels, photos = _photo_population([0.2] * 6)
    point = operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03, asymmetric=True)
    assert point["fake_band"] == point["uncertain_band"] < 0.45 and point["fake_band_photo_target_met_on_validation"]
    with pytest.raises(ValueError, match="max_photo_false_fake"):
        operating_point(probability, labels, photos=photos, asymmetric=True)


def test_a_symmetric_recalibration_removes_the_fake_band_an_asymmetric_one_wrote(tmp_path):
    from training.calibration import write_config

    (tmp_path / "config.json").write_text(json.dumps({"architecture": "x", "threshold": 0.3, "uncertain_band": 0.1}))
    probability, labels, photos = _photo_population([0.952, 0.957, 0.962, 0.972, 0.982, 0.992])
    asymmetric = operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03, asymmetric=True)
    config = write_config(tmp_path, asymmetric)
    assert json.loads((tmp_path / "config.json").read_text()) == config
    assert (config["threshold"], config["uncertain_band"], config["fake_band"]) == (0.5, 0.45, asymmetric["fake_band"])
    assert config["architecture"] == "x" and config["calibration"]["fake_band"] == config["fake_band"]
    config = write_config(tmp_path, operating_point(probability, labels, photos=photos, max_photo_false_fake=0.03))
    assert "fake_band" not in config and "fake_band" not in json.loads((tmp_path / "config.json").read_text())
    assert config["uncertain_band"] == 0.45


def test_a_missed_fake_bound_widens_the_band_until_both_rates_hold():
    rng = np.random.default_rng(4)
    real = rng.beta(2, 5, 1000)
    fake = rng.beta(3, 2, 3000)  # fakes spread lower than reals are high: the fake side needs the wider band
    probability, labels = np.concatenate([real, fake]), np.concatenate([np.zeros(1000), np.ones(3000)]).astype(int)
    reals_only = operating_point(probability, labels, max_false_fake=0.05)
    both = operating_point(probability, labels, max_false_fake=0.05, max_missed_fake=0.05)
    assert "max_missed_fake_rate" not in reals_only and both["max_missed_fake_rate"] == 0.05
    assert reals_only["validation_missed_fake_rate"] > 0.05  # the shipped rule leaves the fake side unbounded
    assert both["uncertain_band"] > reals_only["uncertain_band"] and both["target_met_on_validation"]
    assert np.mean(fake < 0.5 - both["uncertain_band"]) <= 0.05 and np.mean(real >= 0.5 + both["uncertain_band"]) <= 0.05
    assert np.mean(fake < 0.5 - both["uncertain_band"] + 0.005) > 0.05  # the narrowest band that holds both


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """The same tiny network saved twice: an old-style folder (temperature + threshold only) and a Platt one."""
    import timm

    from training.hub import save_model_folder

    torch.manual_seed(0)
    net = timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=2)
    root = tmp_path_factory.mktemp("folders")
    old = save_model_folder(net, root / "old", threshold=0.3, temperature=1.7, input_size=64)
    config = json.loads((old / "config.json").read_text())
    config.pop("uncertain_band", None)
    (old / "config.json").write_text(json.dumps(config))
    new = save_model_folder(
        net, root / "new", threshold=0.5, temperature=1.0, input_size=64,
        extra_config={"uncertain_band": 0.25, "calibration": {"method": "platt", "slope": 0.8, "intercept": -0.4}},
    )
    return old, new


def test_old_and_new_folders_load_with_their_own_probability_map(tiny_folders):
    """Backward compatibility: a folder with only temperature/threshold keeps softmax(logits / T) and the 0.1 band."""
    from deepfake_detector.model import load_detector

    old, new = (load_detector(folder) for folder in tiny_folders)
    batch = torch.randn(4, 3, 64, 64)
    logits = old.logits(batch)
    assert np.allclose(new.logits(batch), logits, atol=1e-6)
    softmax = torch.softmax(torch.as_tensor(logits) / 1.7, dim=-1)[:, 1].numpy()
    assert np.allclose(old.fake_probabilities(batch), softmax, atol=1e-6)
    assert old.threshold == 0.3 and old.band == 0.1 and old.calibration == {} and "temperature 1.700" in old.calibration_summary
    assert np.allclose(new.fake_probabilities(batch), sigmoid(0.8 * fake_margin(logits) - 0.4), atol=1e-6)
    assert new.threshold == 0.5 and new.band == 0.25 and "Platt" in new.calibration_summary
    with pytest.raises(ValueError, match="Unknown calibration method"):
        calibrated_fake_probability(logits, {"method": "histogram"})


@pytest.mark.skipif(not FACES.is_dir(), reason="needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")
def test_predict_uses_the_folders_band(tiny_folders):
    """predict() decides with the folder's threshold and band unless given others (on a real face, so it is judged)."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict, verdict_for

    detector = load_detector(tiny_folders[1])
    image = load_rgb_array(sorted((FACES / "real" / "ffhq").iterdir())[0])
    prediction = predict(image, detector)
    assert prediction.face_found
    assert prediction.uncertain_band == 0.25 and prediction.threshold == 0.5
    assert prediction.verdict == verdict_for(prediction.fake_probability, 0.5, 0.25)
    assert predict(image, detector, band=0.0).uncertain_band == 0.0


@pytest.mark.skipif(not FACES.is_dir(), reason="needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")
def test_a_real_model_with_a_known_shift_is_undone(model_dir):
    """The bundled network and a copy whose fake logit is raised by 2 (a known shift) are calibrated on the same real
    faces: after calibration both show the same probabilities and verdicts, and the copy's intercept is lower by
    2 x slope. Without calibration the shifted copy calls more faces fake at 0.5."""
    import copy

    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import crop_logits

    detector = load_detector(model_dir)
    shifted = copy.copy(detector)
    if detector.fast_net is not None:  # an int8 folder classifies with its int8 copy: shift that one's head
        shifted.fast_net = copy.deepcopy(detector.fast_net)
        classifier = shifted.fast_net.get_classifier()
    else:
        shifted.net = copy.deepcopy(detector.net)
        classifier = shifted.net.get_classifier()
    with torch.no_grad():
        classifier.bias[detector.fake_index] += 2.0
    files, labels = [], []
    for label, source in ((0, "real/ffhq"), (0, "real/celeba_stargan_input"), (1, "fake/stargan"), (1, "fake/tpdne")):
        chosen = sorted((FACES / source).iterdir())[:20]
        files += chosen
        labels += [label] * len(chosen)
    images, labels = [load_rgb_array(f) for f in files], np.asarray(labels)
    margins = fake_margin(crop_logits(images, detector))
    shifted_margins = fake_margin(crop_logits(images, shifted))
    assert np.allclose(shifted_margins, margins + 2.0, atol=1e-4)
    plain, moved = calibrate(margins, labels, method="platt"), calibrate(shifted_margins, labels, method="platt")
    assert moved["slope"] == pytest.approx(plain["slope"], rel=1e-3)
    assert moved["intercept"] == pytest.approx(plain["intercept"] - 2.0 * plain["slope"], abs=1e-3)
    assert np.allclose(apply_map(moved, shifted_margins), apply_map(plain, margins), atol=1e-4)
    assert np.mean(sigmoid(shifted_margins) >= 0.5) > np.mean(sigmoid(margins) >= 0.5)
    assert expected_calibration_error(apply_map(moved, shifted_margins), labels) < expected_calibration_error(sigmoid(shifted_margins), labels)


def test_the_bundled_model_is_calibrated_for_a_readable_probability(model_dir):
    """The shipped folder decides at 0.5 on its displayed probability with a Platt or isotonic map and a band chosen
    for the stated false-fake rate on validation."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    calibration = config["calibration"]
    assert config["threshold"] == 0.5 and calibration["method"] in ("platt", "isotonic")
    assert 0 < config["uncertain_band"] < 0.5 and config["uncertain_band"] == calibration["uncertain_band"]
    assert calibration["validation_false_fake_rate"] <= calibration["max_false_fake_rate"]


@pytest.mark.skipif(not FACES.is_dir(), reason="needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")
def test_dry_run_prints_the_operating_point_and_changes_no_file(tiny_folders, tmp_path_factory, tmp_path, capsys):
    import shutil

    from conftest import build_small_dataset

    from training import calibration

    dataset = build_small_dataset(tmp_path_factory, (("real", "ffhq"), ("fake", "stargan")), 8, "--no_detect_faces")
    folder = tmp_path / "model"
    shutil.copytree(tiny_folders[1], folder)
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    capsys.readouterr()  # the builder's own output
    assert calibration.main(["--model_dir", str(folder), "--dataset", str(dataset), "--dry_run", "--max_missed_fake", "0.05"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["max_missed_fake_rate"] == 0.05 and 0.0 <= printed["uncertain_band"] <= 0.45
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    for bad in (["--max_missed_fake", "5"], ["--max_false_fake", "-0.1"], ["--dry_run", "--evaluate"], ["--asymmetric"]):
        with pytest.raises(SystemExit):
            calibration.main(["--model_dir", str(folder), "--dataset", str(dataset), *bad])


@pytest.mark.skipif(not FACES.is_dir(), reason="needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")
def test_the_cli_writes_an_asymmetric_fake_band_and_a_symmetric_run_removes_it(tiny_folders, tmp_path_factory, tmp_path, capsys):
    """`--asymmetric` end to end on a folder copy: config.json and its calibration block get the printed fake_band,
    and the folder loads with it; re-calibrating without the flag leaves a symmetric folder (no fake_band)."""
    import shutil

    from conftest import build_small_dataset

    from deepfake_detector.model import load_detector
    from training import calibration

    # photo_facenet: four whole photos of four people, so its validation share is one everyday-photo face
    dataset = build_small_dataset(tmp_path_factory, (("real", "ffhq"), ("fake", "stargan"), ("real", "photo_facenet")), 8, "--no_detect_faces")
    folder = tmp_path / "model"
    shutil.copytree(tiny_folders[1], folder)
    capsys.readouterr()  # the builder's own output
    flags = ["--model_dir", str(folder), "--dataset", str(dataset), "--method", "platt", "--max_photo_false_fake", "0.03"]
    assert calibration.main([*flags, "--asymmetric"]) == 0
    printed = json.loads(capsys.readouterr().out)
    config = json.loads((folder / "config.json").read_text())
    assert printed["validation_photo_faces"] >= 1 and config["uncertain_band"] == printed["uncertain_band"]
    assert config["fake_band"] == config["calibration"]["fake_band"] == printed["fake_band"] >= printed["uncertain_band"]
    assert "validation_photo_false_fake_rate_at_fake_band" in config["calibration"]
    assert load_detector(folder).fake_band == printed["fake_band"]
    assert calibration.main(flags) == 0
    config = json.loads((folder / "config.json").read_text())
    assert "fake_band" not in config and "fake_band" not in config["calibration"]
    assert load_detector(folder).fake_band == config["uncertain_band"]
