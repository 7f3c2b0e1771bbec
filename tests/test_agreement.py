"""The number measured offline is the number a visitor gets: `training.evaluate` (its default predict() path) and the
live app's /predict API give the same verdict and probability, photo for photo, on real photos and generated faces."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import corpus_dir  # noqa: E402

FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces
# Whole photos of people (what visitors upload: several sizes, one or more faces) and face crops of both classes,
# at 128 px and at 768-1024 px. JPEG only: every format the app accepts is tested in the app's own tests.
PHOTOS = {
    "real/photo_facerec": ["facerec_ex_biden.jpg", "facerec_ex_knn_ex_test_obama1.jpg", "facerec_ex_obama_small.jpg"],
    "real/photo_facenet": ["facenet_paul_rudd_1.jpg"],
    "real/photo_photomaker": ["photomaker_scarlett_0.jpg"],
    "real/celebahq": None,  # None: the first file of the source
    "fake/sd21": None,
    "fake/stargan": None,
    "fake/tpdne": None,
}

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"needs the dev corpus at {FACES}")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """A real/ + fake/ folder of the photos above, copied to a temporary folder (never into the repository)."""
    root = tmp_path_factory.mktemp("agreement")
    for source, names in PHOTOS.items():
        folder = FACES / source
        if not folder.is_dir():
            continue
        files = [folder / name for name in names] if names else [next(f for f in sorted(folder.iterdir()) if f.suffix.lower() in (".jpg", ".jpeg"))]
        (root / source).mkdir(parents=True)
        for file in files:
            if file.is_file():
                shutil.copyfile(file, root / source / file.name)
    return root


@pytest.fixture(scope="module")
def offline(photo_folder, model_dir):
    """training.evaluate's rows for the photos, through its default path (predict())."""
    from deepfake_detector.model import load_detector
    from training.evaluate import evaluate_records, records_from_folder

    metrics, predictions = evaluate_records(load_detector(model_dir), records_from_folder(photo_folder), progress=False)
    assert metrics["mode"] == "predict" and metrics["n_skipped"] == 0
    return predictions.set_index("path")


def test_api_and_evaluate_agree_verdict_for_verdict(live_app, photo_folder, offline):
    from gradio_client import Client, handle_file

    client = Client(live_app["url"], verbose=False)
    assert len(offline) >= 8
    compared = 0
    for path, row in offline.iterrows():
        answer = client.predict(handle_file(str(photo_folder / path)), api_name="/predict")
        assert answer["verdict"] == row["verdict"], (path, answer["verdict"], row["verdict"], answer["fake_probability"], row["fake_probability"])
        if answer["fake_probability"] is None:  # nothing judged (no face / too small): the API shows no score
            assert row["verdict"] not in ("Real", "Fake", "Uncertain"), path
        else:
            assert answer["fake_probability"] == pytest.approx(row["fake_probability"], abs=1e-4), path
        assert answer["face_found"] == bool(row["face_found"]), path
        if answer["face_found"]:
            assert len(answer["faces"]) == row["n_faces"], path
        compared += 1
    assert compared == len(offline)
    # The photos exercise more than one verdict, so agreement is not agreement on a constant.
    assert offline["verdict"].nunique() >= 2
