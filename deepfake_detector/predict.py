"""predict(image, detector) -> Prediction: faces, calibrated fake probabilities and verdicts. Pure: no UI, no I/O.

The app, `training.evaluate` and the API all call these functions, so a number measured offline is the
number a visitor gets. This is the one place that decides verdicts:

- a face: "Fake" from threshold + fake_band up, "Real" below threshold - band, "Uncertain" in between (`fake_band`
  is `band` unless the folder raised its Fake cut alone: `Detector.fake_band`); "Too small" when its box is narrower
  than MIN_FACE_SIDE pixels (measured: reports/face-size), so the model is not asked; a face unlike the training faces
  (`deepfake_detector.familiarity`, where the folder has it) is never "Real": "Uncertain";
- the photo: "No face" when no face is found (the model was trained on faces; the whole image is still scored, for
  evaluation only, and never shown as a verdict), "Too small" when every face is, otherwise `photo_verdict`:

  One judged face: its verdict, as before. n judged faces: the photo is "Fake" only when at least
  `faces_needed(n)` of them are Fake, the smallest k with P(Binomial(n, FACE_FALSE_FAKE_RATE) >= k) <=
  FACE_FALSE_FAKE_RATE: if each real face is called Fake with probability 5% independently, a photo of n real faces
  is then called Fake at most as often as a one-face photo (5%), instead of 1 - 0.95^n (64% for 20 faces). k is 1 for
  one face, 2 for 2-7 faces, 3 for 8-16, 4 for 17-20. With fewer Fake faces than that (but at least one) the photo is
  "Uncertain" and says "1 of 12 faces looks generated"; with none, the photo is Real only when every judged face is
  (without familiarity: the most suspicious face decides, as before). Why a count and not a stricter per-face threshold (Sidak on the probabilities): the count
  needs nothing but the per-face verdicts, so it holds for any model and any threshold the slider sets, leaves every
  face's verdict as it was, and a visitor can check it by counting red boxes. Faces of one photo share a camera,
  light and compression, so their errors are not independent: reports/crowds measures how often real group photos
  are still called Fake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import numpy as np

from .cam import MODEL_LOCK
from .faces import FACE_CROP_SCALE, crop_box, crop_face, detect_faces, unturn_square, upright_turns
from .model import DEFAULT_UNCERTAIN_BAND, Detector, fake_margin

# Probabilities within this distance of the threshold are reported as "Uncertain" rather than forced, unless the
# model folder sets its own band (`Detector.band`, chosen on validation for a stated false-fake rate).
UNCERTAIN_BAND = DEFAULT_UNCERTAIN_BAND
VERDICTS = ("Real", "Fake", "Uncertain")  # what a judged face can get
NO_FACE, TOO_SMALL = "No face", "Too small"
ALL_VERDICTS = (*VERDICTS, TOO_SMALL, NO_FACE)
# Faces narrower than this (in the uploaded image's pixels) are not judged; see reports/face-size.
MIN_FACE_SIDE = 40
# The share of real faces a model may call Fake at its operating point (models are calibrated for it:
# config.json `calibration.max_false_fake_rate`); the photo rule keeps a photo of many real faces at the same rate.
FACE_FALSE_FAKE_RATE = 0.05


def faces_needed(n_judged: int, rate: float = FACE_FALSE_FAKE_RATE) -> int:
    """Fake faces needed to call a photo of `n_judged` judged faces Fake: the smallest k with
    P(Binomial(n, rate) >= k) <= rate, so n real faces, each called Fake with probability `rate`, make a Fake photo
    no more often than one real face does. 1 for one face (the rule is unchanged there); 0 for none."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"rate must be strictly between 0 and 1 (got {rate}).")
    tail = 1.0  # P(X >= k), starting at k = 0
    for k in range(n_judged + 1):
        if tail <= rate:
            return k
        tail -= math.comb(n_judged, k) * rate**k * (1 - rate) ** (n_judged - k)  # P(X >= k + 1)
    return n_judged


def photo_rule(n_judged: int) -> str:
    """The photo rule for `n_judged` judged faces as one plain sentence (the page's summary and the JSON)."""
    if n_judged <= 1:
        return "The photo takes the verdict of its face."
    needed = faces_needed(n_judged)
    return (
        f"A photo with {n_judged} faces is called Fake only when at least {needed} of them look generated "
        f"(one face alone can cross the threshold by chance); fewer make it Uncertain."
    )


def photo_verdict(face_verdicts: list[str], top_probability: float, threshold: float, band: float) -> str:
    """The verdict of a photo whose judged faces got `face_verdicts` (see the module docstring)."""
    flagged = face_verdicts.count("Fake")
    if flagged and flagged >= faces_needed(len(face_verdicts)):
        return "Fake"
    if flagged:
        return "Uncertain"  # some faces look generated, too few to rule out chance
    # None Fake: Real only when every face is Real. Without familiarity that is the most suspicious face's verdict
    # (verdict_for(top_probability)); with it, a face unlike training is Uncertain whatever its probability.
    return "Real" if all(verdict == "Real" for verdict in face_verdicts) else "Uncertain"


def verdict_for(fake_probability: float, threshold: float, band: float = UNCERTAIN_BAND, fake_band: float | None = None) -> str:
    """'Fake' from threshold + fake_band up, 'Real' below threshold - band, 'Uncertain' in between. `fake_band` None is
    `band` (symmetric); a larger one asks more of a Fake verdict without touching the Real side."""
    if fake_probability >= threshold + (band if fake_band is None else fake_band):
        return "Fake"
    if fake_probability < threshold - band:
        return "Real"
    return "Uncertain"


def crop_logits(crops: list[np.ndarray], detector: Detector, batch_size: int = 32) -> np.ndarray:
    """Raw logits (n, 2) for face crops, each an (h, w, 3) uint8 RGB array."""
    return crop_outputs(crops, detector, batch_size)[0]


def crop_outputs(crops: list[np.ndarray], detector: Detector, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(raw logits (n, 2), unlike training (n,) bool: all False for a folder without `familiarity`) for face crops."""
    logits, unlike = [], []
    for start in range(0, len(crops), batch_size):
        with MODEL_LOCK:  # Grad-CAM hooks the shared net; a forward pass must not run while they are attached
            batch_logits, distances = detector.outputs_of_crops(crops[start : start + batch_size])
        logits.append(batch_logits)
        unlike.append(distances > detector.familiarity.limit if distances is not None else np.zeros(len(batch_logits), dtype=bool))
    if not logits:
        return np.zeros((0, 2), dtype=np.float32), np.zeros(0, dtype=bool)
    return np.concatenate(logits), np.concatenate(unlike)


def classify_crops(crops: list[np.ndarray], detector: Detector, batch_size: int = 32) -> np.ndarray:
    """Calibrated P(fake) for face crops, each an (h, w, 3) uint8 RGB array; returns shape (n,)."""
    return detector.probabilities_from_logits(crop_logits(crops, detector, batch_size))


@dataclass
class FaceResult:
    box: list[int]  # x, y, width, height of the detected face in the uploaded image
    crop_box: list[int]  # x0, y0, x1, y1 of the square crop the model saw
    fake_probability: float
    verdict: str
    logit_margin: float = 0.0  # raw logit(fake) - logit(real) before calibration (evaluation; not in the JSON)
    unlike_training: bool = False  # its features lie beyond the folder's familiarity limit: never called Real
    crop: np.ndarray | None = field(default=None, repr=False)
    # Grad-CAM of the "fake" class: float32 (h, w) in [0, 1] and the RGB overlay, both at the crop's size (explain=True).
    heatmap: np.ndarray | None = field(default=None, repr=False)
    overlay: np.ndarray | None = field(default=None, repr=False)

    @property
    def judged(self) -> bool:
        return self.verdict in VERDICTS

    def to_json(self) -> dict:
        probability = self.fake_probability if self.judged else None  # no score is shown for a face not judged
        return {"box": list(self.box), "crop_box": list(self.crop_box), "fake_probability": probability, "verdict": self.verdict,
                "unlike_training": bool(self.unlike_training) if self.judged else None}


@dataclass
class Prediction:
    verdict: str  # photo_verdict(): Fake only when enough of its judged faces are (faces_needed)
    # The most suspicious judged face's probability; with no face found, the whole image's (for evaluation: to_json()
    # shows none).
    fake_probability: float
    threshold: float
    uncertain_band: float  # Real below threshold - uncertain_band
    fake_band: float  # Fake from threshold + fake_band up (== uncertain_band unless the folder is asymmetric)
    model: str
    face_found: bool
    faces: list[FaceResult]  # with no face found: one entry for the whole image, verdict "No face"
    faces_judged: int = 0  # faces given Real / Fake / Uncertain (not Too small)
    faces_flagged: int = 0  # judged faces whose own verdict is Fake
    photo_rule: str = ""  # how the faces' verdicts made the photo's, one sentence ("" when nothing was judged)

    def to_json(self) -> dict:
        """The stable JSON the API returns (no pixel arrays); no probability where nothing was judged."""
        # Built by hand rather than with asdict(), which would deep-copy every pixel array only to drop it.
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "faces"}
        if self.verdict in (NO_FACE, TOO_SMALL):
            result["fake_probability"] = None
        result["faces"] = [face.to_json() for face in self.faces] if self.face_found else []
        return result

    def rethreshold(self, threshold: float, band: float | None = None, fake_band: float | None = None) -> "Prediction":
        """The same faces decided at another threshold (the page's slider): both cuts move with it, each keeping its
        distance from the threshold. Too small / No face stay as they are. Bands as in `resolve_bands`."""
        band, fake_band = resolve_bands(band, fake_band, self.uncertain_band, self.fake_band)
        return _decide(self.faces, self.face_found, float(threshold), band, self.model, fake_band)


def resolve_bands(band: float | None, fake_band: float | None, own_band: float, own_fake_band: float) -> tuple[float, float]:
    """(band, fake_band) a caller asked for, the model's (`own_*`) where it gave none. A `band` given without a
    `fake_band` is symmetric: a caller who sets the band's width (band=0: always decide) means both sides."""
    if band is None:
        return float(own_band), float(own_fake_band if fake_band is None else fake_band)
    return float(band), float(band if fake_band is None else fake_band)


def _decide(faces: list[FaceResult], found: bool, threshold: float, band: float, model: str, fake_band: float | None = None) -> Prediction:
    """Verdicts for already classified faces (see the module docstring); `fake_band` None is `band`."""
    fake_band = band if fake_band is None else fake_band
    decided = []
    for face in faces:
        if not found:
            verdict = NO_FACE
        elif face.box[2] < MIN_FACE_SIDE:
            verdict = TOO_SMALL
        else:
            verdict = verdict_for(face.fake_probability, threshold, band, fake_band)
            if verdict == "Real" and face.unlike_training:
                verdict = "Uncertain"  # weak evidence the model has no right to: see deepfake_detector.familiarity
        decided.append(replace(face, verdict=verdict))
    judged = [face for face in decided if face.judged]
    top = max((face.fake_probability for face in judged or decided), default=0.0)
    if not found:
        verdict = NO_FACE
    elif not judged:
        verdict = TOO_SMALL
    else:
        verdict = photo_verdict([face.verdict for face in judged], top, threshold, band)
    return Prediction(
        verdict=verdict, fake_probability=float(top), threshold=threshold, uncertain_band=band, fake_band=fake_band, model=model, face_found=found,
        faces=decided, faces_judged=len(judged), faces_flagged=sum(face.verdict == "Fake" for face in judged),
        photo_rule=photo_rule(len(judged)) if judged else "",
    )


def predict(
    image: np.ndarray,
    detector: Detector,
    threshold: float | None = None,
    band: float | None = None,
    max_faces: int = 20,
    explain: bool = False,
    fake_band: float | None = None,
) -> Prediction:
    """Find faces in an RGB uint8 image (h, w, 3), classify each; with no face, classify the whole image.

    `threshold`, `band` and `fake_band` default to the model folder's (`detector.threshold`, `.band`, `.fake_band`);
    a `band` given alone is symmetric (`resolve_bands`).
    `explain=True` adds a Grad-CAM heatmap and overlay of the "fake" class to every face (`FaceResult.heatmap/.overlay`).
    """
    prediction = predict_many([image], detector, threshold=threshold, band=band, max_faces=max_faces, fake_band=fake_band)[0]
    if explain:
        from .cam import explain_crop  # lazily: pytorch-grad-cam is only needed for explanations

        for result in (face for face in prediction.faces if face.judged):  # nothing to explain where nothing was judged
            explanation = explain_crop(result.crop, detector.net, detector.data_config, detector.fake_index)
            result.heatmap, result.overlay = explanation.heatmap, explanation.overlay
    return prediction


def _locate(image: np.ndarray, max_faces: int, crop_scale: float = FACE_CROP_SCALE) -> tuple[bool, list[np.ndarray], list[list[int]], list[list[int]]]:
    """(face found, crops, face boxes, crop squares) of one image; the whole image when no face is found. Each crop is
    the square of `crop_scale` x the face's detector box (the model's `face_crop_scale`), clipped to the image.

    Faces are cropped from the upright turn of the image (`upright_turns`: a photo on its side is classified as the
    upright face the model was trained on); boxes and squares are given in the image as uploaded."""
    turns = upright_turns(image)
    upright = np.ascontiguousarray(np.rot90(image, turns)) if turns else image
    faces = detect_faces(upright)[:max_faces]
    if faces:
        crops = [crop_face(upright, face.box, crop_scale) for face in faces]
        boxes = []
        for face in faces:
            x, y, w, h = face.box
            x0, y0, x1, y1 = unturn_square((x, y, x + w, y + h), turns, image.shape)
            boxes.append([x0, y0, x1 - x0, y1 - y0])
        squares = [list(unturn_square(crop_box(face.box, upright.shape, crop_scale), turns, image.shape)) for face in faces]
        return True, crops, boxes, squares
    height, width = image.shape[:2]
    return False, [image], [[0, 0, width, height]], [[0, 0, width, height]]


def predict_many(
    images: list[np.ndarray],
    detector: Detector,
    threshold: float | None = None,
    band: float | None = None,
    max_faces: int = 20,
    batch_size: int = 32,
    fake_band: float | None = None,
) -> list[Prediction]:
    """`predict` for several images, their face crops classified in shared batches (evaluation); no Grad-CAM."""
    threshold = detector.threshold if threshold is None else float(threshold)
    band, fake_band = resolve_bands(band, fake_band, detector.band, detector.fake_band)
    located = [_locate(image, max_faces, detector.face_crop_scale) for image in images]
    logits, unlike = crop_outputs([crop for _, crops, _, _ in located for crop in crops], detector, batch_size=batch_size)
    probabilities, margins = detector.probabilities_from_logits(logits), fake_margin(logits, detector.fake_index)
    predictions, start = [], 0
    for found, crops, boxes, squares in located:
        end = start + len(crops)
        results = [
            FaceResult(box=box, crop_box=square, fake_probability=float(p), verdict="", logit_margin=float(m), crop=crop, unlike_training=bool(u))
            for box, square, p, m, u, crop in zip(boxes, squares, probabilities[start:end], margins[start:end], unlike[start:end], crops)
        ]
        predictions.append(_decide(results, found, threshold, band, detector.name, fake_band))
        start = end
    return predictions
