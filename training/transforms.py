"""Augmentation presets (albumentations pipelines) and the `with_transform` hook for built datasets.

Every preset starts from the RGB pixels decoded by `deepfake_detector.images` (one decode path for PNG and JPEG)
and ends with a JPEG re-encode of both classes, so file format cannot be learnt:

- `seed`: the original project's seven preprocessing steps at 160x160 (configurable): resize; random blackout of one
  facial feature (eyes, nose or mouth) at the landmarks found by libfacedetection at build time; random rotation and
  horizontal/vertical flips; JPEG compression; Gaussian blur and noise; brightness/saturation/hue/contrast; shear, zoom
  and shifts.
- `robust`: built for unseen generators and processed uploads. Faces are first brought to the canonical face (128 px,
  JPEG q75: what the app feeds the model, see `deepfake_detector.preprocess`), then randomly cropped, blurred,
  sharpened or down-and-up scaled, colour jittered, noised, occasionally rotated or flipped as the challenge's test set
  is, and always re-compressed at a random JPEG quality.
- `robust_heavy`: `robust` with the degradations at the strengths the ICIAP processing is tested at
  (`training.perturbations`): crops down to 45% of the area (the 45-degree cropped rotation keeps 50%), rotation by up to 45
  degrees more often, blur up to sigma 3.2, down-and-up scaling to 30%, JPEG quality from 30, and a degradation on 75% of
  draws instead of 60%.
- `eval`: deterministic: the app's canonical face (square crop, 128 px, JPEG q75) then the model's data config
  (`timm.data.resolve_model_data_config`): resize to its input size, its mean and std.

Run `python -m training.preview` to look at what the model will see.
"""

from __future__ import annotations

from typing import Callable

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from deepfake_detector.images import load_rgb_array
from deepfake_detector.preprocess import CANONICAL_SIZE, canonicalize

PRESETS = ("seed", "robust", "robust_heavy", "eval")
TRAINING_PRESETS = ("seed", "robust", "robust_heavy")
FEATURES = ("eyes", "nose", "mouth")


def feature_region(landmarks: np.ndarray, feature: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) covering one facial feature; landmarks (5, 2): eye, eye, nose, mouth corner, mouth corner.

    Sizes scale with the inter-ocular distance, so the box covers the feature at any resolution."""
    eyes, nose, mouth = landmarks[:2], landmarks[2], landmarks[3:5]
    ocular = max(float(np.linalg.norm(eyes[0] - eyes[1])), 4.0)
    if feature == "eyes":
        (x0, y0), (x1, y1) = eyes.min(axis=0), eyes.max(axis=0)
        pad_x, pad_y = 0.45 * ocular, 0.3 * ocular
    elif feature == "nose":
        (x0, y0), (x1, y1) = nose, nose
        pad_x, pad_y = 0.3 * ocular, 0.35 * ocular
    elif feature == "mouth":
        (x0, y0), (x1, y1) = mouth.min(axis=0), mouth.max(axis=0)
        pad_x, pad_y = 0.25 * ocular, 0.25 * ocular
    else:
        raise ValueError(f"Unknown facial feature {feature!r}; choose one of {FEATURES}.")
    height, width = shape[:2]
    return (
        int(max(0, x0 - pad_x)),
        int(max(0, y0 - pad_y)),
        int(min(width, x1 + pad_x + 1)),
        int(min(height, y1 + pad_y + 1)),
    )


class FacialFeatureBlackout(A.ImageOnlyTransform):
    """Black out one of eyes, nose or mouth, located by the face detector's landmarks.

    Call the pipeline with `landmarks=` an array of shape (5, 2) in the input image's pixels (empty: no-op)."""

    def __init__(self, features: tuple[str, ...] = FEATURES, p: float = 0.5):
        super().__init__(p=p)
        self.features = features

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        landmarks = np.asarray(data.get("landmarks", ()), dtype=np.float32).reshape(-1, 2)
        if len(landmarks) != 5:
            return {"region": None}
        feature = self.features[self.py_random.randrange(len(self.features))]
        return {"region": feature_region(landmarks, feature, params["shape"])}

    def apply(self, img: np.ndarray, region: tuple[int, int, int, int] | None = None, **params) -> np.ndarray:
        if region is None:
            return img
        x0, y0, x1, y1 = region
        img = img.copy()
        img[y0:y1, x0:x1] = 0
        return img

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("features",)


def _finish(data_config: dict, size: tuple[int, int]) -> list:
    return [
        A.Resize(*size, interpolation=cv2.INTER_LINEAR),
        A.Normalize(mean=data_config["mean"], std=data_config["std"], max_pixel_value=255.0),
        ToTensorV2(),
    ]


def seed_preset(data_config: dict, size: int = 160) -> A.Compose:
    """The original project's preprocessing, in its order (160x160 by default)."""
    return A.Compose(
        [
            FacialFeatureBlackout(p=0.5),  # 2. blackout, first: the landmarks are in the input's pixels
            A.Resize(size, size, interpolation=cv2.INTER_AREA),  # 1. resize
            A.OneOf([A.Rotate(limit=30, border_mode=cv2.BORDER_REFLECT_101), A.HorizontalFlip(p=1), A.VerticalFlip(p=1)], p=0.6),  # 3.
            A.ImageCompression(quality_range=(50, 95), p=1.0),  # 4. always: both classes re-encoded
            A.GaussianBlur(sigma_limit=(0.3, 1.5), p=0.2),  # 5. blur ...
            A.GaussNoise(std_range=(0.01, 0.05), p=0.2),  # ... and noise
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=0.5),  # 6.
            A.Affine(shear=(-10, 10), scale=(0.9, 1.1), translate_percent=(-0.08, 0.08), border_mode=cv2.BORDER_REFLECT_101, p=0.5),  # 7.
            *_finish(data_config, (size, size)),
        ]
    )


def robust_preset(data_config: dict, canonical_input: bool = False, heavy: bool = False) -> A.Compose:
    """Format-, resolution- and processing-invariant training (see the module docstring).

    `canonical_input`: the images are canonical faces already (`training.face_cache`), so the first step is skipped.
    `heavy`: the `robust_heavy` strengths (processing as strong as the ICIAP evaluation applies)."""
    _, height, width = data_config["input_size"]
    # The canonical face first, exactly as at inference: a 128-px JPEG q75 fake re-encoded at q75 on its own
    # grid barely changes, so without this step a later high-quality re-encode would keep the fakes' original
    # q75 blocking while erasing any on PNG reals: a format shortcut in training only.
    canonical = [] if canonical_input else [A.Lambda(name="canonicalize", image=_canonicalize)]
    return A.Compose(
        [
            FacialFeatureBlackout(p=0.1),
            *canonical,
            A.RandomResizedCrop(
                size=(CANONICAL_SIZE, CANONICAL_SIZE), scale=(0.45 if heavy else 0.7, 1.0), ratio=(0.9, 1.1), area_for_downscale="image"
            ),
            A.HorizontalFlip(p=0.5),
            A.OneOf(
                [A.Rotate(limit=45, border_mode=cv2.BORDER_REFLECT_101, p=1), A.RandomRotate90(p=1), A.VerticalFlip(p=1)],
                p=0.35 if heavy else 0.25,
            ),
            A.OneOf(
                [
                    A.GaussianBlur(sigma_limit=(0.3, 3.2 if heavy else 2.0), p=1),
                    A.Sharpen(alpha=(0.1, 0.4), lightness=(0.9, 1.1), p=1),
                    A.Downscale(scale_range=(0.3 if heavy else 0.35, 0.8), p=1),
                ],
                p=0.75 if heavy else 0.6,
            ),
            A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=0.5),
            A.GaussNoise(std_range=(0.01, 0.04), p=0.15),
            A.ImageCompression(quality_range=(30 if heavy else 40, 95), p=1.0),  # always: both classes re-encoded
            *_finish(data_config, (height, width)),
        ]
    )


# What each training preset adds on top of the face, in words for the model card (keep beside the pipelines above).
AUGMENTATION_SUMMARY = {
    "seed": "facial-feature blackout, rotation up to 30 degrees or flips, JPEG quality 50-95, blur and noise, colour "
    "jitter, shear, zoom and shifts (on the stored pixels, not the canonical face)",
    "robust": "random crop (70-100% of the area), flips/rotations, blur (sigma up to 2)/sharpen/down-up-scaling (to 35%), "
    "colour jitter, noise and random JPEG quality 40-95",
    "robust_heavy": "random crop (45-100% of the area), flips/rotations (more often), blur (sigma up to 3.2)/sharpen/"
    "down-up-scaling (to 30%) on 75% of draws, colour jitter, noise and random JPEG quality 30-95",
}


def eval_preset(data_config: dict, canonical_input: bool = False) -> A.Compose:
    """Deterministic; identical to `deepfake_detector.preprocess.eval_tensor`, which the app uses."""
    _, height, width = data_config["input_size"]
    canonical = [] if canonical_input else [A.Lambda(name="canonicalize", image=_canonicalize)]
    return A.Compose([*canonical, *_finish(data_config, (height, width))])


def _canonicalize(image: np.ndarray, **_) -> np.ndarray:
    return canonicalize(image)


def make_preset(name: str, data_config: dict, size: int | None = None, canonical_input: bool = False) -> A.Compose:
    """The named preset for a model's data config; `size` is the seed preset's square size; `canonical_input`: the
    images are canonical faces already (all but seed)."""
    if name == "seed":
        if canonical_input:
            raise ValueError("the seed preset starts from the original pixels; it cannot train on cached canonical faces")
        return seed_preset(data_config, size or 160)
    if name in ("robust", "robust_heavy"):
        return robust_preset(data_config, canonical_input, heavy=name == "robust_heavy")
    if name == "eval":
        return eval_preset(data_config, canonical_input)
    raise ValueError(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")


def apply_preset(pipeline: A.Compose, image: np.ndarray, landmarks=()) -> torch.Tensor:
    """Run a preset on one decoded RGB image; returns a (3, H, W) float tensor."""
    landmarks = np.asarray(landmarks if landmarks is not None else (), dtype=np.float32).reshape(-1, 2)
    return pipeline(image=image, landmarks=landmarks)["image"]


def batch_transform(pipeline: A.Compose) -> Callable[[dict], dict]:
    """A `Dataset.with_transform` function: undecoded image bytes -> `pixel_values` (b, 3, H, W) and `labels`."""

    def transform(batch: dict) -> dict:
        landmarks = batch.get("landmarks") or [()] * len(batch["image"])
        pixels = [
            apply_preset(pipeline, load_rgb_array(image["bytes"]), points)
            for image, points in zip(batch["image"], landmarks)
        ]
        return {"pixel_values": pixels, "labels": batch["label"], "source": batch["source"]}

    return transform
