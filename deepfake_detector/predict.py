"""predict(image, detector) -> Prediction: faces, calibrated fake probabilities and verdicts. Pure: no UI, no I/O.

The app, `training.evaluate` and the API all call these functions, so a number measured offline is the
number a visitor gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from .cam import MODEL_LOCK
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
        with MODEL_LOCK:  # Grad-CAM hooks the shared net; a forward pass must not run while they are attached
            probabilities.append(detector.fake_probabilities(batch))
    return np.concatenate(probabilities) if probabilities else np.zeros(0, dtype=np.float32)


@dataclass
class FaceResult:
    box: list[int]  # x, y, width, height of the detected face in the uploaded image
    crop_box: list[int]  # x0, y0, x1, y1 of the square crop the model saw
    fake_probability: float
    verdict: str
    crop: np.ndarray | None = field(default=None, repr=False)
    # Grad-CAM of the "fake" class: float32 (h, w) in [0, 1] and the RGB overlay, both at the crop's size (explain=True).
    heatmap: np.ndarray | None = field(default=None, repr=False)
    overlay: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        return {"box": list(self.box), "crop_box": list(self.crop_box), "fake_probability": self.fake_probability, "verdict": self.verdict}


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
        # Built by hand rather than with asdict(), which would deep-copy every pixel array only to drop it.
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "faces"}
        result["faces"] = [face.to_json() for face in self.faces]
        return result


def predict(
    image: np.ndarray,
    detector: Detector,
    threshold: float | None = None,
    band: float = UNCERTAIN_BAND,
    max_faces: int = 20,
    explain: bool = False,
) -> Prediction:
    """Find faces in an RGB uint8 image (h, w, 3), classify each; with no face, classify the whole image.

    `explain=True` adds a Grad-CAM heatmap and overlay of the "fake" class to every face (`FaceResult.heatmap/.overlay`).
    """
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
    if explain:
        from .cam import explain_crop  # lazily: pytorch-grad-cam is only needed for explanations

        for result in results:
            explanation = explain_crop(result.crop, detector.net, detector.data_config, detector.fake_index)
            result.heatmap, result.overlay = explanation.heatmap, explanation.overlay
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
