"""predict(image, detector) -> Prediction: faces, calibrated fake probabilities and verdicts. Pure: no UI, no I/O.

The app, `training.evaluate` and the API all call these functions, so a number measured offline is the
number a visitor gets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .faces import FACE_CROP_SCALE, crop_box, crop_face, detect_faces
from .model import Detector
from .preprocess import eval_tensor

# Probabilities within this distance of the threshold are reported as "Uncertain" rather than forced.
UNCERTAIN_BAND = 0.1
VERDICTS = ("Real", "Fake", "Uncertain")


def verdict_for(fake_probability: float, threshold: float, band: float = UNCERTAIN_BAND) -> str:
    """'Fake' above threshold + band, 'Real' below threshold - band, 'Uncertain' in between."""
    if fake_probability >= threshold + band:
        return "Fake"
    if fake_probability < threshold - band:
        return "Real"
    return "Uncertain"


def classify_crops(crops: list[np.ndarray], detector: Detector, batch_size: int = 32) -> np.ndarray:
    """Calibrated P(fake) for face crops, each an (h, w, 3) uint8 RGB array; returns shape (n,)."""
    probabilities = []
    for start in range(0, len(crops), batch_size):
        batch = torch.stack([eval_tensor(crop, detector.data_config) for crop in crops[start : start + batch_size]])
        probabilities.append(detector.fake_probabilities(batch))
    return np.concatenate(probabilities) if probabilities else np.zeros(0, dtype=np.float32)


@dataclass
class FaceResult:
    box: list[int]  # x, y, width, height of the detected face in the uploaded image
    crop_box: list[int]  # x0, y0, x1, y1 of the square crop the model saw
    fake_probability: float
    verdict: str
    crop: np.ndarray | None = field(default=None, repr=False)


@dataclass
class Prediction:
    verdict: str  # the most suspicious face decides: one fake face makes the photo fake
    fake_probability: float
    threshold: float
    uncertain_band: float
    model: str
    face_found: bool
    faces: list[FaceResult]

    def to_json(self) -> dict:
        """The stable JSON the API returns (no pixel arrays)."""
        result = asdict(self)
        for face in result["faces"]:
            face.pop("crop", None)
        return result


def predict(image: np.ndarray, detector: Detector, threshold: float | None = None, band: float = UNCERTAIN_BAND, max_faces: int = 20) -> Prediction:
    """Find faces in an RGB uint8 image (h, w, 3), classify each; with no face, classify the whole image."""
    threshold = detector.threshold if threshold is None else float(threshold)
    faces = detect_faces(image)[:max_faces]
    if faces:
        crops = [crop_face(image, face.box, FACE_CROP_SCALE) for face in faces]
        boxes = [list(face.box) for face in faces]
        squares = [list(crop_box(face.box, image.shape, FACE_CROP_SCALE)) for face in faces]
    else:
        height, width = image.shape[:2]
        crops, boxes, squares = [image], [[0, 0, width, height]], [[0, 0, width, height]]
    probabilities = classify_crops(crops, detector)
    results = [
        FaceResult(box=box, crop_box=square, fake_probability=float(p), verdict=verdict_for(float(p), threshold, band), crop=crop)
        for box, square, p, crop in zip(boxes, squares, probabilities, crops)
    ]
    top = float(probabilities.max())
    return Prediction(
        verdict=verdict_for(top, threshold, band),
        fake_probability=top,
        threshold=threshold,
        uncertain_band=band,
        model=detector.name,
        face_found=bool(faces),
        faces=results,
    )
