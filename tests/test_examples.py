"""The app's examples teach what they claim: the shipped default model answers each one as examples/README.md says.

A real photo (Real, not Uncertain), a generated face (Fake, clearly) and a group photo of real people (no face of the
20 judged is called Fake; the photo is Uncertain, not Real, because its 1927 black-and-white faces lie beyond the
model's familiarity limit: the detector declines to clear what it was not trained on, deepfake_detector.familiarity). The examples are the files the page lists (deepfake_detector.app.page), read
as the app reads an upload; the model is the app's default, run through deepfake_detector.predict.predict. The
generated example also shows a raised Fake cut (config.json `fake_band`) at work on a copy of the default folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import DEFAULT_MODEL_DIR, load_detector
from deepfake_detector.predict import predict

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
MAX_BYTES = 350_000  # the group photo is the largest (324 KB, copied unchanged); the others are kept under 200 KB

# file: (photo verdict, faces judged at least, bound on the photo's fake probability: "<" an upper one, ">" a lower one)
EXPECTED = {
    "grace-hopper.jpg": ("Real", 1, ("<", 0.10)),  # measured 0.047; the Real band ends at 0.05
    "omnigen-woman-with-book.jpg": ("Fake", 1, (">", 0.90)),  # measured 0.992; the default's Fake cut is 0.975
    "solvay-1927.jpg": ("Uncertain", 10, ("<", 0.10)),  # measured 0.000 (highest of 20 judged faces), every face unlike training
}


@pytest.fixture(scope="module")
def detector():
    return load_detector(DEFAULT_MODEL_DIR)


def test_the_page_lists_exactly_these_examples():
    pytest.importorskip("gradio")
    from deepfake_detector.app.page import EXAMPLES, example_files

    assert list(EXAMPLES) == list(EXPECTED)
    assert all(Path(f).is_file() and Path(f).stat().st_size <= MAX_BYTES for f in example_files(EXAMPLES_DIR))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_default_model_answers_each_example_right(detector, name):
    verdict, min_judged, (side, bound) = EXPECTED[name]
    prediction = predict(load_rgb_array((EXAMPLES_DIR / name).read_bytes()), detector)
    assert prediction.verdict == verdict, (name, prediction.verdict, prediction.fake_probability)
    assert prediction.faces_judged >= min_judged
    if side == "<":
        assert prediction.fake_probability < bound, (name, prediction.fake_probability)
    else:
        assert prediction.fake_probability > bound, (name, prediction.fake_probability)
    if verdict == "Real":
        assert prediction.faces_flagged == 0
        assert not any(face.unlike_training for face in prediction.faces)
    if name == "solvay-1927.jpg":  # Uncertain for the right reason: no face looks generated, every one is unlike training
        assert prediction.faces_flagged == 0
        assert all(face.unlike_training and face.verdict == "Uncertain" for face in prediction.faces if face.judged)


def test_a_raised_fake_cut_leaves_the_generated_example_uncertain(tmp_path):
    """A copy of the default folder, its config.json's `fake_band` set: the OmniGen face, Fake at the symmetric cut,
    lies below the raised one and is Uncertain, and the JSON says why; without the key the copy answers as it ships."""
    import json
    import shutil

    from deepfake_detector.predict import verdict_for

    folder = shutil.copytree(DEFAULT_MODEL_DIR, tmp_path / "asymmetric")
    config = json.loads((folder / "config.json").read_text())
    config.pop("fake_band", None)  # the symmetric folder every older one is
    (folder / "config.json").write_text(json.dumps(config))
    image = load_rgb_array((EXAMPLES_DIR / "omnigen-woman-with-book.jpg").read_bytes())
    symmetric = load_detector(folder)
    before = predict(image, symmetric)
    p, threshold, band = before.fake_probability, symmetric.threshold, symmetric.band
    assert symmetric.fake_band == band and before.fake_band == before.uncertain_band == band and before.to_json()["fake_band"] == band
    assert before.verdict == before.faces[0].verdict == verdict_for(p, threshold, band) == "Fake"
    fake_band = 0.495  # the top of calibration's grid: Fake from 0.995
    assert threshold + band <= p < threshold + fake_band, p  # between the two Fake cuts, or the test shows nothing

    (folder / "config.json").write_text(json.dumps(config | {"fake_band": fake_band}))
    asymmetric = load_detector(folder)
    after = predict(image, asymmetric)
    assert asymmetric.fake_band == fake_band and asymmetric.band == band
    assert after.fake_probability == pytest.approx(p)  # the same score, another cut
    assert after.verdict == after.faces[0].verdict == "Uncertain" and after.faces_flagged == 0
    result = after.to_json()
    assert result["fake_band"] == fake_band and result["uncertain_band"] == band and result["verdict"] == "Uncertain"
    assert after.rethreshold(threshold - 0.1).verdict == "Fake"  # the slider moves both cuts: Fake from 0.895
    assert predict(image, asymmetric, band=band).verdict == "Fake"  # a band given alone is symmetric


@pytest.mark.parametrize("value", [0.5, -0.01, "0.48", True, None])
def test_a_fake_band_outside_the_range_is_refused(tmp_path, value):
    import json

    folder = tmp_path / "bad"
    folder.mkdir()
    for item in DEFAULT_MODEL_DIR.iterdir():  # weights are linked, not copied: the load fails on config.json first
        (folder / item.name).symlink_to(item)
    (folder / "config.json").unlink()
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"fake_band": value}))
    with pytest.raises(ValueError, match="fake_band must be a number from 0 up to"):
        load_detector(folder)
