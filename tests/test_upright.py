"""A photo on its side or upside down is classified as its upright face, and its boxes still land on the upload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.faces import detect_faces, unturn_square, upright_turns
from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import load_detector
from deepfake_detector.predict import predict

from conftest import BUNDLED_MODEL, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()
BUNDLED = BUNDLED_MODEL


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_unturn_square_maps_a_marked_rectangle_back(turns):
    image = np.zeros((30, 50), dtype=np.uint8)
    image[5:9, 10:20] = 1
    turned = np.rot90(image, turns)
    ys, xs = np.nonzero(turned)
    assert unturn_square((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), turns, image.shape) == (10, 5, 20, 9)


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_a_photo_without_a_face_is_never_turned(turns):
    """The cat example: two of its turns give spurious low-confidence "faces" (0.61-0.64; 0.82 on the search's 320-px
    copy); none may turn it, so the cat as uploaded stays "No face"."""
    cat = load_rgb_array((REPO_ROOT / "examples" / "chelsea.jpg").read_bytes())
    assert upright_turns(np.ascontiguousarray(np.rot90(cat, turns))) == 0
    if turns == 0:
        assert not predict(cat, load_detector(BUNDLED)).face_found


@needs_corpus
def test_everyday_photos_are_never_turned():
    photos = sorted(p for p in (FACES / "real").glob("photo_*/*") if p.is_file())
    assert len(photos) >= 30
    assert [p.name for p in photos if upright_turns(load_rgb_array(p.read_bytes())) != 0] == []


@needs_corpus
@pytest.mark.parametrize("source", ["real/ffhq", "fake/stargan", "fake/sd21", "real/photo_facerec"])
def test_turned_photo_gets_the_upright_verdict_and_boxes_on_the_upload(source):
    detector = load_detector(BUNDLED)
    file = sorted((FACES / source).iterdir())[0]
    image = load_rgb_array(file.read_bytes())
    upright = predict(image, detector)
    x, y, w, h = detect_faces(image)[0].box
    for turns in (1, 2, 3):
        turned = np.ascontiguousarray(np.rot90(image, turns))
        result = predict(turned, detector)
        assert result.fake_probability == pytest.approx(upright.fake_probability, abs=1e-6)
        assert result.verdict == upright.verdict
        # the largest face's box, mapped onto the turned upload, covers the same pixels as the upright face's box
        marker = np.zeros(image.shape[:2], dtype=np.uint8)
        marker[y : y + h, x : x + w] = 1
        bx, by, bw, bh = result.faces[0].box
        assert np.rot90(marker, turns)[by : by + bh, bx : bx + bw].mean() > 0.95
        assert bw * bh == pytest.approx(w * h, rel=0.05)
