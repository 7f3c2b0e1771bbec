"""Deepfake face detector: a Gradio app (browser UI + named API) over `deepfake_detector.predict`.

Run locally with `python app.py [--model FOLDER_OR_hf-hub:ORG/NAME]` (honours GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT and MODEL_ID); a Hugging Face Space runs the same file unchanged. The model is loaded before the
server starts; if it cannot be, the process exits with status 2 and the reason.

Privacy (`deepfake_detector.uploads`): every upload gets a private path; a request reads its own upload into memory
and the file is deleted when the request ends (API) or PREVIEW_KEEP_S seconds later (the browser page, so that the
photo's preview can load). Unread uploads are deleted after UNCLAIMED_TTL_S, the upload folder at exit (SIGTERM
included), and folders left by killed processes at the next start. Result images travel back inside the page as data
URIs, so nothing derived from an upload is written to disk.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import functools
import html
import json
import logging
import math
import os
import re
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_detector import uploads

# Gradio components capture GRADIO_TEMP_DIR when they are built (below, at import): give this process a locked
# folder of its own under the host's choice or the system temp folder. This is the one write at import time.
_UPLOAD_ROOT = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "deepfake-detector-uploads")
UPLOAD_FOLDER = uploads.process_folder(_UPLOAD_ROOT)
os.environ["GRADIO_TEMP_DIR"] = str(UPLOAD_FOLDER)
atexit.register(uploads.remove_folder, UPLOAD_FOLDER)

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from gradio_client import handle_file  # noqa: E402
from huggingface_hub import ModelCard  # noqa: E402

from starlette.middleware import Middleware  # noqa: E402

from deepfake_detector.draw import COLOURS, THUMB_SIDE, annotate, data_uri, fit, thumb  # noqa: E402
from deepfake_detector.headers import SecurityHeadersMiddleware  # noqa: E402
from deepfake_detector.images import SUPPORTED_TEXT, ImageError, load_rgb_array  # noqa: E402
from deepfake_detector.model import DEFAULT_MODEL_DIR, LABEL_NAMES, Detector, load_detector  # noqa: E402
from deepfake_detector.predict import MIN_FACE_SIDE, NO_FACE, TOO_SMALL, UNCERTAIN_BAND, Prediction, predict  # noqa: E402
from deepfake_detector.provenance import DECLARED_FAKE, Provenance, read_provenance  # noqa: E402
from deepfake_detector.uploads import MAX_UPLOAD_BYTES, PREVIEW_KEEP_S, UNCLAIMED_TTL_S, UploadError, UploadLedger  # noqa: E402

APP_DIR = Path(__file__).resolve().parent
# NASA's public-domain portrait of astronaut Eileen Collins, as shipped with scikit-image (the API page's example).
EXAMPLE_PHOTO_URL = "https://raw.githubusercontent.com/scikit-image/scikit-image/main/skimage/data/astronaut.png"
EXAMPLES_DIR = APP_DIR / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
# Longest side of the annotated photo sent back to the browser (data URI size), and of each face thumbnail.
DISPLAY_MAX_SIDE = 1024
MAX_BATCH = 16
# Requests analysed at once. Each gets cpu_count // CONCURRENCY torch threads (TORCH_THREADS overrides): on a 2-core
# machine two requests with torch's default two threads each oversubscribe the CPU (benchmarks/load.json: 7.5 -> 8.4
# requests/s with one thread each, single-client p50 225 -> 205 ms).
CONCURRENCY = 2

log = logging.getLogger("deepfake_detector.app")
# UPLOAD_TTL_S: how long an upload that no request reads may stay (default UNCLAIMED_TTL_S); stalled partial uploads
# are dropped after at most the same time.
_TTL_S = float(os.environ.get("UPLOAD_TTL_S") or UNCLAIMED_TTL_S)
LEDGER = UploadLedger(UPLOAD_FOLDER, ttl=_TTL_S, stalled=min(uploads.STALLED_UPLOAD_S, _TTL_S))
_detector: Detector | None = None
_model_id = os.environ.get("MODEL_ID") or str(DEFAULT_MODEL_DIR)


# ---------------------------------------------------------------- model (loaded by main(), before the server starts)


def load_model(model_id: str) -> Detector:
    """Load the detector the app serves; main() exits with the reason if this raises."""
    global _detector, _model_id
    _detector = load_detector(model_id)
    _model_id = str(model_id)
    return _detector


def get_detector() -> Detector:
    if _detector is None:  # only when `demo` is launched without main()
        raise gr.Error("The detector model is not loaded; start the app with `python app.py`.")
    return _detector


# ---------------------------------------------------------------- inputs: every value is hostile until checked


def handler(fn):
    """Expected failures become their own sentence; anything else a neutral one (details go to the server log only)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ImageError, UploadError) as error:
            raise gr.Error(str(error)) from None
        except Exception:  # noqa: BLE001 - a visitor gets a sentence, the operator the traceback
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong while analysing this image; it has been deleted. Please try another one.") from None

    return wrapped


def _upload_path(payload) -> object:
    """The `path` of a FileData payload. Only paths the upload ledger issued are ever opened (see read_upload)."""
    return payload.get("path") if isinstance(payload, dict) else payload


def read_upload(payload, keep_for: float = 0.0) -> bytes:
    """The bytes of the request's own upload (size-checked); the file is deleted now or `keep_for` seconds later."""
    if payload is None:
        raise gr.Error(f"Please upload a photo ({SUPPORTED_TEXT}) first.")
    return LEDGER.read(_upload_path(payload), keep_for=keep_for)


def check_threshold(value, allow_none: bool = True) -> float | None:
    """A threshold from a client: None (the model's own), or a finite number in [0, 1]; anything else a sentence."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = repr(value) if isinstance(value, (bool, int, float)) else f"a {type(value).__name__}"  # never echo text back
        raise gr.Error(f"threshold must be a number between 0 and 1 (got {shown}); leave it empty to use the model's.")
    if not 0.0 <= value <= 1.0:
        raise gr.Error(f"threshold must be between 0 and 1 (got {value}); leave it empty to use the model's.")
    return float(value)


def check_flag(value, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise gr.Error(f"{name} must be true or false.")
    return value


# ---------------------------------------------------------------- the analysis a session keeps in memory


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


def band_text(threshold: float, band: float) -> str:
    low, high = max(0.0, threshold - band), min(1.0, threshold + band)
    return (
        f"Decision threshold **{threshold:.2f}** on the calibrated fake probability. Scores from **{low:.2f}** up to "
        f"**{high:.2f}** (threshold ± {band:.2f}) are reported as **Uncertain**; above that **Fake**, below it **Real**."
    )


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


def _summary(prediction: Prediction) -> str:
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
            f"\n\nThreshold {prediction.threshold:.2f}, uncertain band ± {prediction.uncertain_band:.2f}. Model: `{prediction.model}`.")


def render(analysis: Analysis | None, threshold: float) -> tuple[str, str, str]:
    """(summary markdown, annotated photo HTML, per-face gallery HTML) for `analysis` at `threshold`."""
    if analysis is None:
        return "", "", ""
    prediction = analysis.prediction.rethreshold(threshold)
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
        cards.append(
            f'<figure class="dfd-face" style="margin:0;min-width:0;border:3px solid rgb({r},{g},{b});border-radius:6px;padding:4px">'
            f'<div style="display:flex;gap:4px">{pictures}</div>'
            f'<figcaption class="dfd-caption" style="font-size:0.9em">{html.escape(name)}: <b>{face.verdict}</b>{score}</figcaption></figure>'
        )
    faces_html = ""
    if cards:
        grid = f"display:grid;grid-template-columns:repeat(auto-fill,minmax(min({card_min}px,100%),1fr));gap:8px;margin:6px 0"
        faces_html = f'<div class="dfd-faces" style="{grid}">' + "".join(cards) + f'</div><p style="font-size:0.85em">{HEATMAP_NOTE}</p>{COLOUR_BAR}'
    return _summary(prediction), photo_html, faces_html


# ---------------------------------------------------------------- UI handlers (browser)


@handler
def detect_ui(payload, threshold, state: dict | None):
    """Analyse the photo in the Image input (raw FileData: only an upload the ledger issued is read)."""
    if payload is None:
        return "", "", "", "", None
    threshold = check_threshold(threshold, allow_none=False)
    path = _upload_path(payload)
    if state and state.get("path") == path:
        analysis = state["analysis"]  # the same upload again (the Detect button, a repeated change event): from memory
    else:
        data = read_upload(payload, keep_for=PREVIEW_KEEP_S)
        analysis = analyse(load_rgb_array(data), get_detector())
        analysis.provenance = read_provenance(data)
    summary, photo, faces = render(analysis, threshold)
    return summary, provenance_html(analysis.provenance), photo, faces, {"path": path, "analysis": analysis}


@handler
def rethreshold_ui(threshold, state: dict | None):
    threshold = check_threshold(threshold, allow_none=False)
    if not state or "analysis" not in state:
        return gr.update(), gr.update(), gr.update(), band_text(threshold, get_detector().band)
    return (*render(state["analysis"], threshold), band_text(threshold, state["analysis"].prediction.uncertain_band))


# ---------------------------------------------------------------- API functions (gradio_client)


def result_json(rgb: np.ndarray, detector: Detector, threshold: float | None = None, include_overlay: bool = False) -> dict:
    """Prediction.to_json(), plus data-URI pictures when `include_overlay` (annotated photo, one heatmap per face)."""
    prediction: Prediction = predict(rgb, detector, threshold=threshold, explain=include_overlay)
    result = prediction.to_json()
    if include_overlay:
        display, scale = fit(rgb, DISPLAY_MAX_SIDE)
        boxes = [(face.box, face.verdict) for face in prediction.faces]
        result["overlay"] = data_uri(annotate(display, scale, boxes if prediction.face_found else []))
        for face_json, face in zip(result["faces"], prediction.faces):
            face_json["heatmap"] = data_uri(thumb(face.overlay)) if face.overlay is not None else None  # judged faces only
    return result


@handler
def predict_api(image, threshold=None, include_overlay=False) -> dict:
    """Find every face in one photo and say, for each, whether it is real or generated, with a calibrated probability.

    Parameters:
        image: the photo (gradio_client: handle_file("photo.jpg")); JPEG, PNG, WebP, BMP or GIF, at most 20 MB and 50 megapixels.
        threshold: decision threshold on the fake probability, a number in [0, 1]; leave it out to use the model's own.
        include_overlay: true to add pictures as data URIs: the annotated photo (`overlay`) and a Grad-CAM heatmap per face.
    Returns:
        A dict: `verdict` ("Real", "Fake" or "Uncertain"; with several faces "Fake" only when enough of them are, see `photo_rule`), `fake_probability` (the most suspicious face's), `faces_judged`, `faces_flagged` (faces called Fake), `photo_rule`, `threshold`, `uncertain_band`, `model`, `face_found`, and `faces`, one dict per face, largest first, with `box` [x, y, width, height], `crop_box` [x0, y0, x1, y1], `fake_probability` and `verdict`; `provenance`: what the file says about itself (Content Credentials, IPTC source type, generator metadata, camera EXIF), with `declared_verdict` "Fake" only for a trusted signed declaration of AI generation.
    """
    data = read_upload(image)  # first, so that the upload is deleted whatever is wrong with the rest
    threshold = check_threshold(threshold)
    include_overlay = check_flag(include_overlay, "include_overlay")
    result = result_json(load_rgb_array(data), get_detector(), threshold, include_overlay)
    result["provenance"] = read_provenance(data).to_json()
    return result


def _file_name(payload) -> str:
    """The name a caller gave a batch item (never a server path)."""
    name = payload.get("orig_name") if isinstance(payload, dict) else None
    name = name or Path(str(_upload_path(payload) or "image")).name
    return str(name)[:200]


@handler
def predict_batch_api(images, threshold=None, include_overlay=False) -> list[dict]:
    """Analyse up to 16 photos in one call: one result per photo, in order; an unreadable photo does not fail the batch.

    Parameters:
        images: the photos (gradio_client: [handle_file("a.jpg"), handle_file("b.png")]), at most 16, same limits as /predict.
        threshold: decision threshold on the fake probability, a number in [0, 1]; leave it out to use the model's own.
        include_overlay: true to add the annotated photo and per-face heatmaps as data URIs to every result.
    Returns:
        A list with one dict per photo: the /predict result plus `file` (the name you sent), or {"file", "error"} with the reason the photo could not be read.
    """
    items = images if isinstance(images, list) else ([] if images is None else [images])
    contents: list[bytes | str] = []
    try:
        if not items:
            raise gr.Error("Please send at least one image.")
        if len(items) > MAX_BATCH:
            raise gr.Error(f"At most {MAX_BATCH} images per batch (got {len(items)}); split the request.")
        for item in items:  # every upload is read (and deleted) before anything else can fail
            try:
                contents.append(read_upload(item))
            except (UploadError, gr.Error) as error:
                contents.append(getattr(error, "message", None) or str(error))
        threshold = check_threshold(threshold)
        include_overlay = check_flag(include_overlay, "include_overlay")
    finally:
        for item in items[len(contents):]:
            LEDGER.discard(_upload_path(item))
    detector = get_detector()
    results = []
    for item, data in zip(items, contents):
        name = _file_name(item)
        if isinstance(data, str):
            results.append({"file": name, "error": data})
            continue
        try:
            result = result_json(load_rgb_array(data), detector, threshold, include_overlay)
            results.append({"file": name, **result, "provenance": read_provenance(data).to_json()})
        except ImageError as error:
            results.append({"file": name, "error": str(error)})
    return results


# ---------------------------------------------------------------- Model and About tabs


ABOUT = """
## What this is
Photos of faces can now be generated or edited by GANs so well that people cannot tell. This app estimates, for
**each face** in a photo, the probability that the face was produced by a generator rather than a camera, and
shows **where** in the face the model looked (Grad-CAM heatmap: where the evidence for *fake* came from in this
model, not a map of edited pixels).

## What it can do
* Find every face in an uploaded, pasted or webcam photo and give each its own verdict: **Real**, **Fake** or
  **Uncertain** (scores close to the threshold).
* Recognise faces made by the generators it was trained on: **StarGAN**, **AttGAN** (attribute editing of real
  faces), **StyleGAN / StyleGAN2 / ThisPersonDoesNotExist** and **Stable Diffusion 2.1** portraits (fully synthetic
  faces), against real CelebA, CelebA-HQ and FFHQ photos and faces from everyday photos of people.
* Read a photo that is on its side or upside down: each face is turned upright before it is judged.
* Say **No face** when it finds none, and **Too small** for a face narrower than {min_face} px: the model was
  trained on faces of a useful size and has nothing to say about cats, landscapes or distant crowds.

## What it cannot do
* It is **not proof**. A score is a statistical estimate from one model; it can be wrong in both directions,
  especially on generators it never saw (other diffusion models, face swaps, newer GANs: trained without SD 2.1,
  the same recipe found SD 2.1 faces *more* real than real photos), heavy compression, blur, filters, screenshots
  or very small faces.
* It is **not forensic or legal evidence** and must not be used to accuse anyone.
* It only looks at faces in still images: no video, audio or text.

## Privacy
Uploaded photos are **not stored**. Each upload gets a private file that only its own request can read; the
request reads it into memory and the file is **deleted when the request ends** (on this page **at most
{preview:.0f} seconds later**, so that your photo's preview can load). A photo that is uploaded but never analysed is
deleted after {ttl:.0f} seconds, and everything left when the server stops. Results are sent back inside the page;
nothing is logged. Files over {size:.0f} MB are refused.
""".format(preview=PREVIEW_KEEP_S, ttl=_TTL_S, size=MAX_UPLOAD_BYTES / 1e6, min_face=MIN_FACE_SIDE)


PLOTS = (
    ("reliability.png", "Reliability (calibration) on the test split"),
    ("confusion_matrix.png", "Confusion matrix"),
    ("roc_curve.png", "ROC curve"),
    ("per_source.png", "Accuracy per source"),
    ("per_perturbation.png", "Robustness to perturbations"),
)
_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")


def _png_uri(file: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(file.read_bytes()).decode("ascii")


def _drop_relative_images(markdown: str) -> str:
    """A card's relative image links would not render in the page (the tab shows the folder's plots itself)."""
    return _IMAGE_LINK.sub(lambda m: m.group(0) if m.group(2).startswith(("https://", "data:")) else "", markdown)


def _metrics(folder: Path) -> dict:
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def model_summary(detector: Detector, metrics: dict) -> str:
    """The Model tab's first screen: what the model is, what it detects and not, headline numbers with their n."""
    lines = [
        f"## {detector.name}",
        f"A `{detector.config.get('architecture', '?')}` classifier of face crops. It gives each face a calibrated "
        "probability of being **generated or edited** by the generators it was trained on (StarGAN, AttGAN, "
        "StyleGAN, StyleGAN2, Stable Diffusion 2.1). It has **not** learnt what generated faces have in common: "
        "a generator it never saw (another diffusion model, a face swap) may well pass as real, and a score is never "
        "proof.",
    ]
    if metrics.get("n_images"):
        real = (metrics.get("per_class") or {}).get("real", {})
        called_fake = 1 - real["recall"] if "recall" in real else None
        numbers = [f"balanced accuracy **{metrics['balanced_accuracy']:.2f}**" if "balanced_accuracy" in metrics else "",
                   f"ROC AUC **{metrics['roc_auc']:.2f}**" if "roc_auc" in metrics else "",
                   f"real faces called fake **{called_fake:.0%}** (of {real.get('support', '?')})" if called_fake is not None else ""]
        lines.append(f"On its held-out test split (n = {metrics['n_images']:,} faces): " + ", ".join(n for n in numbers if n) + ".")
    lines.append(f"Decision threshold {detector.threshold:.2f}; calibration: {detector.calibration_summary}.")
    return "\n\n".join(lines)


def model_tab(detector: Detector) -> tuple[str, str, str]:
    """(summary markdown, plots HTML, details markdown) from the files in the model's folder; no server path."""
    folder = Path(detector.folder)
    metrics = _metrics(folder)
    lines = [model_summary(detector, metrics)]
    card_file = folder / "README.md"
    card = ModelCard.load(card_file) if card_file.is_file() else None
    if _model_id.startswith("hf-hub:"):
        repo = _model_id[len("hf-hub:"):].partition("@")[0]
        lines.append(f"Model card: [huggingface.co/{repo}](https://huggingface.co/{repo})")
    datasets = detector.config.get("dataset") or (card.data.to_dict().get("datasets") if card else None)
    datasets = [datasets] if isinstance(datasets, str) and datasets else (datasets or [])
    if datasets:
        lines.append("Dataset card: " + ", ".join(f"[{d}](https://huggingface.co/datasets/{d})" for d in datasets))
    else:
        lines.append(
            "Dataset card: the training data was built with `training.build_dataset`; its card is `dataset_card.md` "
            "in this app's repository (sources, splits, licences, confounds)."
        )
    report = folder / "report.md"  # written by training.evaluate next to metrics.json, from the same numbers
    details = []
    if report.is_file():
        details.append("## Measured results\n\n" + report.read_text(encoding="utf-8").partition("\n")[2].replace("\n## ", "\n### "))
    if card is not None and card.text.strip():
        details.append("## Model card\n\n" + card.text.strip())
    figures = [
        f'<figure style="display:inline-block;margin:6px;max-width:100%"><img src="{_png_uri(folder / file)}" alt="{title}" '
        f'style="max-width:min(480px,100%)"><figcaption>{title}</figcaption></figure>'
        for file, title in PLOTS
        if (folder / file).is_file()
    ]
    return "\n\n".join(lines), "".join(figures), _drop_relative_images("\n\n".join(details))


def configure(detector: Detector) -> None:
    """Give the page the loaded model's values before launch: the slider's start (and reset) value, the band
    sentence and the Model tab, so that no page load waits for them."""
    threshold = round(detector.threshold, 2)
    UI["threshold"].value = threshold
    UI["band"].value = band_text(threshold, detector.band)
    UI["model_summary"].value, UI["model_plots"].value, UI["model_details"].value = model_tab(detector)


# ---------------------------------------------------------------- the page


def example_files() -> list[str]:
    """The bundled examples, plus two real and two fake images from DATASET_DIR/{real,fake} when it is set."""
    files = sorted(str(p) for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    dataset = os.environ.get("DATASET_DIR")
    if dataset:
        for label in LABEL_NAMES:
            found = sorted(p for p in (Path(dataset) / label).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files += [str(p) for p in found[:2]]
    return files


UI: dict[str, gr.components.Component] = {}  # the components configure() fills in before launch


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Deepfake face detector") as demo:
        gr.Markdown("# Deepfake face detector\nIs each face in a photo real or generated? Upload, paste or take a photo.")
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                state = gr.State(None, time_to_live=900)  # a visitor's last analysis (~3 MB), dropped after 15 min
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        image = gr.Image(
                            label="Photo (JPEG, PNG, WebP, BMP, GIF)",
                            sources=["upload", "clipboard", "webcam"],
                            type="filepath",
                            image_mode=None,  # decoding is deepfake_detector.images' job, not Gradio's
                            elem_id="dfd-input",
                            height=320,
                        )
                        with gr.Accordion("Advanced", open=False, elem_id="dfd-advanced"):
                            threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Decision threshold", elem_id="dfd-threshold")
                            band = gr.Markdown(band_text(0.5, UNCERTAIN_BAND), elem_id="dfd-band")  # configure() sets the model's
                    with gr.Column(scale=2, min_width=300):
                        summary = gr.Markdown(elem_id="dfd-summary")
                        provenance = gr.HTML(elem_id="dfd-provenance")
                        photo = gr.HTML(elem_id="dfd-photo")
                        faces = gr.HTML(elem_id="dfd-faces")
                examples = example_files()
                if examples:
                    gr.Examples(examples=[[f] for f in examples], inputs=[image], label="Examples (see examples/README.md for their sources)")

                LEDGER.keep(image.keep_in_cache)  # the examples' cached copies: readable, never deleted
                outputs = [summary, provenance, photo, faces, state]
                # preprocess=False everywhere: handlers get raw values and check each one themselves; a file is read
                # only through the upload ledger, which opens nothing but uploads it issued.
                image.change(detect_ui, [image, threshold, state], outputs, preprocess=False, api_visibility="private")
                threshold.change(rethreshold_ui, [threshold, state], [summary, photo, faces, band], preprocess=False, api_visibility="private")

            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
            with gr.Tab("Model", id="model"):
                UI["model_summary"] = gr.Markdown(elem_id="dfd-model-summary")
                UI["model_plots"] = gr.HTML(elem_id="dfd-model-plots")
                with gr.Accordion("Full report and model card", open=False):
                    UI["model_details"] = gr.Markdown(elem_id="dfd-model-details")
        UI["threshold"], UI["band"] = threshold, band

        # Named API endpoints for gradio_client: hidden inputs, separate functions from the UI handlers.
        with gr.Group(visible=False):
            api_image = gr.File(label="image", type="filepath", file_types=["image"])
            api_images = gr.File(label="images", type="filepath", file_count="multiple", file_types=["image"])
            # The API page's example calls: a public-domain face photo instead of Gradio's placeholder PDF.
            api_image.example_payload = lambda: handle_file(EXAMPLE_PHOTO_URL)
            api_images.example_payload = lambda: [handle_file(EXAMPLE_PHOTO_URL)]
            api_threshold = gr.Number(label="threshold", value=None)
            api_overlay = gr.Checkbox(label="include_overlay", value=False)
            api_result = gr.JSON(label="result")
            api_results = gr.JSON(label="results")
            api_button = gr.Button()
            api_batch_button = gr.Button()
        api_button.click(predict_api, [api_image, api_threshold, api_overlay], api_result, api_name="predict", preprocess=False)
        api_batch_button.click(
            predict_batch_api, [api_images, api_threshold, api_overlay], api_results, api_name="predict_batch", preprocess=False
        )
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    return demo


demo = build_demo()


def serve(model_id: str) -> int:
    """Load the model, then serve until SIGTERM/SIGINT; returns the exit status."""
    try:
        load_model(model_id)
    except Exception as error:  # noqa: BLE001 - any load failure stops the deployment with its reason
        print(f"error: the detector model could not be loaded from {model_id}: {error}", file=sys.stderr)
        print("Check MODEL_ID or --model (a folder written by training.train, or hf-hub:ORG/NAME).", file=sys.stderr)
        return 2
    configure(_detector)
    import cv2
    import torch

    threads = int(os.environ.get("TORCH_THREADS") or max(1, (os.cpu_count() or 1) // CONCURRENCY))
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)  # OpenCV's own pool (resizes, JPEG round trip of the canonical face)
    uploads.install_gradio_hook(LEDGER)
    LEDGER.forget_hooks.append(demo.upload_file_set.discard)  # Gradio's own record of uploads would grow forever
    LEDGER.start_sweeper()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by Gradio itself.
    demo.launch(
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=False,
        prevent_thread_lock=True,
        app_kwargs={"middleware": [Middleware(SecurityHeadersMiddleware)]},
    )
    while not stop.wait(0.5):  # a timed wait, so the signal handler runs promptly
        pass
    demo.close()
    uploads.remove_folder(UPLOAD_FOLDER)
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the deepfake face detector app.")
    parser.add_argument("--model", "--model_dir", help="model folder or hf-hub:ORG/NAME[@rev] (default: MODEL_ID or the bundled model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(serve(args.model or _model_id))


if __name__ == "__main__":
    main()
