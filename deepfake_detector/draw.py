"""Pictures the app sends back: data URIs (never written to disk), scaled copies, boxes numbered per face.

Pure functions of arrays; no Gradio, no model.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np

COLOURS = {"Fake": (220, 38, 38), "Real": (22, 163, 74), "Uncertain": (245, 158, 11), "Too small": (100, 116, 139)}  # RGB
THUMB_SIDE = 192


def data_uri(image: np.ndarray, fmt: str = "jpeg") -> str:
    """An RGB uint8 image as a `data:image/...;base64,` URI (JPEG q90 or PNG)."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(f".{'jpg' if fmt == 'jpeg' else fmt}", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90] if fmt == "jpeg" else [])
    if not ok:
        raise ValueError(f"Could not encode the image as {fmt}.")
    return f"data:image/{fmt};base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def fit(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """`image` scaled down so that its longer side is at most `max_side`, and the scale used."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def thumb(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    return cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA if image.shape[0] > side else cv2.INTER_LINEAR)


def annotate(image: np.ndarray, scale: float, faces: list[tuple[list[int], str]], numbers: list[int] | None = None) -> np.ndarray:
    """A copy of `image` (already scaled by `scale`) with one box per face, coloured by verdict and numbered."""
    canvas = image.copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 250))
    numbers = numbers or list(range(1, len(faces) + 1))
    for number, (box, verdict) in zip(numbers, faces):
        x, y, w, h = (round(v * scale) for v in box)
        colour = COLOURS.get(verdict, COLOURS["Too small"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
        label = f"{number} {verdict}"
        font_scale = max(0.5, thickness / 3)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y - th - 6)
        cv2.rectangle(canvas, (x, top), (x + tw + 6, top + th + 6), colour, -1)
        cv2.putText(canvas, label, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
