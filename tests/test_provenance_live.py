"""Provenance through the real app: gradio_client against /predict and /predict_batch, and the page in headless
Chromium. The app runs with a local trust list (C2PA_TRUST_ANCHORS) holding the test root, so files signed here are
"trusted"; a second test CA stands for a signer on no trust list."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("c2pa")
gradio_client = pytest.importorskip("gradio_client")

import provenance_files as files  # noqa: E402
from conftest import AppProcess, upload_files  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from test_browser import CHROMIUM_ARGS, browser, chromium  # noqa: E402,F401 - the browser fixtures

from deepfake_detector.provenance import DECLARED_FAKE, NO_PROVENANCE  # noqa: E402

PIXEL_VERDICTS = {"Real", "Fake", "Uncertain", "Too small", "No face"}
HOSTILE_SIGNER = '<img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
def chain() -> files.Chain:
    return files.make_chain()


@pytest.fixture(scope="module")
def photos(chain, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("provenance-photos")
    stranger = files.make_chain("Not On Any List Inc")
    tampered = bytearray(files.sign(files.face_bytes(), "image/jpeg", chain))
    tampered[-200] ^= 0xFF
    contents = {
        "trusted.jpg": files.sign(files.face_bytes(), "image/jpeg", chain),
        "trusted.png": files.sign(files.face_bytes("PNG"), "image/png", chain),
        "untrusted.jpg": files.sign(files.face_bytes(), "image/jpeg", stranger),
        "tampered.jpg": bytes(tampered),
        "xmp.jpg": files.xmp_jpeg("trainedAlgorithmicMedia"),
        "comfy.png": files.png_with_text([("tEXt", "prompt", '{"3": {"inputs": {"text": "secret prompt words"}}}'), ("tEXt", "workflow", "{}")]),
        "camera.jpg": files.camera_jpeg(),
        "plain.jpg": files.face_bytes(),
        "nested.png": files.png_with_chunks([files.png_chunk(b"caBX", files.nested_jumbf(3000))]),
        "hostile-signer.jpg": files.sign(files.face_bytes(), "image/jpeg", files.make_chain(HOSTILE_SIGNER)),
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def app(model_dir, chain, tmp_path_factory):
    folder = tmp_path_factory.mktemp("provenance-app")
    (folder / "trust.pem").write_text(chain.root_pem)
    (folder / "uploads").mkdir()
    process = AppProcess(model_dir, folder / "uploads", folder / "app.log", env={"C2PA_TRUST_ANCHORS": str(folder / "trust.pem")})
    try:
        process.wait_ready()
        process.baseline = upload_files(folder / "uploads")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


# name -> (C2PA state, declared verdict, a phrase of the summary)
EXPECTED = {
    "trusted.jpg": ("trusted", "Fake", "Content Credentials signed by OpenAI Test: created with an AI model"),
    "trusted.png": ("trusted", "Fake", "Content Credentials signed by OpenAI Test: created with an AI model"),
    "untrusted.jpg": ("valid", None, "signed by Not On Any List Inc (signer not on a trust list, so unverified)"),
    "tampered.jpg": ("invalid", None, "INVALID signature (the image was changed after signing)"),
    "xmp.jpg": ("absent", None, "IPTC metadata (unsigned) says: created with an AI model"),
    "comfy.png": ("absent", None, "The file names its generator: ComfyUI (PNG text chunks; unsigned)"),
    "camera.jpg": ("absent", None, "Camera EXIF (unsigned, easily forged): Canon Canon EOS 5D Mark IV"),
    "plain.jpg": ("absent", None, NO_PROVENANCE),
    "nested.png": ("unreadable", None, "Content Credentials could not be read (JUMBF boxes nested over 16 deep)"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_predict_returns_provenance_beside_the_pixel_verdict(client, photos, name):
    state, declared, phrase = EXPECTED[name]
    result = client.predict(handle_file(str(photos[name])), api_name="/predict")
    assert result["verdict"] in PIXEL_VERDICTS and result["face_found"] is True  # the pixel verdict, untouched
    provenance = result["provenance"]
    assert provenance["c2pa"]["state"] == state and provenance["declared_verdict"] == declared
    assert phrase in provenance["summary"], provenance["summary"]
    assert "secret prompt words" not in str(result)


def test_batch_gives_each_photo_its_provenance(client, photos):
    names = ["trusted.jpg", "plain.jpg", "nested.png", "comfy.png"]
    results = client.predict([handle_file(str(photos[n])) for n in names], api_name="/predict_batch")
    assert [r["file"] for r in results] == names
    for name, result in zip(names, results):
        assert result["verdict"] in PIXEL_VERDICTS
        assert result["provenance"]["c2pa"]["state"] == EXPECTED[name][0]
        assert result["provenance"]["declared_verdict"] == EXPECTED[name][1]


def test_reading_provenance_leaves_no_upload_on_disk(client, app, photos):
    client.predict(handle_file(str(photos["trusted.jpg"])), api_name="/predict")
    deadline = time.monotonic() + 10
    while (left := upload_files(app.upload_root) - app.baseline) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, sorted(map(str, left))


# ---------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def page(browser, app):  # noqa: F811 - the fixture imported from test_browser
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(90_000)
    page.goto(app.url, wait_until="domcontentloaded")
    page.locator("#dfd-input").wait_for()
    yield page
    page.close()


def _upload(page, path: Path) -> str:
    line = page.locator("#dfd-provenance p.dfd-provenance")
    before = line.inner_text() if line.count() else None
    page.locator("#dfd-input input[type=file]").set_input_files(str(path))
    page.locator("#dfd-summary").get_by_text("Verdict:").wait_for()
    page.wait_for_function(
        "before => { const p = document.querySelector('#dfd-provenance p.dfd-provenance'); return p && p.innerText !== before; }",
        arg=before,
    )
    return line.inner_text()


@pytest.mark.parametrize("name, phrases", [
    ("trusted.jpg", [f"Photo verdict: {DECLARED_FAKE}", "Content Credentials signed by OpenAI Test: created with an AI model"]),
    ("untrusted.jpg", ["signer not on a trust list"]),
    ("comfy.png", ["The file names its generator: ComfyUI"]),
    ("plain.jpg", [NO_PROVENANCE]),
])
def test_page_shows_one_provenance_line_above_the_faces(page, photos, name, phrases):
    text = _upload(page, photos[name])
    for phrase in phrases:
        assert phrase in text, text
    assert (DECLARED_FAKE in text) == (name == "trusted.jpg")
    assert "Verdict:" in page.locator("#dfd-summary").inner_text()  # the pixel verdict is still there
    above = page.evaluate("() => document.querySelector('#dfd-provenance').getBoundingClientRect().top < document.querySelector('#dfd-faces').getBoundingClientRect().top")
    assert above


def test_a_signer_name_from_the_file_is_shown_as_text_never_markup(page, photos):
    text = _upload(page, photos["hostile-signer.jpg"])
    assert HOSTILE_SIGNER in text
    assert page.locator("#dfd-provenance img").count() == 0 and page.title() != "1"
