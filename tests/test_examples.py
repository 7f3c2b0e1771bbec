"""The app's examples teach what they claim: the shipped default model answers each one as examples/README.md says.

A real photo (Real, not Uncertain), a generated face (Fake, clearly) and a group photo of real people (no face of the
20 judged is called Fake; the photo is Uncertain, not Real, because its 1927 black-and-white faces lie beyond the
model's familiarity limit: the detector declines to clear what it was not trained on, deepfake_detector.familiarity). The examples are the files the page lists (deepfake_detector.app.page), read
as the app reads an upload; the model is the app's default, run through deepfake_detector.predict.predict.
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
    "omnigen-woman-with-book.jpg": ("Fake", 1, (">", 0.90)),  # measured 0.992; the Fake band starts at 0.95
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
