"""Pictures the app sends back: data URIs (never written to disk), scaled copies, boxes numbered per face (labels
placed so that none overlaps another, numbers only on crowds).

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


# More faces than this, or any face narrower than its "n Verdict" label, and the boxes carry only their numbers (the
# verdict is the box's colour; the page lists number -> verdict -> probability below the photo).
FULL_LABEL_MAX_FACES = 4
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _place(box: tuple[int, int, int, int], size: tuple[int, int], shape: tuple[int, ...], taken: list, faces: list) -> tuple[int, int, int, int]:
    """A (x0, y0, x1, y1) rectangle of `size` (w, h) next to `box` (x, y, w, h) inside the image, overlapping no
    rectangle in `taken`: above the box, inside its top, below it, beside it, then on rings ever further away. Among
    the first spots, one that also keeps clear of other faces' boxes is preferred."""
    x, y, w, h = box
    lw, lh = size
    height, width = shape[:2]

    def spots():
        yield from [(x, y - lh), (x, y), (x, y + h), (x + w, y), (x - lw, y), (x + w - lw, y - lh), (x, y + h - lh)]
        for radius in range(1, max(width // max(lw, 1), height // max(lh, 1)) + 2):  # rings of label-sized steps
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    if max(abs(dx), abs(dy)) == radius:
                        yield x + dx * lw, y + dy * lh

    first_free = None
    for tried, (cx, cy) in enumerate(spots()):
        cx, cy = min(max(0, cx), max(0, width - lw)), min(max(0, cy), max(0, height - lh))
        spot = (cx, cy, cx + lw, cy + lh)
        if any(_overlaps(spot, other) for other in taken):
            continue
        if not any(_overlaps(spot, face) for face in faces):
            return spot
        first_free = first_free or spot
        if tried > 60:  # far enough: a free spot that touches another face's box is better than a label far away
            return first_free
    return first_free or spot  # only when the labels fill the whole image


def label_layout(shape: tuple[int, ...], scale: float, faces: list[tuple[list[int], str]], numbers: list[int] | None = None) -> tuple[list[str], list[tuple[int, int, int, int]], float]:
    """(label texts, label rectangles (x0, y0, x1, y1) in the scaled image, font scale) for `faces` drawn on an image
    of `shape`: "3 Fake" on a few large faces, "3" on many or small ones; no two rectangles overlap."""
    numbers = numbers or list(range(1, len(faces) + 1))
    boxes = [tuple(round(v * scale) for v in box) for box, _ in faces]
    thickness = max(2, round(max(shape[:2]) / 250))
    font_scale = max(0.5, thickness / 3)
    full = [f"{number} {verdict}" for number, (_, verdict) in zip(numbers, faces)]
    compact = len(faces) > FULL_LABEL_MAX_FACES or any(cv2.getTextSize(text, FONT, font_scale, 1)[0][0] + 6 > box[2] for text, box in zip(full, boxes))
    labels = [str(number) for number in numbers] if compact else full
    if compact:  # digits about a third as tall as the smallest face, never under font scale 0.4
        smallest = min((box[3] for box in boxes), default=0)
        digit_height = cv2.getTextSize("0", FONT, 1.0, 1)[0][1]  # pixels at font scale 1
        font_scale = min(font_scale, max(0.4, smallest / 3 / digit_height))
    face_rects = [(x, y, x + w, y + h) for x, y, w, h in boxes]
    order = sorted(range(len(faces)), key=lambda i: (boxes[i][1], boxes[i][0]))  # top to bottom: labels go above first
    placed: dict[int, tuple[int, int, int, int]] = {}
    for i in order:
        (tw, th), _ = cv2.getTextSize(labels[i], FONT, font_scale, 1)
        others = face_rects[:i] + face_rects[i + 1 :]
        placed[i] = _place(boxes[i], (tw + 6, th + 6), shape, list(placed.values()), others)
    rects = [placed[i] for i in range(len(faces))]
    return labels, rects, font_scale


def annotate(image: np.ndarray, scale: float, faces: list[tuple[list[int], str]], numbers: list[int] | None = None) -> np.ndarray:
    """A copy of `image` (already scaled by `scale`) with one box per face, coloured by verdict and numbered; labels
    never overlap (`label_layout`)."""
    canvas = image.copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 250))
    labels, rects, font_scale = label_layout(canvas.shape, scale, faces, numbers)
    if len(faces) > FULL_LABEL_MAX_FACES:
        thickness = max(1, thickness // 2)  # thinner boxes on a crowd: neighbours' lines do not merge
    for box, verdict in faces:
        x, y, w, h = (round(v * scale) for v in box)
        colour = COLOURS.get(verdict, COLOURS["Too small"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour, thickness)
    for (_, verdict), label, (x0, y0, x1, y1) in zip(faces, labels, rects):  # labels last: no box line crosses one
        colour = COLOURS.get(verdict, COLOURS["Too small"])
        cv2.rectangle(canvas, (x0, y0), (x1 - 1, y1 - 1), colour, -1)
        (_, th), _ = cv2.getTextSize(label, FONT, font_scale, 1)
        cv2.putText(canvas, label, (x0 + 3, y0 + 3 + th), FONT, font_scale, (255, 255, 255), 1, cv2.LINE_AA)
    return canvas
