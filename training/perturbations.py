"""Image perturbations for robustness evaluation, as one named, documented table.

`PERTURBATIONS` maps a name to a `Perturbation`: the function, the exact parameters it is called with
(written into metrics.json so a reader knows what "blur_sigma2" meant) and a sentence for the report.
`PERTURBATION_SETS["icip"]` is the processing of the ICIAP 2022 Face Deepfake Detection Challenge
(Guarnera et al., 2022): rotation, mirroring, Gaussian blur, scaling, cropping and JPEG re-compression.
The challenge did not publish one fixed parameter list, so the parameters here are our choice, stated
per entry; they are not a reproduction of the challenge's test set.

Mirroring and the reflected rotation are albumentations transforms with fixed parameters (the same pixels as the
OpenCV calls they replaced). Blur, scaling, cropping and JPEG stay on OpenCV/numpy: albumentations' versions differ
(its Gaussian kernel is PIL's, off by one grey level; RandomScale truncates sizes where `scale` rounds; its JPEG
encodes RGB as if it were BGR), and these parameters are the ones every published number was measured with.

Every function takes and returns an (h, w, 3) uint8 RGB array and is deterministic: the one random
perturbation (`crop_random_80`) draws its offset from a generator seeded with a fixed seed and a
checksum of the image, so an image gets the same crop whatever order or batch it is evaluated in.
Perturbations act on the decoded image, before `classify_crops` canonicalizes it (square crop, resize
to 128 px, JPEG q75), exactly as a processed upload would reach the app.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable

import albumentations as A
import cv2
import numpy as np

from deepfake_detector.preprocess import jpeg_round_trip

RANDOM_CROP_SEED = 2022


def _check(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("Perturbations take an (h, w, 3) uint8 RGB array; decode with deepfake_detector.images.load_rgb_array.")
    return image


def rotate_right_angle(image: np.ndarray, angle: int) -> np.ndarray:
    """Counter-clockwise rotation by a multiple of 90 degrees: lossless, height and width swap for 90/270."""
    if angle % 90:
        raise ValueError(f"rotate_right_angle needs a multiple of 90 degrees, got {angle}; use rotate_arbitrary.")
    return np.ascontiguousarray(np.rot90(_check(image), k=(angle // 90) % 4))


def rotate_arbitrary(image: np.ndarray, angle: float, mode: str) -> np.ndarray:
    """Counter-clockwise rotation about the centre by `angle` degrees (bilinear).

    mode "reflect": same size, the corners the rotation uncovers are filled by mirroring the image
    (no black wedges for the model to key on). mode "crop": the largest axis-aligned centred rectangle
    that holds only image pixels (for 45 degrees on a square: side / sqrt(2)).
    """
    if mode not in ("reflect", "crop"):
        raise ValueError(f"rotate_arbitrary mode must be 'reflect' or 'crop', got {mode!r}.")
    height, width = _check(image).shape[:2]
    # A fixed angle makes albumentations' random rotation deterministic. Its own crop_border rounds the inscribed
    # rectangle differently (71 px where ours keeps 70 for 100 px at 45 degrees), so "crop" crops here.
    rotate = A.Rotate(limit=(angle, angle), interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_REFLECT_101, p=1.0)
    rotated = rotate(image=image)["image"]
    if mode == "reflect":
        return np.ascontiguousarray(rotated)
    inner_w, inner_h = _largest_inscribed_rectangle(width, height, angle)
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    return np.ascontiguousarray(rotated[top : top + inner_h, left : left + inner_w])


def _largest_inscribed_rectangle(width: int, height: int, angle: float) -> tuple[int, int]:
    """Sides of the largest axis-aligned rectangle inside a width x height rectangle rotated by `angle`,
    clamped to the canvas (the standard closed form; 45 degrees on a square gives side / sqrt(2))."""
    theta = np.deg2rad(angle % 180)
    sin, cos = abs(np.sin(theta)), abs(np.cos(theta))
    long_side, short_side = max(width, height), min(width, height)
    if short_side <= 2.0 * sin * cos * long_side or abs(sin - cos) < 1e-10:
        half = 0.5 * short_side
        inner_w, inner_h = (half / sin, half / cos) if width >= height else (half / cos, half / sin)
    else:
        cos_2a = cos * cos - sin * sin
        inner_w, inner_h = (width * cos - height * sin) / cos_2a, (height * cos - width * sin) / cos_2a
    return max(1, min(width, int(np.floor(inner_w)))), max(1, min(height, int(np.floor(inner_h))))


def mirror(image: np.ndarray, axis: str) -> np.ndarray:
    """Flip "horizontal" (left-right) or "vertical" (upside down)."""
    flips = {"horizontal": A.HorizontalFlip(p=1.0), "vertical": A.VerticalFlip(p=1.0)}
    if axis not in flips:
        raise ValueError(f"mirror axis must be 'horizontal' or 'vertical', got {axis!r}.")
    return np.ascontiguousarray(flips[axis](image=_check(image))["image"])


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation `sigma` px (kernel 2*ceil(3*sigma)+1, reflected borders)."""
    if sigma <= 0:
        raise ValueError(f"gaussian_blur needs sigma > 0, got {sigma}.")
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(_check(image), (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)


def scale(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize both sides by `factor` (area interpolation down, bicubic up), at least 1 px."""
    if factor <= 0:
        raise ValueError(f"scale needs factor > 0, got {factor}.")
    height, width = _check(image).shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interpolation)


def crop(image: np.ndarray, fraction: float, position: str) -> np.ndarray:
    """Keep `fraction` of each side: "center", or "random" (offset seeded by the image's checksum)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"crop fraction must be in (0, 1], got {fraction}.")
    height, width = _check(image).shape[:2]
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    if position == "center":
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
    elif position == "random":
        rng = np.random.default_rng([RANDOM_CROP_SEED, zlib.crc32(image.tobytes())])
        top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    else:
        raise ValueError(f"crop position must be 'center' or 'random', got {position!r}.")
    return np.ascontiguousarray(image[top : top + crop_h, left : left + crop_w])


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """JPEG encode at `quality` (1-100, OpenCV/libjpeg, 4:2:0) and decode again."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1-100, got {quality}.")
    return jpeg_round_trip(_check(image), quality)


@dataclass(frozen=True)
class Perturbation:
    """One table entry: `function(image, **params)`."""

    name: str
    function: Callable[..., np.ndarray]
    params: dict = field(default_factory=dict)
    description: str = ""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.function(image, **self.params)

    def to_json(self) -> dict:
        return {"function": self.function.__name__, "params": dict(self.params), "description": self.description}


_TABLE = [
    Perturbation("rotate_90", rotate_right_angle, {"angle": 90}, "rotation by 90 degrees (lossless)"),
    Perturbation("rotate_180", rotate_right_angle, {"angle": 180}, "rotation by 180 degrees (lossless)"),
    Perturbation("rotate_270", rotate_right_angle, {"angle": 270}, "rotation by 270 degrees (lossless)"),
    Perturbation("rotate_45_reflect", rotate_arbitrary, {"angle": 45, "mode": "reflect"}, "rotation by 45 degrees, same size, corners filled by reflection"),
    Perturbation("rotate_45_crop", rotate_arbitrary, {"angle": 45, "mode": "crop"}, "rotation by 45 degrees, cropped to the inscribed rectangle"),
    Perturbation("mirror_horizontal", mirror, {"axis": "horizontal"}, "left-right mirror"),
    Perturbation("mirror_vertical", mirror, {"axis": "vertical"}, "upside-down mirror"),
    Perturbation("blur_sigma1", gaussian_blur, {"sigma": 1.0}, "Gaussian blur, sigma 1 px (kernel 7)"),
    Perturbation("blur_sigma2", gaussian_blur, {"sigma": 2.0}, "Gaussian blur, sigma 2 px (kernel 13)"),
    Perturbation("blur_sigma3", gaussian_blur, {"sigma": 3.0}, "Gaussian blur, sigma 3 px (kernel 19)"),
    Perturbation("scale_0.5", scale, {"factor": 0.5}, "downscaled to half size (area)"),
    Perturbation("scale_2.0", scale, {"factor": 2.0}, "upscaled to double size (bicubic)"),
    Perturbation("crop_center_80", crop, {"fraction": 0.8, "position": "center"}, "centre crop keeping 80% of each side"),
    Perturbation("crop_random_80", crop, {"fraction": 0.8, "position": "random"}, "crop keeping 80% of each side at a seeded random offset"),
    Perturbation("jpeg_90", jpeg, {"quality": 90}, "JPEG re-compression at quality 90"),
    Perturbation("jpeg_70", jpeg, {"quality": 70}, "JPEG re-compression at quality 70"),
    Perturbation("jpeg_50", jpeg, {"quality": 50}, "JPEG re-compression at quality 50"),
    Perturbation("jpeg_30", jpeg, {"quality": 30}, "JPEG re-compression at quality 30"),
]

PERTURBATIONS: dict[str, Perturbation] = {entry.name: entry for entry in _TABLE}
PERTURBATION_SETS: dict[str, list[str]] = {"icip": [entry.name for entry in _TABLE]}


def perturbation_set(name: str | None) -> list[Perturbation]:
    """The perturbations of a named set ("icip"); None or "none" gives an empty list."""
    if name is None or name == "none":
        return []
    if name not in PERTURBATION_SETS:
        raise ValueError(f"Unknown perturbation set {name!r}; choose one of {sorted(PERTURBATION_SETS)} or 'none'.")
    return [PERTURBATIONS[key] for key in PERTURBATION_SETS[name]]
