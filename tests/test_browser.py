"""The app in a real headless browser (Debian chromium via Playwright): upload a face, see the verdict and the heatmap."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepfake_detector.uploads import PREVIEW_KEEP_S


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed by `make browser` (a step of `make test`); a test never installs packages."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"chromium is not installed at {CHROMIUM}: run `make browser` (make test does) to install it")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, live_app):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(90_000)
    page.failed_responses = []  # every HTTP error the page meets (a deleted preview shows up here)
    page.on("response", lambda r: page.failed_responses.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(live_app["url"], wait_until="domcontentloaded")
    yield page
    page.close()


def _wait_until_deleted(live_app, seconds: float) -> set:
    import time

    deadline = time.monotonic() + seconds
    while (left := live_app["files"]() - live_app["baseline"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def test_upload_shows_verdict_and_heatmap(page, live_app, faces_dir, tmp_path):
    page.locator("#dfd-input").wait_for()
    page.locator("#dfd-input input[type=file]").set_input_files(str(faces_dir / "real/ffhq/bhunakit_r0.png"))
    summary = page.locator("#dfd-summary")
    summary.get_by_text("Verdict:").wait_for()
    assert any(word in summary.inner_text() for word in ("Real", "Fake", "Uncertain"))
    assert "1 face found" in summary.inner_text()
    heatmap = page.locator("img.dfd-heatmap").first
    heatmap.wait_for(state="visible")
    assert heatmap.evaluate("img => img.complete && img.naturalWidth > 0")
    assert "fake probability" in page.locator(".dfd-caption").first.inner_text()
    screenshot = tmp_path / "detect.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The photo's own preview in the upload box loaded (the upload is kept PREVIEW_KEEP_S for it), without errors.
    preview = page.locator("#dfd-input img").first
    assert preview.evaluate("img => img.complete && img.naturalWidth > 0")
    assert not page.failed_responses, page.failed_responses
    left = _wait_until_deleted(live_app, PREVIEW_KEEP_S + 5)
    assert not left, f"the browser upload was left on disk: {sorted(map(str, left))}"


def test_new_photo_on_a_shown_one_gives_one_clean_result(page, live_app, faces_dir):
    """Dropping a second photo on the first: one new verdict, no error toast, the preview loads."""
    page.locator("#dfd-input input[type=file]").set_input_files(str(sorted((faces_dir / "fake/stargan").glob("*.jpg"))[0]))
    page.locator("#dfd-summary").get_by_text("Verdict:").wait_for()
    page.wait_for_timeout(3000)  # a second (duplicate) run would show its error by now
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    assert page.locator("#dfd-input img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert not page.failed_responses, page.failed_responses


def test_threshold_slider_redecides_without_reupload(page):
    # Moving the slider to 0 makes every score Fake or Uncertain; the photo is not uploaded again (it was deleted).
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.get_by_text("Advanced").first.click()  # the threshold lives in a collapsed section
    slider = page.locator("#dfd-threshold input[type=range]")
    slider.wait_for(state="visible")
    # One fill while the section is still opening was once lost (CI at 9aaf2b7: no "0.00" within 90 s, then passed
    # on a rerun); a lost event is retried, a handler that never answers still fails after three tries.
    for attempt in range(3):
        slider.fill("0")
        try:
            page.locator("#dfd-band").get_by_text("0.00").first.wait_for(timeout=30_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    assert "Real" not in page.locator(".dfd-caption").first.inner_text().split(":")[1].split("·")[0]


def test_about_and_model_tabs(page):
    page.get_by_role("tab", name="About").click()
    page.get_by_text("not forensic or legal evidence").wait_for()
    page.get_by_text("not stored").first.wait_for()
    page.get_by_role("tab", name="Model").click()
    page.get_by_text("Dataset card:").first.wait_for()


def _group_photo(faces_dir, path) -> str:
    from PIL import Image

    canvas = Image.new("RGB", (1100, 450), (128, 128, 128))
    for i, file in enumerate(sorted((faces_dir / "real/celebahq").glob("*.jpg"))[:3]):
        canvas.paste(Image.open(file).convert("RGB").resize((320, 320)), (30 + i * 360, 60))
    canvas.save(path, quality=92)
    return str(path)


@pytest.mark.parametrize("viewport", [(390, 844), (1366, 900)], ids=["phone", "desktop"])
def test_verdict_on_first_screen_and_cards_fit(browser, live_app, faces_dir, tmp_path, viewport):
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_app["url"])
    page.locator("#dfd-input input[type=file]").set_input_files(_group_photo(faces_dir, tmp_path / "group.jpg"))
    page.locator("#dfd-summary").get_by_text("Verdict:").wait_for(timeout=90_000)
    box = page.locator("#dfd-summary h2").bounding_box()
    assert box["y"] + box["height"] <= height, f"the verdict starts at y={box['y']:.0f}, below the first screen"
    cards = page.locator(".dfd-face")
    assert cards.count() == 3
    for i in range(3):
        card = cards.nth(i).bounding_box()
        assert card["x"] >= 0 and card["x"] + card["width"] <= width, f"face card {i + 1} is cut off"
    captions = [cards.nth(i).locator(".dfd-caption").inner_text() for i in range(3)]
    assert [c.split(":")[0] for c in captions] == ["Face 1", "Face 2", "Face 3"]
    lefts = [cards.nth(i).bounding_box()["x"] + 1000 * cards.nth(i).bounding_box()["y"] for i in range(3)]
    assert lefts == sorted(lefts)  # cards in reading order
    assert page.locator(".dfd-colourbar").count() == 1
    page.screenshot(path=str(tmp_path / "screen.png"))  # dev-corpus faces: never into the repository (docs/ has its own)
    assert not errors, errors
    page.close()


def test_no_broken_images_or_console_errors_in_any_tab(browser, live_app):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_app["url"])
    page.locator("#dfd-input").wait_for()
    for tab in ("About", "Model", "Detect"):
        page.get_by_role("tab", name=tab).click()
        page.wait_for_timeout(500)
        if tab == "Model":
            page.get_by_text("Full report and model card").click()
            page.locator("#dfd-model-plots img").first.wait_for()
            assert page.locator("#dfd-model-plots img").count() >= 3
        broken = page.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth === 0 && i.offsetParent !== null).map(i => i.alt || i.src.slice(0, 80))")
        assert not broken, (tab, broken)
    assert not errors, errors
    page.close()


def test_slider_reset_returns_the_models_threshold(browser, live_app, model_dir):
    import json

    expected = round(float(json.loads((model_dir / "config.json").read_text()).get("threshold", 0.5)), 2)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(live_app["url"])
    page.get_by_text("Advanced").first.click()
    number = page.locator("#dfd-threshold input[type=number]")
    number.wait_for()
    assert float(number.input_value()) == pytest.approx(expected)
    page.locator("#dfd-threshold input[type=range]").fill("0.9")
    page.wait_for_timeout(300)
    page.locator("#dfd-threshold [data-testid=reset-button]").click()
    page.wait_for_timeout(300)
    assert float(number.input_value()) == pytest.approx(expected)
    assert len(number.input_value()) <= 4  # shown rounded, e.g. "0.3", never "0.3045911"
    page.close()


def _small_face(faces_dir, path) -> str:
    from PIL import Image

    from deepfake_detector.predict import MIN_FACE_SIDE

    canvas = Image.new("RGB", (640, 480), (127, 127, 127))
    face = Image.open(faces_dir / "real/ffhq/bhunakit_r0.png").convert("RGB")
    canvas.paste(face.resize((int(MIN_FACE_SIDE * 1.2),) * 2), (300, 200))
    canvas.save(path)
    return str(path)


@pytest.mark.parametrize("photo, verdict", [("cat", "No face"), ("small", "Too small")])
def test_no_face_and_too_small_through_the_page(browser, live_app, faces_dir, tmp_path, photo, verdict):
    path = str(Path(__file__).resolve().parents[1] / "examples" / "chelsea.jpg") if photo == "cat" else _small_face(faces_dir, tmp_path / "small.png")
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(live_app["url"])
    page.locator("#dfd-input input[type=file]").set_input_files(path)
    summary = page.locator("#dfd-summary")
    summary.get_by_text("Verdict:").wait_for(timeout=90_000)
    assert f"Verdict: {verdict}" in summary.inner_text()
    assert "fake probability" not in summary.inner_text().lower()  # nothing judged, so no score
    page.close()


def test_page_and_api_give_the_same_verdicts(browser, live_app, faces_dir, tmp_path):
    """The page and /predict decide through the same predict() at the model's own threshold: verdict for verdict."""
    from gradio_client import Client, handle_file

    photos = [
        faces_dir / "real/ffhq/bhunakit_r0.png",
        sorted((faces_dir / "fake/stargan").glob("*.jpg"))[0],
        sorted((faces_dir / "fake/tpdne").glob("*"))[0],
        Path(_group_photo(faces_dir, tmp_path / "group.jpg")),
        Path(__file__).resolve().parents[1] / "examples" / "chelsea.jpg",
    ]
    client = Client(live_app["url"], verbose=False)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(live_app["url"])
    previous = ""
    for photo in photos:
        api = client.predict(handle_file(str(photo)), api_name="/predict")
        page.locator("#dfd-input input[type=file]").set_input_files(str(photo))
        # Wait for this photo's result: the annotated picture changes with every analysis.
        page.wait_for_function("prev => { const i = document.querySelector('#dfd-photo img'); return i && i.src !== prev; }", arg=previous, timeout=90_000)
        previous = page.locator("#dfd-photo img").get_attribute("src")
        heading = page.locator("#dfd-summary h2").inner_text()
        assert heading == f"Verdict: {api['verdict']}", (photo.name, heading, api["verdict"])
        page_faces = sorted(text.split(": ", 1)[1].split(" ·")[0] for text in page.locator(".dfd-caption").all_inner_texts())
        assert page_faces == sorted(f["verdict"] for f in api["faces"]), (photo.name, page_faces, api["faces"])
    page.close()
