"""Close-ups: a face that fills the frame is found by a second search on the image framed by a grey border."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import BUNDLED_MODEL, corpus_dir, needs_corpus
from deepfake_detector import faces
from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import load_detector
from deepfake_detector.predict import predict

REPO_ROOT = Path(__file__).resolve().parents[1]
# SD 2.1 portraits cropped to the face: yuface finds no face in them at any scale from 160 to 768 px.
CLOSE_UPS = ("sdfd_giI-28_7.jpg", "sdfd_paE-131_10.jpg", "sdfd_woS-149_12.jpg")


@needs_corpus
@pytest.mark.parametrize("name", CLOSE_UPS)
def test_a_face_filling_the_frame_is_found_and_judged(name):
    image = load_rgb_array((corpus_dir() / "fake" / "sd21" / name).read_bytes())
    assert faces._detect(image, faces.MIN_CONFIDENCE) == []  # the first search alone misses it
    [face, *_] = faces.detect_faces(image)
    x, y, w, h = face.box
    height, width = image.shape[:2]
    assert face.confidence >= 0.8 and 0 <= x and 0 <= y and x + w <= width and y + h <= height
    assert w * h > 0.25 * width * height  # the face, not a detail of it
    prediction = predict(image, load_detector(BUNDLED_MODEL))
    assert prediction.face_found and prediction.verdict != "No face"


def test_the_framed_search_gives_boxes_and_landmarks_in_the_images_pixels():
    """The astronaut's face found directly and found in a framed copy (mapped back) are the same face."""
    image = load_rgb_array((REPO_ROOT / "examples" / "astronaut.jpg").read_bytes())
    [direct, *_] = faces.detect_faces(image)
    border = round(faces.CLOSE_UP_BORDER * max(image.shape[:2]))
    framed = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    [found, *_] = faces._detect(framed, faces.MIN_CONFIDENCE)
    mapped = faces._unframe(found, border, image.shape)
    assert np.allclose(mapped.box, direct.box, atol=8), (mapped.box, direct.box)
    assert np.allclose(mapped.landmarks, direct.landmarks, atol=6)


def test_an_image_without_a_face_stays_without_one_after_the_second_search():
    cat = load_rgb_array((REPO_ROOT / "examples" / "chelsea.jpg").read_bytes())
    assert faces.detect_faces(cat) == []
