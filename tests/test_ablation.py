"""research.ablation on real evaluator outputs: the bundled model on a few corpus images through training.evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from research import ablation
from training import evaluate

from conftest import BUNDLED_MODEL, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces
BUNDLED = BUNDLED_MODEL
pytestmark = needs_corpus


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory) -> Path:
    """`test/` from 4 FFHQ, 4 SD 2.1 and 2 photos; `photos-test/` from the 2 photos; nothing else measured."""
    images = tmp_path_factory.mktemp("images")
    picks = {
        "real/ffhq": sorted((FACES / "real" / "ffhq").iterdir())[:4],
        "fake/sd21": sorted((FACES / "fake" / "sd21").iterdir())[:4],
        "real/photo_facerec": [FACES / "real" / "photo_facerec" / "facerec_ex_obama.jpg", FACES / "real" / "photo_facerec" / "facerec_ex_biden.jpg"],
    }
    for folder, files in picks.items():
        (images / folder).mkdir(parents=True)
        for file in files:
            shutil.copyfile(file, images / folder / file.name)
    photos = tmp_path_factory.mktemp("photos")
    shutil.copytree(images / "real" / "photo_facerec", photos / "real" / "photo_facerec")
    output = tmp_path_factory.mktemp("eval")
    assert evaluate.main(["--model", str(BUNDLED), "--data", str(images), "--output", str(output / "test"), "--no_progress"]) == 0
    assert evaluate.main(["--model", str(BUNDLED), "--data", str(photos), "--output", str(output / "photos-test"), "--no_progress"]) == 0
    return output


def test_table_cells_come_from_the_evaluator_files(eval_folder, tmp_path):
    assert ablation.main(["--candidate", "bundled", str(BUNDLED), str(eval_folder), "--output", str(tmp_path)]) == 0
    metrics = json.loads((eval_folder / "test" / "metrics.json").read_text())
    predictions = pd.read_csv(eval_folder / "test" / "predictions.csv")
    sd21 = predictions[predictions["source"] == "sd21"]
    caught = int((sd21["verdict"] == "Fake").sum())
    row = json.loads((tmp_path / "ablation.json").read_text())[0]
    assert row["test"]["balanced_accuracy"] == metrics["balanced_accuracy"]
    assert row["test"]["sd21_caught"] == {"n": 4, "count": caught, "share": caught / 4}
    assert row["test"]["photo_faces_called_fake"]["n"] == 2
    assert row["photos-test"]["called_fake"]["n"] == 2 and row["photos-all"] is None and row["perturbations"] is None
    assert 0.0 <= row["test"]["sd21_auc_vs_test_reals"] <= 1.0
    readme = (tmp_path / "README.md").read_text()
    line = next(l for l in readme.splitlines() if l.startswith("| bundled |"))
    assert f"| {metrics['balanced_accuracy']:.3f} |" in line and f"{caught}/4" in line
    assert line.rstrip().endswith("n/m | n/m |")  # LOSO and speed not measured are said, not left blank
    assert "tf_efficientnet_lite0" in readme  # the recipe is read from training_config.json


def test_auc_of_two_score_sets():
    import numpy as np

    assert ablation._auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert ablation._auc(np.array([0.1]), np.array([0.9])) == 0.0
    assert ablation._auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert ablation._auc(np.array([]), np.array([0.5])) is None


def test_unknown_model_folder_is_named(tmp_path):
    with pytest.raises(ValueError, match="no model folder"):
        ablation.main(["--candidate", "x", str(tmp_path / "missing"), str(tmp_path), "--output", str(tmp_path / "out")])


def test_processing_column_names_the_perturbed_sample_not_the_clean_split(tmp_path):
    """`--perturbation_sample N` perturbs N of the images: the table must say n=N, not the clean split's size."""
    images = tmp_path / "images"
    for folder in ("real/ffhq", "fake/stargan"):
        (images / folder).mkdir(parents=True)
        for file in sorted((FACES / folder).iterdir())[:2]:
            shutil.copyfile(file, images / folder / file.name)
    eval_folder = tmp_path / "eval"
    argv = ["--model", str(BUNDLED), "--data", str(images), "--output", str(eval_folder / "test"), "--no_progress",
            "--perturbations", "icip", "--perturbation_sample", "2"]
    assert evaluate.main(argv) == 0
    assert ablation.main(["--candidate", "bundled", str(BUNDLED), str(eval_folder), "--output", str(tmp_path / "table")]) == 0
    row = json.loads((tmp_path / "table" / "ablation.json").read_text())[0]
    assert row["test"]["n_images"] == 4 and row["perturbations"]["n_images"] == 2
    assert ", n=2)" in (tmp_path / "table" / "README.md").read_text()


def test_a_clip_probe_recipe_reads_as_a_frozen_tower_with_a_head():
    config = {"recipe": "clip_probe", "model": "vit_base_patch16_clip_quickgelu_224", "clip_weights": "w.safetensors", "depth": 6,
              "input_size": 160, "features": "class token after the final layer norm", "head": "logistic regression",
              "dataset": "data/d", "train_images": 15331}
    line = ablation.recipe_line(config)
    assert "first 6 layers at 160 px" in line and "15331 train faces" in line and "draws" not in line
    assert "centred squares, no augmentation" in line  # a stop-10 folder: no framing key
    app = ablation.recipe_line(config | {"framing": "app", "augmented_views": 2, "quantize": "dynamic-int8"})
    assert "160 px (dynamic-int8)" in app and "app's face detection, + 2 randomly processed copies" in app
    wide = ablation.recipe_line(config | {"framing": "app", "augmented_views": 0, "crop_scale": 1.75})
    assert "app's face detection, square of 1.75x the box, + 0 randomly processed copies" in wide
