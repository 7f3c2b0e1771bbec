"""training.evaluate and training.perturbations on real face images from ../shared/data/faces.

The model is a random-init tf_efficientnet_lite0 (it tests the evaluator's mechanics, not accuracy);
its threshold is set to the median clean probability through predict() so both classes get predicted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from conftest import corpus_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces
SOURCES = {"real/ffhq": 3, "real/celeba_stargan_input": 3, "fake/stargan": 3, "fake/tpdne": 3}

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"needs the shared face images at {FACES}")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """6 real + 6 fake images copied (never into the repo) plus a truncated JPEG and a text file named .jpg."""
    root = tmp_path_factory.mktemp("faces")
    for sub, count in SOURCES.items():
        (root / sub).mkdir(parents=True)
        for file in sorted((FACES / sub).iterdir())[:count]:
            shutil.copy(file, root / sub / file.name)
    jpeg = next(f for f in sorted((FACES / "fake/tpdne").iterdir()) if f.suffix == ".jpg").read_bytes()
    (root / "fake/tpdne/truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "real/not_an_image.jpg").write_text("this is text, not a JPEG")
    (root / "real/ffhq/notes.txt").write_text("ignored: not an image extension")
    return root


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, image_folder) -> Path:
    import timm
    import torch

    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict
    from training.hub import save_model_folder, update_config

    torch.manual_seed(0)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=2)
    with torch.no_grad():  # random-init logits are huge (P(fake) saturates at 1.0); shrink them so scores differ
        net.get_classifier().weight.mul_(0.01)
        net.get_classifier().bias.zero_()
    folder = save_model_folder(net, tmp_path_factory.mktemp("model") / "random-lite0", threshold=0.5, temperature=1.0, input_size=128)
    images = [load_rgb_array(f) for sub in SOURCES for f in sorted((image_folder / sub).glob("*")) if f.name != "truncated.jpg" and f.suffix != ".txt"]
    detector = load_detector(folder)
    probabilities = np.sort([predict(image, detector).fake_probability for image in images])
    assert len(images) == 12 and probabilities[5] < probabilities[6] < probabilities[7], probabilities
    # Between the 6th and 7th probability: both classes predicted, no probability sits on the threshold; a band
    # narrower than the gap to the neighbours on either side, so Real, Fake and (maybe) Uncertain all occur. The Fake
    # cut raised alone (fake_band) to between the 7th and 8th: the 7th, Fake at the symmetric cut, is Uncertain.
    threshold = float((probabilities[5] + probabilities[6]) / 2)
    fake_band = float((probabilities[6] + probabilities[7]) / 2) - threshold
    assert fake_band < 0.5, probabilities
    update_config(folder, threshold=threshold, uncertain_band=float((probabilities[6] - probabilities[5]) / 4), fake_band=fake_band)
    return folder


@pytest.fixture(scope="module")
def icip_run(model_folder, image_folder, tmp_path_factory):
    """One in-process CLI run with every perturbation; returns its output folder."""
    from training.evaluate import main

    output = tmp_path_factory.mktemp("eval")
    assert main(["--model", str(model_folder), "--data", str(image_folder), "--output", str(output), "--perturbations", "icip", "--batch_size", "8"]) == 0
    return output


def _check_block(block: dict, frame: pd.DataFrame) -> None:
    """A metrics block equals scikit-learn recomputed from predictions.csv rows."""
    labels = (frame["label"] == "fake").astype(int).to_numpy()
    predicted = (frame["predicted"] == "fake").astype(int).to_numpy()
    assert block["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert block["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert block["roc_auc"] == pytest.approx(roc_auc_score(labels, frame["fake_probability"]), abs=1e-6)
    assert block["confusion_matrix"] == confusion_matrix(labels, predicted, labels=[0, 1]).tolist()
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=[0, 1], zero_division=0)
    for index, name in enumerate(["real", "fake"]):
        assert block["per_class"][name]["precision"] == pytest.approx(precision[index])
        assert block["per_class"][name]["recall"] == pytest.approx(recall[index])
        assert block["per_class"][name]["f1"] == pytest.approx(f1[index])
        assert block["per_class"][name]["support"] == support[index]


def test_outputs_and_metrics_match_sklearn(icip_run, model_folder):
    from training.perturbations import PERTURBATION_SETS, PERTURBATIONS

    metrics = json.loads((icip_run / "metrics.json").read_text())
    for key in ("n_images", "accuracy", "balanced_accuracy", "roc_auc", "per_class", "confusion_matrix", "threshold", "temperature",
                "model", "data", "per_source", "skipped", "images_per_second", "per_perturbation"):
        assert key in metrics, key
    assert metrics["model"] == "random-lite0" and metrics["n_images"] == 12 and metrics["images_per_second"] > 0
    config = json.loads((model_folder / "config.json").read_text())
    assert metrics["threshold"] == pytest.approx(config["threshold"])

    predictions = pd.read_csv(icip_run / "predictions.csv")
    # The historical columns first and in order (downstream readers), then the predict() path's.
    assert list(predictions.columns) == ["path", "label", "source", "fake_probability", "predicted", "perturbation", "verdict", "face_found", "n_faces", "logit_margin"]
    expected_predicted = np.where(predictions["fake_probability"] >= metrics["threshold"], "fake", "real")
    assert (predictions["predicted"] == expected_predicted).all()
    clean = predictions[predictions["perturbation"] == "none"]
    assert len(clean) == 12 and set(clean["predicted"]) == {"real", "fake"}
    _check_block(metrics, clean)

    # Every perturbation ran on every image, with its parameters in the file and the same metrics.
    assert list(metrics["per_perturbation"]) == PERTURBATION_SETS["icip"]
    assert set(predictions["perturbation"]) == {"none", *PERTURBATIONS}
    for name, block in metrics["per_perturbation"].items():
        assert block["params"] == PERTURBATIONS[name].params
        rows = predictions[predictions["perturbation"] == name]
        assert sorted(rows["path"]) == sorted(clean["path"])
        _check_block(block, rows)

    # Per source, from the first folder below real/ or fake/.
    assert set(metrics["per_source"]) == {"ffhq", "celeba_stargan_input", "stargan", "tpdne"}
    for source, block in metrics["per_source"].items():
        rows = clean[clean["source"] == source]
        assert block["count"] == len(rows) == 3
        assert block["accuracy"] == pytest.approx((rows["label"] == rows["predicted"]).mean())

    for name in ("report.md", "confusion_matrix.png", "roc_curve.png", "per_source.png", "per_perturbation.png"):
        assert (icip_run / name).stat().st_size > 0, name
    report = (icip_run / "report.md").read_text()
    assert "| Model | Accuracy | Precision (real/fake) | Recall (real/fake) | F1 (real/fake) |" in report
    assert "jpeg_30" in report and "tpdne" in report


def test_visitor_outcomes_recomputed_from_predictions(icip_run, model_folder):
    """Verdicts, coverage, error rates at the operating point and per-source Wilson intervals, recomputed from
    predictions.csv with scipy and the predict() verdict rule."""
    from scipy.stats import binomtest

    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import verdict_for
    from training.calibration import expected_calibration_error

    metrics = json.loads((icip_run / "metrics.json").read_text())
    detector = load_detector(model_folder)
    assert metrics["mode"] == "predict" and metrics["uncertain_band"] == pytest.approx(detector.band)
    assert metrics["fake_band"] == pytest.approx(detector.fake_band) and detector.fake_band > detector.band  # asymmetric
    clean = pd.read_csv(icip_run / "predictions.csv").query("perturbation == 'none'")
    # Each image's verdict is the rule applied to its (most suspicious face's) probability, at both cuts.
    assert all(v == verdict_for(p, detector.threshold, detector.band, detector.fake_band) for v, p in zip(clean["verdict"], clean["fake_probability"]))
    between = clean[(clean["fake_probability"] >= detector.threshold + detector.band) & (clean["fake_probability"] < detector.threshold + detector.fake_band)]
    assert len(between) and (between["verdict"] == "Uncertain").all()  # Fake at the symmetric cut, not at the raised one
    shares = metrics["verdict_shares"]
    assert shares["Fake"] == pytest.approx((clean["verdict"] == "Fake").mean()) and shares["Uncertain"] == pytest.approx((clean["verdict"] == "Uncertain").mean())
    assert clean["face_found"].all() and (clean["n_faces"] >= 1).all()  # every corpus crop has a detectable face
    assert metrics["coverage"]["value"] == 1.0 and metrics["coverage"]["n"] == 12
    real, fake = clean[clean["label"] == "real"], clean[clean["label"] == "fake"]
    assert metrics["false_fake_rate"]["value"] == pytest.approx((real["verdict"] == "Fake").mean())
    assert metrics["missed_fake_rate"]["value"] == pytest.approx((fake["verdict"] == "Real").mean())
    decided = clean[clean["verdict"] != "Uncertain"]
    assert metrics["decided_accuracy"]["n"] == len(decided)
    assert metrics["decided_accuracy"]["value"] == pytest.approx((decided["verdict"].str.lower() == decided["label"]).mean())
    assert sum(metrics["verdict_shares"].values()) == pytest.approx(1.0)
    labels = (clean["label"] == "fake").astype(int).to_numpy()
    assert metrics["ece"]["class_balanced"] == pytest.approx(expected_calibration_error(clean["fake_probability"].to_numpy(), labels))
    for source, block in metrics["per_source"].items():
        rows = clean[clean["source"] == source]
        correct = int((rows["label"] == rows["predicted"]).sum())
        interval = binomtest(correct, len(rows)).proportion_ci(method="wilson")
        assert block["accuracy_ci95"] == pytest.approx([interval.low, interval.high])
        assert block["small_n"] is True  # 3 images per source
    report = (icip_run / "report.md").read_text()
    assert "## Operating point" in report and "(n=3 < 30)" in report and "Wilson" in report
    assert (icip_run / "reliability.png").stat().st_size > 0


def test_whole_image_mode_classifies_the_image_whole(model_folder, image_folder, tmp_path):
    """--whole_image: one classify_crops call per image, no face detection (coverage not reported)."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import classify_crops
    from training.evaluate import main

    assert main(["--model", str(model_folder), "--data", str(image_folder), "--output", str(tmp_path), "--whole_image", "--no_progress"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["mode"] == "whole_image" and "coverage" not in metrics
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert predictions["face_found"].isna().all()
    detector = load_detector(model_folder)
    expected = classify_crops([load_rgb_array(image_folder / path) for path in predictions["path"]], detector)
    assert np.allclose(predictions["fake_probability"], expected, atol=1e-6)
    from deepfake_detector.predict import verdict_for

    cuts = (detector.threshold, detector.band, detector.fake_band)  # the folder's asymmetric cuts, as predict() uses them
    assert all(v == verdict_for(p, *cuts) for v, p in zip(predictions["verdict"], predictions["fake_probability"]))


def test_perturbation_sample_perturbs_only_a_seeded_sample(model_folder, image_folder):
    """perturbation_sample=N: every image clean, only N of them (seeded, the same each run) perturbed."""
    from deepfake_detector.model import load_detector
    from training.evaluate import evaluate_records, records_from_folder
    from training.perturbations import PERTURBATION_SETS

    records = [r for r in records_from_folder(image_folder) if r["path"] not in ("fake/tpdne/truncated.jpg", "real/not_an_image.jpg")]
    detector = load_detector(model_folder)
    runs = [evaluate_records(detector, records, perturbations="icip", perturbation_sample=4, progress=False) for _ in range(2)]
    (metrics, predictions), (_, again) = runs
    perturbed = predictions[predictions["perturbation"] != "none"]
    assert (predictions["perturbation"] == "none").sum() == len(records) == 12
    assert perturbed["path"].nunique() == 4 and len(perturbed) == 4 * len(PERTURBATION_SETS["icip"])
    assert set(perturbed["path"]) == set(again.loc[again["perturbation"] != "none", "path"])
    assert metrics["perturbation_sample"]["n_images"] == 4 and metrics["n_images"] == 12


def test_bad_images_are_reported_not_fatal(icip_run):
    metrics = json.loads((icip_run / "metrics.json").read_text())
    skipped = {item["path"]: item["reason"] for item in metrics["skipped"]}
    assert set(skipped) == {"fake/tpdne/truncated.jpg", "real/not_an_image.jpg"}
    assert all(skipped.values())
    assert "notes.txt" not in (icip_run / "predictions.csv").read_text()


def test_cli_subprocess_compare(model_folder, image_folder, tmp_path):
    """The real command line, two models, a seeded --limit sample: comparison files and one folder per model."""
    second = tmp_path / "second-model"
    shutil.copytree(model_folder, second)
    output = tmp_path / "compare"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the machine is shared: one thread
    command = [sys.executable, "-m", "training.evaluate", "--model", str(model_folder), "--compare", str(second),
               "--data", str(image_folder), "--output", str(output), "--limit", "8", "--no_progress"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "images/s" in done.stdout
    table = (output / "comparison.md").read_text()
    assert "| Model | Accuracy | Precision (real/fake) |" in table and "random-lite0" in table and "second-model" in table
    comparison = json.loads((output / "comparison.json").read_text())
    assert set(comparison) == {"random-lite0", "second-model"}
    first = json.loads((output / "random-lite0" / "metrics.json").read_text())
    again = json.loads((output / "second-model" / "metrics.json").read_text())
    assert first["accuracy"] == again["accuracy"]  # same weights, same seeded sample
    assert first["n_images"] + first["n_skipped"] == 8 and "random sample of 8" in first["data"]
    assert "per_perturbation" not in first


def test_dataset_records_and_api(model_folder, image_folder, tmp_path):
    """A tiny built dataset on disk -> load_records(split) -> evaluate_records -> write_outputs."""
    import datasets

    from deepfake_detector.model import load_detector
    from training.data import features
    from training.evaluate import evaluate_records, load_records, write_outputs

    files = [f for sub in SOURCES for f in sorted((image_folder / sub).glob("*"))[:1]]
    columns = {name: [] for name in features()}
    for file in files:
        label = file.parts[-3]
        row = {"image": {"bytes": file.read_bytes(), "path": None}, "label": label, "source": file.parent.name, "family": "", "group": file.stem,
               "sha256": "", "width": 0, "height": 0, "format": file.suffix[1:].upper(), "path": f"{label}/{file.parent.name}/{file.name}",
               "origin_repo": "", "license_note": "", "face_box": [], "landmarks": []}
        for key in columns:
            columns[key].append(row[key])
    split = datasets.Dataset.from_dict(columns, features=features())
    datasets.DatasetDict({"test": split, "validation": split}).save_to_disk(str(tmp_path / "built"))

    with pytest.raises(ValueError, match="--split"):
        load_records(str(tmp_path / "built"), split="nope")
    records, description = load_records(str(tmp_path / "built"), split="validation")
    assert len(records) == 4 and "split validation" in description
    assert records[0]["image_bytes"] and records[0]["label"] in (0, 1)

    metrics, predictions = evaluate_records(load_detector(model_folder), records, batch_size=3, progress=False, data_description=description)
    assert metrics["n_images"] == 4 and metrics["skipped"] == [] and "per_perturbation" not in metrics
    assert set(predictions["perturbation"]) == {"none"}
    metrics["training"] = {"best_loss": np.float32(0.25), "history": np.arange(2)}  # what a caller may add
    write_outputs(tmp_path / "out", metrics, predictions)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["training"] == {"best_loss": 0.25, "history": [0, 1]}
    assert written["plots"] == ["confusion_matrix.png", "roc_curve.png", "per_source.png", "reliability.png"]
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"metrics.json", "predictions.csv", "report.md", "roc_curve.png", "per_source.png"}


def test_folder_records_and_input_validation(image_folder, model_folder, tmp_path):
    from deepfake_detector.model import load_detector
    from training.evaluate import evaluate_records, records_from_folder

    records = records_from_folder(image_folder)
    by_path = {r["path"]: r for r in records}
    assert by_path["real/not_an_image.jpg"]["source"] == "real"  # directly under real/
    assert by_path["fake/tpdne/truncated.jpg"]["source"] == "tpdne"
    assert not any(path.endswith(".txt") for path in by_path)
    with pytest.raises(ValueError, match="real/ or fake/"):
        records_from_folder(tmp_path)
    with pytest.raises(ValueError, match="'real'/'fake'"):
        evaluate_records(load_detector(model_folder), [{"path": "x", "label": "maybe", "source": "s", "file": "x"}], progress=False)


# ---------------------------------------------------------------- perturbations


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    from deepfake_detector.images import load_rgb_array

    image = load_rgb_array(sorted((FACES / "real/ffhq").iterdir())[0])
    return np.ascontiguousarray(image[:100, :120])  # non-square, so swapped/halved sides are visible


def _expected_shape(name: str, height: int, width: int) -> tuple[int, int]:
    if name in ("rotate_90", "rotate_270"):
        return width, height
    if name == "rotate_45_crop":
        side = int(min(height, width) / np.sqrt(2))
        return side, side
    if name == "scale_0.5":
        return height // 2, width // 2
    if name == "scale_2.0":
        return height * 2, width * 2
    if name.startswith("crop_"):
        return round(height * 0.8), round(width * 0.8)
    return height, width


def test_each_perturbation_shape_dtype_determinism(face):
    from training.perturbations import PERTURBATIONS, perturbation_set

    assert [p.name for p in perturbation_set("icip")] == list(PERTURBATIONS) and perturbation_set(None) == []
    height, width = face.shape[:2]
    for name, perturbation in PERTURBATIONS.items():
        out = perturbation(face.copy())
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3, name
        assert out.shape[:2] == _expected_shape(name, height, width), name
        assert np.array_equal(out, perturbation(face.copy())), f"{name} is not deterministic"
        assert perturbation.to_json()["params"] == perturbation.params
        if name not in ("jpeg_90",):  # everything else visibly changes the pixels (or the shape)
            assert out.shape != face.shape or not np.array_equal(out, face), name


def test_perturbation_semantics(face):
    from training import perturbations as P

    assert np.array_equal(P.PERTURBATIONS["mirror_horizontal"](face), face[:, ::-1])
    assert np.array_equal(P.PERTURBATIONS["mirror_vertical"](face), face[::-1])
    assert np.array_equal(P.PERTURBATIONS["rotate_180"](face), face[::-1, ::-1])
    assert np.array_equal(P.PERTURBATIONS["crop_center_80"](face), face[10:90, 12:108])
    # Heavier blur and lower JPEG quality move the image further from the original.
    def distance(name):
        return np.abs(P.PERTURBATIONS[name](face).astype(int) - face).mean()
    assert distance("blur_sigma1") < distance("blur_sigma3")
    assert distance("jpeg_90") < distance("jpeg_30")
    # The random crop depends on the image (seeded by its checksum), not on call order.
    other = np.ascontiguousarray(face[::-1])
    first = P.PERTURBATIONS["crop_random_80"](face)
    P.PERTURBATIONS["crop_random_80"](other)
    assert np.array_equal(first, P.PERTURBATIONS["crop_random_80"](face))
    with pytest.raises(ValueError, match="uint8"):
        P.gaussian_blur(face.astype(np.float32), 1.0)
    with pytest.raises(ValueError, match="perturbation set"):
        P.perturbation_set("iciap2099")
