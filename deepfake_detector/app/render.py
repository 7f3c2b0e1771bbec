"""An analysed photo as the page shows it: summary, annotated photo with a box per face, face cards with heatmaps.

`analyse` runs predict() once with Grad-CAM and keeps only what the page needs (pictures as data URIs); `render`
turns that into HTML at any threshold, so the slider re-decides without re-running the model.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from deepfake_detector.draw import COLOURS, THUMB_SIDE, annotate, data_uri, fit, thumb
from deepfake_detector.model import Detector
from deepfake_detector.predict import MIN_FACE_SIDE, NO_FACE, TOO_SMALL, Prediction, predict
from deepfake_detector.provenance import DECLARED_FAKE, Provenance

# Longest side of the annotated photo sent back to the browser (data URI size), and of each face thumbnail.
DISPLAY_MAX_SIDE = 1024


@dataclass
class Analysis:
    """One analysed photo, kept in the visitor's session so the threshold slider can re-decide without a re-upload."""

    display: np.ndarray  # the photo scaled to DISPLAY_MAX_SIDE
    scale: float
    prediction: Prediction  # pixel arrays dropped; re-decided with Prediction.rethreshold
    crops: list[str] = field(default_factory=list)  # data URIs of the face crops
    heatmaps: list[str | None] = field(default_factory=list)  # data URIs of the Grad-CAM overlays (judged faces)
    provenance: Provenance | None = None  # what the file says about itself (a few short strings, no pixels)


def analyse(rgb: np.ndarray, detector: Detector) -> Analysis:
    """predict() with Grad-CAM, turned into what the page shows."""
    prediction = predict(rgb, detector, explain=True)
    display, scale = fit(rgb, DISPLAY_MAX_SIDE)
    faces = prediction.faces if prediction.face_found else []
    crops = [data_uri(thumb(face.crop)) for face in faces]
    heatmaps = [data_uri(thumb(face.overlay)) if face.overlay is not None else None for face in faces]
    for face in prediction.faces:
        face.crop = face.heatmap = face.overlay = None  # the session keeps pictures as data URIs only
    return Analysis(display=display, scale=scale, prediction=prediction, crops=crops, heatmaps=heatmaps)


def provenance_html(provenance: Provenance | None) -> str:
    """The one line above the faces: what the file says about itself (strings from the file are escaped)."""
    if provenance is None:
        return ""
    line = html.escape(provenance.summary)
    if provenance.declares_ai:  # the one case that changes the photo's verdict (deepfake_detector.provenance)
        line = f"<b>Photo verdict: {html.escape(DECLARED_FAKE)}</b> (the pixel verdict above is the model's own). {line}"
    return f'<p class="dfd-provenance" style="margin:4px 0">{line}.</p>'


def cut(value: float) -> str:
    """A cut on the probability: two decimals, a third where it has one (a Fake cut of 0.995 must not read 0.99,
    the score of a face it leaves Uncertain)."""
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def cuts(threshold: float, band: float, fake_band: float | None = None) -> tuple[str, str]:
    """(Real cut, Fake cut) as shown: Real below the first, Fake from the second up, each clipped to [0, 1]."""
    fake_band = band if fake_band is None else fake_band
    return cut(max(0.0, threshold - band)), cut(min(1.0, threshold + fake_band))


def band_text(threshold: float, band: float, fake_band: float | None = None) -> str:
    """The slider's sentence. Symmetric (`fake_band` None or equal to `band`): threshold ± band. Asymmetric: the two
    cuts, since "±" would hide that the Fake cut was raised alone; both move with the slider."""
    if fake_band is None or fake_band == band:  # as it always read
        low, high = max(0.0, threshold - band), min(1.0, threshold + band)
        return (
            f"Decision threshold **{threshold:.2f}** on the calibrated fake probability. Scores from **{low:.2f}** up to "
            f"**{high:.2f}** (threshold ± {band:.2f}) are reported as **Uncertain**; above that **Fake**, below it **Real**."
        )
    low, high = cuts(threshold, band, fake_band)
    why = (": this model asks more of a Fake verdict than of a Real one, since calling a real photo fake is the costlier"
           " error") if fake_band > band else ""
    return (
        f"Decision threshold **{threshold:.2f}** on the calibrated fake probability. **Fake** from **{high}** up "
        f"(threshold + {cut(fake_band)}), **Real** below **{low}** (threshold - {cut(band)}), **Uncertain** between{why}."
    )


def operating_point_text(prediction: Prediction) -> str:
    """The summary's last line on the cuts: "uncertain band ± 0.45" when symmetric, else both cuts."""
    if prediction.fake_band == prediction.uncertain_band:
        return f"Threshold {prediction.threshold:.2f}, uncertain band ± {prediction.uncertain_band:.2f}."
    low, high = cuts(prediction.threshold, prediction.uncertain_band, prediction.fake_band)
    return f"Threshold {prediction.threshold:.2f}: Fake from {high}, Real below {low}."


HEATMAP_NOTE = (
    "Left: the crop the model saw. Right: Grad-CAM, the regions that most raised this face's <i>fake</i> score in this "
    "model (colour scale below). It shows where the model looked, not which pixels were manipulated; on real faces it "
    "often lights up hair, background or the crop's edges."
)
# pytorch-grad-cam draws with OpenCV's JET colour map: blue (no contribution) to red (strongest).
COLOUR_BAR = (
    '<div class="dfd-colourbar" style="display:flex;align-items:center;gap:8px;font-size:0.85em;max-width:420px">'
    "<span>low</span><div style=\"flex:1;height:10px;border-radius:3px;background:linear-gradient(to right,"
    '#00007f,#0000ff,#00ffff,#7fff7f,#ffff00,#ff0000,#7f0000)"></div><span>high</span></div>'
)


def left_to_right(boxes: list[list[int]]) -> list[int]:
    """Face numbers (1-based) in reading order: the leftmost face is 1."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1]))
    numbers = [0] * len(boxes)
    for rank, index in enumerate(order, start=1):
        numbers[index] = rank
    return numbers


def summary(prediction: Prediction) -> str:
    faces = prediction.faces if prediction.face_found else []
    verdicts = [face.verdict for face in faces]
    if prediction.verdict == NO_FACE:
        return (f"## Verdict: {NO_FACE}\n\nNo face was found in this photo, so nothing was judged: the model only "
                "knows faces. Try a photo where a face is clearly visible.")
    small = f"{verdicts.count(TOO_SMALL)} too small to judge (under {MIN_FACE_SIDE} px wide)" if TOO_SMALL in verdicts else ""
    if prediction.verdict == TOO_SMALL:
        return (f"## Verdict: {TOO_SMALL}\n\n{len(faces)} face{'s' if len(faces) > 1 else ''} found, all too small to "
                f"judge (under {MIN_FACE_SIDE} px wide). Upload a larger photo or one taken closer.")
    tally = ", ".join([f"{verdicts.count(v)} {v}" for v in ("Fake", "Uncertain", "Real") if verdicts.count(v)] + ([small] if small else []))
    found = f"{len(faces)} face{'s' if len(faces) > 1 else ''} found, each judged on its own: {tally}."
    rule = ""
    if prediction.faces_judged > 1:  # predict.photo_verdict: one face of many may cross the threshold by chance
        flagged, judged = prediction.faces_flagged, prediction.faces_judged
        rule = f" **{flagged} of {judged}{' judged' if judged < len(faces) else ''} faces {'looks' if flagged == 1 else 'look'} generated.** {prediction.photo_rule}"
    return (f"## Verdict: {prediction.verdict}\n\n{found}{rule} Highest fake probability: **{prediction.fake_probability:.2f}**."
            f"\n\n{operating_point_text(prediction)} Model: `{prediction.model}`.")

def render(analysis: Analysis | None, threshold: float) -> tuple[str, str, str]:
    """(summary markdown, annotated photo HTML, per-face gallery HTML) for `analysis` at `threshold`."""
    if analysis is None:
        return "", "", ""
    prediction = analysis.prediction.rethreshold(threshold)  # both cuts keep their distance from the threshold
    faces = prediction.faces if prediction.face_found else []
    numbers = left_to_right([face.box for face in faces])
    photo = annotate(analysis.display, analysis.scale, [(face.box, face.verdict) for face in faces], numbers)
    photo_html = f'<img class="dfd-photo" src="{data_uri(photo)}" alt="Analysed photo with a box per face" style="width:100%;max-width:640px;height:auto">'
    in_order = sorted(range(len(faces)), key=lambda i: numbers[i])
    if len(faces) > 1:  # the boxes of a crowd carry only numbers: the legend says each number's verdict
        chips = []
        for index in in_order:
            face = faces[index]
            r, g, b = COLOURS.get(face.verdict, COLOURS[TOO_SMALL])
            score = f" {face.fake_probability:.2f}" if face.judged else ""
            chips.append(f'<li><b style="background:rgb({r},{g},{b});color:#fff;padding:0 5px;border-radius:3px">{numbers[index]}</b> {face.verdict}{score}</li>')
        photo_html += ('<ol class="dfd-legend" aria-label="Face number, verdict and fake probability" style="display:flex;flex-wrap:wrap;'
                       'gap:4px 14px;list-style:none;padding:0;margin:6px 0;font-size:0.9em">' + "".join(chips) + "</ol>")
    # Cards in a grid: several per row on a desktop, two per row on a phone for a crowd (smaller cards), one or two
    # large ones for a portrait.
    card_min = 130 if len(faces) > 3 else min(2 * THUMB_SIDE + 20, 300)
    cards = []
    for index in in_order:
        face, crop, heatmap = faces[index], analysis.crops[index], analysis.heatmaps[index]
        r, g, b = COLOURS.get(face.verdict, COLOURS[TOO_SMALL])
        name = f"Face {numbers[index]}"
        size = f'style="width:50%;max-width:{THUMB_SIDE}px;height:auto;min-width:0"'
        pictures = f'<img src="{crop}" alt="{name} crop" {size}>'
        if heatmap and face.judged:
            pictures += f'<img class="dfd-heatmap" src="{heatmap}" alt="{name} Grad-CAM heatmap" {size}>'
        score = f" · fake probability {face.fake_probability:.2f}" if face.judged else ""
        if face.judged and face.unlike_training:  # deepfake_detector.familiarity: never Real
            score += " · unlike the faces the model was trained on, so it is not called Real"
        cards.append(
            f'<figure class="dfd-face" style="margin:0;min-width:0;border:3px solid rgb({r},{g},{b});border-radius:6px;padding:4px">'
            f'<div style="display:flex;gap:4px">{pictures}</div>'
            f'<figcaption class="dfd-caption" style="font-size:0.9em">{html.escape(name)}: <b>{face.verdict}</b>{score}</figcaption></figure>'
        )
    faces_html = ""
    if cards:
        grid = f"display:grid;grid-template-columns:repeat(auto-fill,minmax(min({card_min}px,100%),1fr));gap:8px;margin:6px 0"
        faces_html = f'<div class="dfd-faces" style="{grid}">' + "".join(cards) + f'</div><p style="font-size:0.85em">{HEATMAP_NOTE}</p>{COLOUR_BAR}'
    return summary(prediction), photo_html, faces_html
