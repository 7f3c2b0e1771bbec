"""The canonical face: what every face looks like before the model sees it.

The dev corpus has a measured shortcut: most fakes are 128-px JPEG q75 while FFHQ reals are PNG and
the 1024-px reals are JPEG while the 1024-px fakes are PNG. A model that sees file format, resolution
or sharpness learns those instead of faces. So every face, in training and in the app, is brought to
one canonical form first:

1. square centre crop (faces arrive as crops or detector boxes with a margin),
2. resized to `CANONICAL_SIZE` px with area interpolation (a 1024-px face and a 128-px face end up alike),
3. JPEG round trip at `CANONICAL_JPEG_QUALITY` (PNG and JPEG inputs end up alike).

Only then is it resized to the model's own input size and normalised (`timm` data config).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

CANONICAL_SIZE = 128
CANONICAL_JPEG_QUALITY = 75


def center_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an (h, w, 3) image."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to (size, size): area interpolation when shrinking (anti-aliased), bilinear when growing."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrinking = image.shape[0] > size
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an RGB uint8 array as JPEG at `quality` and decode it again."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def canonicalize(image: np.ndarray, size: int = CANONICAL_SIZE, quality: int = CANONICAL_JPEG_QUALITY) -> np.ndarray:
    """Square crop, resize to `size` and JPEG round trip: the format- and resolution-free face, (size, size, 3) uint8."""
    return jpeg_round_trip(resize(center_square(image), size), quality)


def to_model_tensor(image: np.ndarray, data_config: dict) -> torch.Tensor:
    """A canonical face (h, w, 3) uint8 -> normalised float tensor (3, H, W) for the model's data config."""
    _, height, width = data_config["input_size"]
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    array = resized.astype(np.float32) / 255.0
    mean = np.asarray(data_config["mean"], dtype=np.float32)
    std = np.asarray(data_config["std"], dtype=np.float32)
    return torch.from_numpy(((array - mean) / std).transpose(2, 0, 1).copy())


def eval_tensor(image: np.ndarray, data_config: dict) -> torch.Tensor:
    """The deterministic inference transform: `canonicalize` then `to_model_tensor`. The canonical face's size and
    JPEG quality are the model folder's (`canonical_size`, `canonical_jpeg_quality` in config.json, which
    `load_detector` puts into the data config; 128 px and q75 when absent)."""
    size = int(data_config.get("canonical_size", CANONICAL_SIZE))
    quality = int(data_config.get("canonical_jpeg_quality", CANONICAL_JPEG_QUALITY))
    return to_model_tensor(canonicalize(image, size, quality), data_config)
