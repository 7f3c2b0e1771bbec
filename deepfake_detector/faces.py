"""Find faces (box + five landmarks) with libfacedetection (`yuface`, weights inside the wheel) and crop them.

The training images are face crops in which the detector's box spans about 1/FACE_CROP_SCALE of the
image side (measured on the dev corpus, see `tests/test_faces.py`), so the app crops a square of
FACE_CROP_SCALE x the box around each detected face: the model sees faces framed as in training.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

# Median (image side / longer side of the detector box) over the dev corpus face crops, 40 per source:
# FFHQ 1.39, TPDNE 1.38, StyleGAN2 1.40, CelebA-HQ 1.45, AttGAN 1.48, StarGAN 1.54, CelebA 1.55.
FACE_CROP_SCALE = 1.45
# Detection runs on a copy whose longer side is at most this (yuface degrades on large inputs and slows down).
DETECT_MAX_SIDE = 640
MIN_CONFIDENCE = 0.6
# A right-angle turn of an upload is used only if its best face is strictly more confident (`upright_turns`). yuface's
# confidences are whole percent. Measured on 184 upright faces (150 test crops, 34 everyday photos): the upright view
# beat every turn by >= 0.01 (median 0.08) or, without any face, tied at 0; an upside-down face scores 0.03-0.05 below
# its upright turn.
# ... and only for a face at least this confident: upright faces scored 0.88-0.95 at <= 320 px (114 test crops and
# everyday photos), while the cat example turned gave spurious "faces" at 0.61-0.64 (0.82 on the 320-px copy, hence
# the confirmation at the detector's full size).
UPRIGHT_MIN_CONFIDENCE = 0.8
# The orientation search looks at a copy of the upload at most this many pixels on its longer side.
UPRIGHT_SEARCH_SIDE = 320
# Border added on each side (fraction of the longer side) for a second search when a first finds no face: close-ups.
CLOSE_UP_BORDER = 0.25
# Landmark order from libfacedetection: two eyes, nose tip, two mouth corners; (x, y) each.
LANDMARK_NAMES = ("eye_1", "eye_2", "nose", "mouth_1", "mouth_2")


@dataclass(frozen=True)
class Face:
    """One detected face in image pixel coordinates."""

    box: tuple[int, int, int, int]  # x, y, width, height
    confidence: float
    landmarks: tuple[tuple[float, float], ...] = field(default=())  # five (x, y) points, LANDMARK_NAMES order


@functools.lru_cache(maxsize=1)
def _yuface():
    """Import yuface with its bundled OpenMP runtime limited to one thread.

    yuface ships its own libgomp, which reads OMP_NUM_THREADS once, when it is loaded. With its default (all cores)
    its threads spin-wait against torch's and against each other: measured 71 ms per 128-px face instead of 13 ms on
    2 busy cores. torch has a separate libgomp, so its threads are untouched."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import yuface
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous
    return yuface


def detect_faces(image: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> list[Face]:
    """Faces in an RGB uint8 image of shape (h, w, 3), largest first.

    A face that fills the frame (a close-up selfie; 3 of 37 SD 2.1 test portraits) is found at no scale, because the
    detector needs to see its outline. When nothing is found, the search is repeated once on the image framed by a
    grey border (CLOSE_UP_BORDER of the longer side on each side), where those faces are found at 0.87-0.93; boxes and
    landmarks are given back in the image's pixels, clipped to it."""
    faces = _detect(image, min_confidence)
    if faces:
        return faces
    border = max(1, round(CLOSE_UP_BORDER * max(image.shape[:2])))
    framed = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=(127, 127, 127))
    return [_unframe(face, border, image.shape) for face in _detect(framed, min_confidence)]


def _unframe(face: Face, border: int, shape: tuple[int, ...]) -> Face:
    """A face found in the image framed by `border` px -> the same face in the image's pixels, box clipped to it."""
    height, width = shape[:2]
    x, y, w, h = face.box
    x0, y0 = min(max(0, x - border), width - 1), min(max(0, y - border), height - 1)
    x1, y1 = min(width, max(x0 + 1, x + w - border)), min(height, max(y0 + 1, y + h - border))
    points = tuple((px - border, py - border) for px, py in face.landmarks)
    return Face(box=(x0, y0, x1 - x0, y1 - y0), confidence=face.confidence, landmarks=points)


def _detect(image: np.ndarray, min_confidence: float) -> list[Face]:
    yuface = _yuface()

    height, width = image.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = image if scale == 1.0 else cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    confidences, boxes, landmarks = yuface.detect(bgr, conf=min_confidence)
    faces = []
    for confidence, box, points in zip(confidences, boxes, landmarks):
        x, y, w, h = (float(v) / scale for v in box)
        x0, y0 = max(0.0, x), max(0.0, y)
        w, h = min(w, width - x0), min(h, height - y0)
        if w < 4 or h < 4:
            continue
        pts = tuple((float(points[2 * i]) / scale, float(points[2 * i + 1]) / scale) for i in range(5))
        faces.append(Face(box=(round(x0), round(y0), round(w), round(h)), confidence=float(confidence) / 100.0, landmarks=pts))
    return sorted(faces, key=lambda face: face.box[2] * face.box[3], reverse=True)


def _top_confidence(image: np.ndarray) -> float:
    """The detector's confidence in the largest face of `image` (0 without a face)."""
    return max((face.confidence for face in detect_faces(np.ascontiguousarray(image))[:1]), default=0.0)


def upright_turns(image: np.ndarray) -> int:
    """How many quarter turns (`np.rot90`'s k, counter-clockwise) make the faces in `image` upright.

    yuface still finds a face turned a quarter or half turn (a phone photo without its EXIF orientation, the challenge's
    rotated test images), but less confidently, and its landmarks are not turned with it, so they cannot tell the
    orientation. The most confident of the four right-angle turns can: it picked the upright one for 240 of 240 test
    faces turned by 0, 90, 180 and 270 degrees. A turn replaces the image as given only if its best face is strictly
    more confident and a confident one (UPRIGHT_MIN_CONFIDENCE); ties keep the image as given. The four detections run
    on one copy at most UPRIGHT_SEARCH_SIDE px (a 1024-px photo: four detections at 640 px cost 4x60 ms, at 320 px
    about 4x10 ms), so a face too small to be found there is never turned."""
    height, width = image.shape[:2]
    scale = min(1.0, UPRIGHT_SEARCH_SIDE / max(height, width))
    small = image if scale == 1.0 else cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    best_turns, best = 0, _top_confidence(small)
    for turns in (1, 2, 3):
        confidence = _top_confidence(np.rot90(small, turns))
        if confidence >= UPRIGHT_MIN_CONFIDENCE and confidence > best + 1e-9:
            best_turns, best = turns, confidence
    if best_turns and scale < 1.0:  # confirm on the detector's own view of the turned photo (spurious faces fade there)
        best_turns = best_turns if _top_confidence(np.rot90(image, best_turns)) >= UPRIGHT_MIN_CONFIDENCE else 0
    return best_turns


def unturn_square(square: tuple[int, int, int, int], turns: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) found in `np.rot90(image, turns)` -> the same rectangle in `image` of shape `shape`."""
    x0, y0, x1, y1 = square
    height, width = shape[:2]
    for step in range(turns % 4, 0, -1):
        # undo one counter-clockwise quarter turn of an image that was (w, h) = (width, height) after step-1 turns
        w_before = width if (step - 1) % 2 == 0 else height
        x0, y0, x1, y1 = w_before - y1, x0, w_before - y0, x1
    return int(x0), int(y0), int(x1), int(y1)


def crop_box(face_box: tuple[int, int, int, int], image_shape: tuple[int, ...], scale: float = FACE_CROP_SCALE) -> tuple[int, int, int, int]:
    """Square (x0, y0, x1, y1) of `scale` x the box's longer side around its centre, clipped to the image."""
    x, y, w, h = face_box
    height, width = image_shape[:2]
    side = max(w, h) * scale
    side = min(side, width, height)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    side = int(round(side))
    return x0, y0, x0 + side, y0 + side


def crop_face(image: np.ndarray, face_box: tuple[int, int, int, int], scale: float = FACE_CROP_SCALE) -> np.ndarray:
    """The square face crop (framed as in training) of an (h, w, 3) image."""
    x0, y0, x1, y1 = crop_box(face_box, image.shape, scale)
    return np.ascontiguousarray(image[y0:y1, x0:x1])
