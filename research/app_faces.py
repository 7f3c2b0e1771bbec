"""The faces `predict()` sees, decoded once: training rows framed by the app's own face detection, optionally processed.

`training.face_cache` holds each row's centred square, the frame the CNN recipes train on (their augmentation covers
the difference). A head fitted on frozen features without augmentation cannot cover it: `clip-d6-160` ranked the
cached test squares at ROC AUC 0.971 but the faces `predict()` detected and framed at 0.928 (stop 10). Here each row
goes through `predict`'s face location (`_locate`: upright turn, detection, the square of `crop_scale` x the box,
FACE_CROP_SCALE = 1.45 unless asked; the whole image when no face is found) and the first (largest) face is
canonicalised, as `classify_crops` would do. A model fitted on faces framed at another `crop_scale` must say so in its
config.json (`face_crop_scale`), so that `predict()` frames uploads alike. A row that already is a face the app cropped
from a photo (`face_index` >= 0, `training.build_dataset`, at FACE_CROP_SCALE) is used as it is: at a wider
`crop_scale` it holds less of the photo around the face than `predict()` would crop.

`view` names a processed copy: "clean", or "augmented-<seed>", where every row's decoded image first gets a random
mirror and one random processing (`random_processing`) drawn from a generator seeded by the seed and the row number,
before the face is located, as a processed upload reaches the app. The parameters are ranges around the ICIAP
processing, not its fixed test values. "resaved-<seed>": the row's image re-saved once the way people re-save photos
(`random_resave`: JPEG quality 80-98 or WEBP 80-95), nothing else: a copy whose score should not move at all.

    DIR/<split>.<view>[.x<crop_scale>].npy   (n, 128, 128, 3) uint8, and .json: rows digest (a stale cache is rebuilt)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepfake_detector.faces import FACE_CROP_SCALE
from deepfake_detector.images import load_rgb_array
from deepfake_detector.preprocess import CANONICAL_JPEG_QUALITY, CANONICAL_SIZE, canonicalize
from training import perturbations as P
from training.face_cache import cached_faces


def random_processing(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random mirror (p 0.5), then one of: nothing, a rotation by up to 45 degrees (reflected or cropped), a quarter
    turn, Gaussian blur (sigma 0.5-3.5), a rescale (x0.4-2), a crop keeping 70-95% of each side, JPEG (quality 25-95)."""
    if rng.random() < 0.5:
        image = P.mirror(image, "horizontal")
    choice = int(rng.integers(7))
    if choice == 1:
        return P.rotate_arbitrary(image, float(rng.uniform(-45, 45)), str(rng.choice(["reflect", "crop"])))
    if choice == 2:
        return P.rotate_right_angle(image, int(rng.choice([90, 180, 270])))
    if choice == 3:
        return P.gaussian_blur(image, float(rng.uniform(0.5, 3.5)))
    if choice == 4:
        return P.scale(image, float(np.exp(rng.uniform(np.log(0.4), np.log(2.0)))))
    if choice == 5:
        return P.crop(image, float(rng.uniform(0.7, 0.95)), "random")
    if choice == 6:
        return P.jpeg(image, int(rng.integers(25, 96)))
    return image


def random_resave(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image encoded once as JPEG (quality 80-98, Pillow's default chroma subsampling) or WEBP (quality 80-95),
    with even odds, and decoded again as an upload would be."""
    import io

    from PIL import Image

    fmt, quality = ("JPEG", int(rng.integers(80, 99))) if rng.random() < 0.5 else ("WEBP", int(rng.integers(80, 96)))
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, quality=quality)
    return load_rgb_array(buffer.getvalue())


VIEWS = {"augmented": random_processing, "resaved": random_resave}


def app_face(image: np.ndarray, crop_scale: float = FACE_CROP_SCALE, size: int = CANONICAL_SIZE, quality: int = CANONICAL_JPEG_QUALITY) -> np.ndarray:
    """The canonical face `predict()` would classify first for this image (its largest face, or the whole image) with
    a model whose `face_crop_scale` is `crop_scale` (and whose canonical face is `size` px at JPEG `quality`)."""
    from deepfake_detector.predict import _locate

    return canonicalize(_locate(image, max_faces=1, crop_scale=crop_scale)[1][0], size, quality)


def cache_stem(name: str, view: str, crop_scale: float = FACE_CROP_SCALE, size: int = CANONICAL_SIZE, quality: int = CANONICAL_JPEG_QUALITY) -> str:
    """The cache's file stem: `<split>.<view>`, plus `.x<crop_scale>` for any framing but the default and
    `.c<size>q<quality>` for any canonical face but the default 128 px / q75."""
    stem = f"{name}.{view}" if crop_scale == FACE_CROP_SCALE else f"{name}.{view}.x{crop_scale:g}"
    return stem if (size, quality) == (CANONICAL_SIZE, CANONICAL_JPEG_QUALITY) else f"{stem}.c{size}q{quality}"


def parse_view(view: str) -> tuple[str, int | None]:
    """("clean", None) or (kind, seed) for "<kind>-<seed>", kind one of VIEWS; anything else is refused."""
    if view == "clean":
        return "clean", None
    prefix, _, seed = view.partition("-")
    if prefix not in VIEWS or not seed.isdigit():
        raise ValueError(f"view must be 'clean', 'augmented-<seed>' or 'resaved-<seed>', got {view!r}")
    return prefix, int(seed)


def build(split, cache_dir: Path, name: str, view: str = "clean", crop_scale: float = FACE_CROP_SCALE,
          size: int = CANONICAL_SIZE, quality: int = CANONICAL_JPEG_QUALITY) -> np.ndarray:
    """Every row of `split` as the app's canonical face (see the module docstring), cached in `cache_dir`."""
    from deepfake_detector.model import valid_face_crop_scale

    kind, seed = parse_view(view)
    crop_scale = valid_face_crop_scale(crop_scale)  # the range a model folder may ask for

    def face_of(index: int, row: dict) -> np.ndarray:
        image = load_rgb_array(row["image"]["bytes"])
        if seed is not None:
            image = VIEWS[kind](image, np.random.default_rng([seed, index]))
        return canonicalize(image, size, quality) if row["face_index"] >= 0 else app_face(image, crop_scale, size, quality)

    return cached_faces(split, cache_dir, cache_stem(name, view, crop_scale, size, quality), ["image", "face_index"], face_of,
                        f"app faces ({name}, {view}, x{crop_scale:g}, {size} px q{quality})",
                        meta={"view": view, "crop_scale": crop_scale, "quality": quality}, size=size)
