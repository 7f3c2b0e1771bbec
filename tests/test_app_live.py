"""The real app on localhost, driven through its named API with gradio_client: real faces, a group photo,
every bad input (each a clear error, server keeps serving), stable JSON keys and no upload left on disk."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402


TOP_KEYS = {"verdict", "fake_probability", "threshold", "uncertain_band", "model", "face_found", "faces"}
FACE_KEYS = {"box", "crop_box", "fake_probability", "verdict"}
VERDICTS = {"Real", "Fake", "Uncertain"}
PHOTO_VERDICTS = VERDICTS | {"Too small", "No face"}


@pytest.fixture(scope="module")
def client(live_app) -> Client:
    return Client(live_app["url"], verbose=False)


@pytest.fixture(scope="module")
def model_threshold(model_dir) -> float:
    import json

    return float(json.loads((model_dir / "config.json").read_text()).get("threshold", 0.5))


def check_result(result: dict, faces: int | None = None) -> None:
    assert TOP_KEYS <= set(result), result.keys()
    assert result["verdict"] in PHOTO_VERDICTS
    if faces is not None:
        assert len(result["faces"]) == faces, result["faces"]
    for face in result["faces"]:
        assert FACE_KEYS <= set(face)
        assert len(face["box"]) == 4 and len(face["crop_box"]) == 4
        if face["verdict"] == "Too small":
            assert face["fake_probability"] is None  # not judged, so no score
        else:
            assert face["verdict"] in VERDICTS and 0.0 <= face["fake_probability"] <= 1.0
    judged = [f["fake_probability"] for f in result["faces"] if f["verdict"] in VERDICTS]
    if judged:
        assert result["verdict"] in VERDICTS and result["fake_probability"] == pytest.approx(max(judged))
    else:
        assert result["verdict"] in {"Too small", "No face"} and result["fake_probability"] is None


def save(image: Image.Image, path: Path, **params) -> str:
    image.save(path, **params)
    return str(path)


# ---------------------------------------------------------------- real faces


def test_predict_real_face(client, faces_dir, model_threshold):
    result = client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), api_name="/predict")
    check_result(result, faces=1)
    assert result["face_found"] is True
    assert result["threshold"] == pytest.approx(model_threshold)  # default: the model's own threshold
    assert "overlay" not in result  # include_overlay defaults to False


def test_predict_with_overlay_and_threshold(client, faces_dir):
    path = sorted((faces_dir / "fake/stylegan2").glob("*.png"))[0]  # 1024-px PNG
    result = client.predict(handle_file(str(path)), threshold=0.3, include_overlay=True, api_name="/predict")
    check_result(result, faces=1)
    assert result["threshold"] == pytest.approx(0.3)
    assert result["overlay"].startswith("data:image/")
    assert all(face["heatmap"].startswith("data:image/") for face in result["faces"])


def test_threshold_out_of_range_is_refused(client, faces_dir):
    with pytest.raises(AppError, match="between 0 and 1"):
        client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), threshold=1.5, api_name="/predict")


def test_predict_batch(client, faces_dir):
    files = [
        faces_dir / "real/ffhq/bhunakit_r0.png",
        sorted((faces_dir / "real/celebahq").glob("*.jpg"))[0],
        sorted((faces_dir / "fake/stargan").glob("*.jpg"))[0],
    ]
    results = client.predict([handle_file(str(f)) for f in files], api_name="/predict_batch")
    assert [r["file"] for r in results] == [f.name for f in files]
    for result in results:
        check_result(result)


def test_batch_reports_bad_items_without_failing(client, faces_dir, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    results = client.predict([handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), handle_file(str(bad))], api_name="/predict_batch")
    check_result(results[0])
    assert results[1]["file"] == "notes.txt" and "not an image" in results[1]["error"]


def test_group_photo_has_one_verdict_per_face(client, faces_dir, tmp_path):
    canvas = Image.new("RGB", (1100, 450), (128, 128, 128))
    for i, file in enumerate(sorted((faces_dir / "real/celebahq").glob("*.jpg"))[:3]):
        canvas.paste(Image.open(file).convert("RGB").resize((320, 320)), (30 + i * 360, 60))
    result = client.predict(handle_file(save(canvas, tmp_path / "group.jpg", quality=92)), api_name="/predict")
    check_result(result, faces=3)
    lefts = sorted(face["box"][0] for face in result["faces"])
    assert lefts[0] < 360 <= lefts[1] < 720 <= lefts[2]  # one box in each third


def test_no_face_is_not_judged(client, tmp_path):
    """A photo without a face gets "No face" and no score: the model knows nothing but faces."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    result = client.predict(handle_file(save(noise, tmp_path / "noise.png")), include_overlay=True, api_name="/predict")
    check_result(result, faces=0)
    assert result["verdict"] == "No face" and result["face_found"] is False and result["fake_probability"] is None


def test_small_face_is_too_small(client, faces_dir, tmp_path):
    """A face narrower than the measured minimum is found but not judged; the photo says so."""
    from deepfake_detector.predict import MIN_FACE_SIDE

    face = Image.open(faces_dir / "real/ffhq/bhunakit_r0.png").convert("RGB")
    canvas = Image.new("RGB", (640, 480), (127, 127, 127))
    canvas.paste(face.resize((int(MIN_FACE_SIDE * 1.2), int(MIN_FACE_SIDE * 1.2))), (300, 200))  # face box ~0.8 of the crop
    result = client.predict(handle_file(save(canvas, tmp_path / "small.png")), include_overlay=True, api_name="/predict")
    assert result["face_found"], "yuface finds this face (box about 28x32 px)"
    check_result(result)
    assert result["verdict"] == "Too small" and all(f["verdict"] == "Too small" for f in result["faces"])


# ---------------------------------------------------------------- valid but unusual files


@pytest.fixture(scope="module")
def face(faces_dir) -> Image.Image:
    return Image.open(faces_dir / "real/celeba/000001.jpg").convert("RGB")  # 178x218: not square, so rotation shows


def _cmyk(face, path):
    return save(face.convert("CMYK"), path / "cmyk.jpg", quality=95)


def _sixteen_bit(face, path):
    grey = (np.asarray(face.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    return save(Image.fromarray(grey), path / "grey16.png")  # uint16 -> mode I;16


def _palette(face, path):
    return save(face.convert("P", palette=Image.Palette.ADAPTIVE, colors=256), path / "palette.png")


def _alpha(face, path):
    rgba = face.convert("RGBA")
    rgba.putalpha(255)
    return save(rgba, path / "alpha.png")


def _gif(face, path):
    frames = [face, face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("RGB", face.size, (0, 0, 0))]
    return save(frames[0], path / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _webp(face, path):
    return save(face, path / "face.webp", quality=90)


def _bmp(face, path):
    return save(face, path / "face.bmp")


@pytest.mark.parametrize("make", [_cmyk, _sixteen_bit, _palette, _alpha, _gif, _webp, _bmp], ids=lambda f: f.__name__.strip("_"))
def test_unusual_valid_images_succeed(client, face, tmp_path, make):
    result = client.predict(handle_file(make(face, tmp_path)), api_name="/predict")
    check_result(result, faces=1)
    assert result["face_found"] is True


def test_exif_orientation_is_honoured(client, face, tmp_path):
    upright = client.predict(handle_file(save(face, tmp_path / "upright.jpg", quality=95)), api_name="/predict")
    # Pixels stored rotated 90 degrees, with EXIF orientation 6 ("rotate 90 CW to display"): upright once honoured.
    stored = face.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = client.predict(handle_file(save(stored, tmp_path / "rotated.jpg", quality=95, exif=exif.tobytes())), api_name="/predict")
    assert rotated["face_found"] and upright["face_found"]
    assert np.allclose(rotated["faces"][0]["box"], upright["faces"][0]["box"], atol=6)


# ---------------------------------------------------------------- bad inputs: a clear sentence, and the server keeps serving


def _jpeg_bytes(face) -> bytes:
    buffer = io.BytesIO()
    face.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png_of(size: tuple[int, int], mode: str = "1") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")  # all black: compresses to a few KB
    return buffer.getvalue()


BAD_INPUTS = {
    "empty": (lambda face: b"", "empty"),
    "text": (lambda face: b"hello, this is not a picture\n" * 20, "not an image"),
    "truncated_jpeg": (lambda face: _jpeg_bytes(face)[: len(_jpeg_bytes(face)) // 2], "truncated"),
    "one_pixel": (lambda face: _png_of((1, 1), "RGB"), "at least 16x16"),
    "huge_dimensions": (lambda face: _png_of((9000, 6000)), "limit is 50 megapixels"),
    "decompression_bomb": (lambda face: _png_of((20000, 12000)), "limit is 50 megapixels"),
    "tall_strip": (lambda face: _png_of((16, 100000)), "strip more than 10 times"),
    "wide_strip": (lambda face: _png_of((100000, 16)), "strip more than 10 times"),
    "tga": (lambda face: _encoded(face, "TGA"), "not an image we can read"),
    "pcx": (lambda face: _encoded(face, "PCX"), "not an image we can read"),
    "tiff": (lambda face: _encoded(face, "TIFF"), "not an image we can read"),
}


def _encoded(face, fmt: str) -> bytes:
    buffer = io.BytesIO()
    face.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gives_clear_error(client, face, tmp_path, name, faces_dir):
    make, message = BAD_INPUTS[name]
    path = tmp_path / f"{name}.{'jpg' if name in ('empty', 'truncated_jpeg') else 'txt' if name == 'text' else 'png'}"
    path.write_bytes(make(face))
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), api_name="/predict")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"threshold": "abc"}, "threshold must be a number"),
        ({"threshold": [0.5]}, "threshold must be a number"),
        ({"threshold": True}, "threshold must be a number"),
        ({"threshold": -0.1}, "between 0 and 1"),
        ({"include_overlay": "yes"}, "include_overlay must be true or false"),
    ],
    ids=["text", "list", "bool", "negative", "overlay_text"],
)
def test_bad_parameters_give_a_sentence(client, faces_dir, kwargs, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), api_name="/predict", **kwargs)


def test_batch_limits(client, faces_dir):
    photo = handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png"))
    with pytest.raises(AppError, match="At most 16 images per batch"):
        client.predict([photo] * 17, api_name="/predict_batch")
    with pytest.raises(AppError, match="threshold must be"):
        client.predict([photo], threshold="x", api_name="/predict_batch")


def test_server_still_serves_after_bad_inputs(client, faces_dir):
    check_result(client.predict(handle_file(str(faces_dir / "real/ffhq/bhunakit_r0.png")), api_name="/predict"), faces=1)


def test_api_lists_both_endpoints_with_defaults(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ("/predict", "/predict_batch"):
        parameters = endpoints[name]["parameters"]
        assert not parameters[0]["parameter_has_default"]  # the image(s)
        assert all(p["parameter_has_default"] for p in parameters[1:])


def test_no_upload_left_on_disk(live_app):
    # Runs after the tests above in this module: every upload they made must be gone from Gradio's folder.
    left = live_app["files"]() - live_app["baseline"]
    assert not left, f"uploads left on disk: {sorted(map(str, left))}"
    assert live_app["baseline"], "the examples should be in Gradio's cache (sanity check of the folder)"
