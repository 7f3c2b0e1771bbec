"""Open an uploaded or stored image safely and return RGB pixels.

Every image the project touches, real or fake, PNG or JPEG, in training or in the app, is decoded
here, so the file format cannot leak into the model through a different decode path.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Cap on decoded pixels: a decompression bomb (a tiny file that decodes to gigapixels) is refused
# before its pixels are allocated. 50 MP covers every phone camera on the market.
MAX_PIXELS = 50_000_000
MIN_SIDE = 16
# Longer side / shorter side: a face photo is never a 1:20 strip, and such strips shrink to nothing in detection.
MAX_ASPECT_RATIO = 10.0
# Pillow plugins allowed to open a file; every other format (TGA, PCX, EPS, TIFF, ...) is refused before decoding.
# (The multi-picture JPEG that many phone cameras write, MPO, opens through the JPEG plugin.)
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
SUPPORTED_TEXT = "JPEG, PNG, WebP, BMP or GIF"


class ImageError(ValueError):
    """An input that is not a usable image; the message is written for a person."""


def _open(source: bytes | str | Path | Image.Image) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No image file at {path}.")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise ImageError(f"Expected image bytes, a path or a PIL image, got {type(source).__name__}.")
    if not data:
        raise ImageError("The file is empty.")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb limit (~89 MP warning, ~179 MP error) is looser than MAX_PIXELS, which
            # load_image checks from the header before decoding; only Pillow's hard error can still fire here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(_too_large_message()) from None
    except UnidentifiedImageError:
        raise ImageError(f"This file is not an image we can read (supported: {SUPPORTED_TEXT}).") from None
    except Exception as error:  # a recognised format with a corrupt header (Pillow raises OSError, SyntaxError, ValueError, ...)
        raise ImageError(f"The image file is damaged or truncated and cannot be decoded ({error}).") from None
    return image


def _too_large_message(width: int | None = None, height: int | None = None) -> str:
    size = f"The image is {width}x{height} pixels; " if width and height else "The image is too large; "
    return f"{size}the limit is {MAX_PIXELS // 1_000_000} megapixels. Please upload a smaller image."


def load_image(source: bytes | str | Path | Image.Image) -> Image.Image:
    """Decode `source` to an upright 8-bit RGB PIL image, or raise `ImageError` with a clear reason.

    Handles EXIF orientation, CMYK, 16-bit, palette, alpha (composited on white) and animated
    images (first frame); refuses formats outside `SUPPORTED_FORMATS`, more than `MAX_PIXELS` pixels,
    sides under `MIN_SIDE` px and aspect ratios over `MAX_ASPECT_RATIO`, all from the header, before decoding.
    """
    image = _open(source)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_large_message(width, height))
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"The image is only {width}x{height} pixels; a face needs at least {MIN_SIDE}x{MIN_SIDE}.")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageError(
            f"The image is {width}x{height} pixels, a strip more than {MAX_ASPECT_RATIO:g} times longer than wide; "
            "please upload a photo or crop it."
        )
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)  # animated GIF/WebP: the first frame only
        image.load()
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except Exception as error:  # truncated data, corrupt chunks or EXIF: Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"The image file is damaged or truncated and cannot be decoded ({error}).") from None
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bit instead of clipping to white.
        array = np.asarray(image, dtype=np.float64)
        peak = array.max() if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def load_rgb_array(source: bytes | str | Path | Image.Image) -> np.ndarray:
    """`load_image` as a contiguous uint8 array of shape (h, w, 3)."""
    return np.ascontiguousarray(np.asarray(load_image(source), dtype=np.uint8))


def image_info(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) of encoded bytes without decoding the pixels."""
    image = _open(data)
    return image.size[0], image.size[1], (image.format or "UNKNOWN")
