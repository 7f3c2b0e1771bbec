"""deepfake_detector.images: every bad input is refused with a sentence, every odd-but-valid one decodes to RGB."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from deepfake_detector.images import MAX_ASPECT_RATIO, MAX_PIXELS, MIN_SIDE, ImageError, load_image, load_rgb_array


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    gradient = np.linspace(0, 255, 64 * 48 * 3).reshape(48, 64, 3).astype(np.uint8)
    return Image.fromarray(gradient)


def test_empty_is_refused():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_non_image_is_refused():
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"%PDF-1.4 not a picture")


def test_truncated_jpeg_is_refused(photo):
    data = encode(photo, "JPEG")
    with pytest.raises(ImageError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_corrupt_header_is_refused(photo):
    data = bytearray(encode(photo, "PNG"))
    data[16:24] = b"\xff" * 8  # width/height in IHDR
    with pytest.raises(ImageError):
        load_image(bytes(data))


def test_too_small_is_refused():
    with pytest.raises(ImageError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        load_image(encode(Image.new("RGB", (1, 1)), "PNG"))


def test_too_many_pixels_states_the_limit():
    with pytest.raises(ImageError, match=f"limit is {MAX_PIXELS // 1_000_000} megapixels"):
        load_image(encode(Image.new("1", (9000, 6000)), "PNG"))


def test_decompression_bomb_states_the_limit():
    # Past Pillow's own hard limit (~179 MP): refused with our sentence, not Pillow's exception.
    with pytest.raises(ImageError, match="megapixels"):
        load_image(encode(Image.new("1", (20000, 12000)), "PNG"))


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path / "missing.png")


def test_wrong_type_is_refused():
    with pytest.raises(ImageError, match="Expected image bytes"):
        load_image(12345)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "L"])
def test_modes_become_rgb(photo, mode):
    fmt = "JPEG" if mode in ("CMYK", "L") else "PNG"
    array = load_rgb_array(encode(photo.convert(mode), fmt))
    assert array.shape == (48, 64, 3) and array.dtype == np.uint8


def test_sixteen_bit_is_scaled_not_clipped():
    grey = (np.linspace(0, 65535, 32 * 32).reshape(32, 32)).astype(np.uint16)
    array = load_rgb_array(encode(Image.fromarray(grey), "PNG"))
    assert array.shape == (32, 32, 3) and array.min() == 0 and array.max() == 255


def test_alpha_is_composited_on_white():
    transparent = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    assert (load_rgb_array(encode(transparent, "PNG")) == 255).all()


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    array = load_rgb_array(data)
    assert array[..., 0].mean() > 200 and array[..., 2].mean() < 50


def test_exif_orientation_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    assert load_image(encode(photo, "JPEG", exif=exif.tobytes())).size == (48, 64)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_supported_formats(photo, fmt):
    assert load_image(encode(photo, fmt)).mode == "RGB"


@pytest.mark.parametrize("size", [(16, 100000), (100000, 16), (int(32 * MAX_ASPECT_RATIO) + 1, 32)])
def test_strips_are_refused_before_decoding(size):
    with pytest.raises(ImageError, match=f"more than {MAX_ASPECT_RATIO:g} times"):
        load_image(encode(Image.new("1", size), "PNG"))


def test_aspect_ratio_at_the_limit_decodes():
    assert load_image(encode(Image.new("RGB", (int(32 * MAX_ASPECT_RATIO), 32)), "PNG")).size == (320, 32)


@pytest.mark.parametrize("fmt", ["TGA", "PCX", "TIFF", "PPM", "ICO"])
def test_formats_outside_the_list_are_refused(photo, fmt):
    with pytest.raises(ImageError, match="not an image we can read"):
        load_image(encode(photo.resize((64, 64)), fmt))


def test_phone_multi_picture_jpeg_decodes(photo):
    data = encode(photo, "MPO", save_all=True, append_images=[photo])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert load_image(data).size == photo.size
