"""The endpoint functions: the browser page's (detect_ui, rethreshold_ui; hidden from the API page) and the named
API's (predict, predict_batch). Every value a client sends is hostile until checked: handlers get raw values
(preprocess=False) and check each one here, and a file is read only through the upload ledger, which opens nothing
but uploads it issued. Expected failures become a sentence for the visitor; anything else a neutral one.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import gradio as gr
import numpy as np

from deepfake_detector.app.render import DISPLAY_MAX_SIDE, analyse, band_text, provenance_html, render
from deepfake_detector.app.runtime import LEDGER, get_detector, log
from deepfake_detector.draw import annotate, data_uri, fit, thumb
from deepfake_detector.images import SUPPORTED_TEXT, ImageError, load_rgb_array
from deepfake_detector.model import Detector
from deepfake_detector.predict import Prediction, predict
from deepfake_detector.provenance import read_provenance
from deepfake_detector.uploads import PREVIEW_KEEP_S, UploadError

MAX_BATCH = 16


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
        detector = get_detector()
        return gr.update(), gr.update(), gr.update(), band_text(threshold, detector.band, detector.fake_band)
    decided = state["analysis"].prediction  # the slider moves the threshold; both cuts keep their distance from it
    return (*render(state["analysis"], threshold), band_text(threshold, decided.uncertain_band, decided.fake_band))


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
        A dict: `verdict` ("Real", "Fake" or "Uncertain"; with several faces "Fake" only when enough of them are, see `photo_rule`), `fake_probability` (the most suspicious face's), `faces_judged`, `faces_flagged` (faces called Fake), `photo_rule`, `threshold`, `uncertain_band` and `fake_band` (a face is Real below threshold - uncertain_band, Fake from threshold + fake_band up, Uncertain between; the two bands differ when the model raised its Fake cut alone), `model`, `face_found`, and `faces`, one dict per face, largest first, with `box` [x, y, width, height], `crop_box` [x0, y0, x1, y1], `fake_probability` and `verdict`; `provenance`: what the file says about itself (Content Credentials, IPTC source type, generator metadata, camera EXIF), with `declared_verdict` "Fake" only for a trusted signed declaration of AI generation.
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
