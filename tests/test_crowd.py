"""Many faces, one photo (issue 22): the photo rule in predict.py, box labels that never collide, and a crowd photo in
the browser at desktop and phone sizes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.predict import (
    FACE_FALSE_FAKE_RATE,
    MIN_FACE_SIDE,
    FaceResult,
    _decide,
    faces_needed,
    photo_rule,
    photo_verdict,
    verdict_for,
)

THRESHOLD, BAND = 0.5, 0.2


def crowd(probabilities: list[float], small: int = 0) -> list[FaceResult]:
    """Judged faces with these probabilities, plus `small` faces under MIN_FACE_SIDE (not judged)."""
    faces = [FaceResult(box=[60 * i, 10, 50, 50], crop_box=[0, 0, 1, 1], fake_probability=p, verdict="") for i, p in enumerate(probabilities)]
    faces += [FaceResult(box=[60 * i, 200, MIN_FACE_SIDE - 1, 30], crop_box=[0, 0, 1, 1], fake_probability=0.99, verdict="") for i in range(small)]
    return faces


def decide(probabilities: list[float], threshold: float = THRESHOLD, small: int = 0):
    return _decide(crowd(probabilities, small), True, threshold, BAND, "test-model")


# ---------------------------------------------------------------------------------------------------- the rule


def test_faces_needed_is_the_smallest_count_a_crowd_of_real_faces_reaches_by_chance_no_more_often_than_one_face():
    def tail(n: int, k: int) -> float:  # P(Binomial(n, rate) >= k)
        return sum(math.comb(n, j) * FACE_FALSE_FAKE_RATE**j * (1 - FACE_FALSE_FAKE_RATE) ** (n - j) for j in range(k, n + 1))

    assert faces_needed(1) == 1
    for n in range(1, 41):
        k = faces_needed(n)
        assert tail(n, k) <= FACE_FALSE_FAKE_RATE < tail(n, k - 1), n
    assert [faces_needed(n) for n in (2, 7, 8, 16, 17, 20)] == [2, 2, 3, 3, 4, 4]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        faces_needed(3, rate=0.0)


def test_one_face_photo_keeps_its_face_verdict():
    for probability in np.linspace(0, 1, 41):
        prediction = decide([float(probability)])
        assert prediction.verdict == prediction.faces[0].verdict == verdict_for(float(probability), THRESHOLD, BAND)
        assert prediction.faces_judged == 1 and prediction.faces_flagged == (prediction.verdict == "Fake")


@pytest.mark.parametrize("n", [2, 5, 12, 20])
def test_one_fake_face_among_real_ones_makes_the_photo_uncertain_not_fake(n):
    prediction = decide([0.05] * (n - 1) + [0.95])
    assert [face.verdict for face in prediction.faces].count("Fake") == 1  # the face keeps its own verdict
    assert prediction.verdict == "Uncertain"
    assert (prediction.faces_judged, prediction.faces_flagged) == (n, 1)
    assert prediction.fake_probability == pytest.approx(0.95)  # still the most suspicious face's
    assert f"with {n} faces" in prediction.photo_rule and str(faces_needed(n)) in prediction.photo_rule


@pytest.mark.parametrize("n", [2, 5, 12, 20])
def test_all_faces_fake_or_enough_of_them_make_the_photo_fake(n):
    assert decide([0.95] * n).verdict == "Fake"
    needed = faces_needed(n)
    assert decide([0.95] * needed + [0.05] * (n - needed)).verdict == "Fake"
    assert decide([0.95] * (needed - 1) + [0.05] * (n - needed + 1)).verdict == ("Uncertain" if needed > 1 else "Real")


def test_no_fake_face_means_the_most_suspicious_face_decides_as_before():
    assert decide([0.05, 0.1, 0.2]).verdict == "Real"
    assert decide([0.05, 0.1, 0.6]).verdict == "Uncertain"  # 0.6 is inside the band
    assert photo_verdict(["Real", "Uncertain"], 0.6, THRESHOLD, BAND) == "Uncertain"


def test_too_small_faces_are_not_counted():
    prediction = decide([0.95], small=10)  # one judged face: ten too-small ones do not make it a crowd
    assert prediction.verdict == "Fake" and (prediction.faces_judged, prediction.faces_flagged) == (1, 1)
    assert decide([], small=3).verdict == "Too small" and decide([], small=3).photo_rule == ""


def test_a_crowd_of_real_faces_is_called_fake_no_more_often_than_one_face():
    """Simulated photos whose faces are each called Fake with the rate the models are calibrated for, independently."""
    rng = np.random.default_rng(0)
    photos = 20_000
    for n in (1, 2, 5, 12, 20):
        flags = rng.random((photos, n)) < FACE_FALSE_FAKE_RATE
        verdicts = [photo_verdict(["Fake" if f else "Real" for f in row], 0.9 if row.any() else 0.1, THRESHOLD, BAND) for row in flags]
        called_fake = np.mean([verdict == "Fake" for verdict in verdicts])
        assert called_fake <= FACE_FALSE_FAKE_RATE + 3 * math.sqrt(FACE_FALSE_FAKE_RATE * 0.95 / photos), (n, called_fake)
        # The old rule (any face) would have called 1 - 0.95^n of them Fake.
        assert flags.any(axis=1).mean() == pytest.approx(1 - (1 - FACE_FALSE_FAKE_RATE) ** n, abs=0.01)


def test_rethreshold_applies_the_same_rule():
    probabilities = [0.1 + 0.07 * i for i in range(12)]  # 0.10 .. 0.87
    prediction = decide(probabilities)
    for threshold in np.linspace(0.0, 1.0, 21):
        moved = prediction.rethreshold(float(threshold))
        fresh = decide(probabilities, threshold=float(threshold))
        assert moved.verdict == fresh.verdict and moved.to_json() == fresh.to_json()
        face_verdicts = [verdict_for(p, float(threshold), BAND) for p in probabilities]
        assert moved.faces_flagged == face_verdicts.count("Fake")
        assert moved.verdict == photo_verdict(face_verdicts, max(probabilities), float(threshold), BAND)


def test_json_says_how_many_faces_were_judged_and_flagged_and_the_rule():
    result = decide([0.05] * 11 + [0.95]).to_json()
    assert result["verdict"] == "Uncertain" and result["faces_judged"] == 12 and result["faces_flagged"] == 1
    assert result["photo_rule"] == photo_rule(12) and "at least 3" in result["photo_rule"]
    assert {"verdict", "fake_probability", "threshold", "uncertain_band", "model", "face_found", "faces"} <= set(result)


# ---------------------------------------------------------------------------------------------------- asymmetric cuts

# Real below 0.5 - 0.25 = 0.25, Fake from 0.5 + 0.375 = 0.875 (sums exact in binary: no cut falls between two floats).
FAKE_BAND = 0.375


def test_a_fake_band_raises_the_fake_cut_alone():
    assert verdict_for(0.87, 0.5, 0.25, FAKE_BAND) == "Uncertain"  # Fake at the symmetric cut (0.75)
    assert verdict_for(0.875, 0.5, 0.25, FAKE_BAND) == "Fake" and verdict_for(0.76, 0.5, 0.25) == "Fake"
    assert verdict_for(0.24, 0.5, 0.25, FAKE_BAND) == "Real" and verdict_for(0.25, 0.5, 0.25, FAKE_BAND) == "Uncertain"  # Real side unchanged
    for probability in np.linspace(0, 1, 101):  # None is the symmetric band, as every caller before fake_band got
        p = float(probability)
        assert verdict_for(p, 0.5, 0.25, None) == verdict_for(p, 0.5, 0.25, 0.25) == verdict_for(p, 0.5, 0.25)
        assert verdict_for(p, 0.5, 0.25, FAKE_BAND) == ("Fake" if p >= 0.875 else "Real" if p < 0.25 else "Uncertain")


def test_decisions_and_json_carry_the_fake_band_and_rethreshold_keeps_it():
    symmetric = decide([0.8])
    assert symmetric.fake_band == symmetric.uncertain_band == BAND and symmetric.to_json()["fake_band"] == BAND  # as before
    prediction = _decide(crowd([0.8, 0.2]), True, 0.5, 0.25, "test-model", FAKE_BAND)
    assert [face.verdict for face in prediction.faces] == ["Uncertain", "Real"] and prediction.verdict == "Uncertain"
    assert prediction.to_json()["fake_band"] == FAKE_BAND and prediction.to_json()["uncertain_band"] == 0.25
    moved = prediction.rethreshold(0.375)  # the slider: both cuts move with it (Fake from 0.75, Real below 0.125)
    assert (moved.threshold, moved.uncertain_band, moved.fake_band) == (0.375, 0.25, FAKE_BAND)
    assert [face.verdict for face in moved.faces] == ["Fake", "Uncertain"] and moved.faces_flagged == 1
    back = moved.rethreshold(0.5)
    assert back.to_json() == prediction.to_json()
    assert prediction.rethreshold(0.5, band=0.25).fake_band == 0.25  # a band given alone is symmetric
    assert prediction.rethreshold(0.5, band=0.25).faces[0].verdict == "Fake"
    assert prediction.rethreshold(0.5, fake_band=0.25).uncertain_band == 0.25


def test_the_page_states_both_cuts_of_an_asymmetric_model_and_moves_them_with_the_slider():
    from deepfake_detector.app.render import Analysis, band_text, render

    prediction = _decide(crowd([0.8]), True, 0.5, 0.25, "test-model", FAKE_BAND)
    analysis = Analysis(display=np.zeros((120, 120, 3), np.uint8), scale=1.0, prediction=prediction, crops=["data:,"], heatmaps=[None])
    summary = render(analysis, 0.5)[0]
    assert "## Verdict: Uncertain" in summary and "Threshold 0.50: Fake from 0.875, Real below 0.25." in summary and "±" not in summary
    summary = render(analysis, 0.375)[0]
    assert "## Verdict: Fake" in summary and "Threshold 0.38: Fake from 0.75, Real below 0.125." in summary
    text = band_text(0.375, 0.25, FAKE_BAND)
    assert "**Fake** from **0.75** up (threshold + 0.375)" in text and "**Real** below **0.125** (threshold - 0.25)" in text
    assert "asks more of a Fake verdict" in text and "±" not in text
    # A symmetric model reads as it always did.
    assert band_text(0.5, 0.45) == band_text(0.5, 0.45, 0.45) == (
        "Decision threshold **0.50** on the calibrated fake probability. Scores from **0.05** up to **0.95** (threshold ± 0.45) "
        "are reported as **Uncertain**; above that **Fake**, below it **Real**.")
    plain = Analysis(display=analysis.display, scale=1.0, prediction=decide([0.8]), crops=["data:,"], heatmaps=[None])
    assert f"Threshold 0.50, uncertain band ± {BAND:.2f}. Model: `test-model`." in render(plain, 0.5)[0]


# ---------------------------------------------------------------------------------------------------- box labels


def _check_labels(shape, faces, expect_compact: bool):
    from deepfake_detector.draw import annotate, label_layout

    labels, rects, _ = label_layout(shape, 1.0, faces)
    assert len(rects) == len(faces)
    for i, (x0, y0, x1, y1) in enumerate(rects):
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0], (i, rects[i])
        for j in range(i):
            a, b = rects[i], rects[j]
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), f"labels {i + 1} and {j + 1} overlap: {a} {b}"
        x, y, w, h = faces[i][0]  # each label stays near its own face: within two label heights of the box
        reach = 2 * (y1 - y0)
        assert x0 < x + w + reach and x1 > x - reach and y0 < y + h + reach and y1 > y - reach, (i, faces[i][0], rects[i])
    assert all(label.isdigit() for label in labels) == expect_compact, labels
    picture = annotate(np.full((*shape[:2], 3), 127, np.uint8), 1.0, faces)
    assert picture.shape == (*shape[:2], 3) and (picture != 127).any()


def test_labels_of_twenty_small_faces_do_not_overlap():
    """A crowd: two rows of ten 32-px faces 4 px apart (the Solvay photo's spacing at display size), one at each edge."""
    verdicts = ["Real", "Fake", "Uncertain", "Too small"]
    faces = [([4 + 36 * col, 30 + 40 * row, 32, 34], verdicts[(row * 10 + col) % 4]) for row in range(2) for col in range(10)]
    _check_labels((200, 370, 3), faces, expect_compact=True)
    # The same crowd pressed against the image's top and right edges.
    _check_labels((120, 364, 3), [([x, y - 30, w, h], v) for (x, y, w, h), v in faces], expect_compact=True)


def test_few_large_faces_keep_number_and_verdict_on_the_box():
    faces = [([40 + 300 * i, 80, 220, 220], verdict) for i, verdict in enumerate(["Real", "Fake", "Uncertain"])]
    _check_labels((400, 1000, 3), faces, expect_compact=False)


# ---------------------------------------------------------------------------------------------------- the page


from test_browser import browser, chromium  # noqa: E402,F401 - the headless-Chromium fixtures

SOLVAY = Path(__file__).resolve().parents[1] / "examples" / "solvay-1927.jpg"  # 29 people; the detector keeps 20 faces


@pytest.mark.parametrize("viewport, columns, screens", [((1366, 900), (4, 8), 3), ((390, 844), (2, 2), 4.5)], ids=["desktop", "phone"])
def test_crowd_photo_reads_as_a_grid_with_a_legend(browser, live_app, tmp_path, viewport, columns, screens):  # noqa: F811
    """The Solvay 1927 photo: the summary states the rule, a legend lists every face, the cards fill a grid (4-8 per
    row at 1366 px, two on a 390-px phone) and the page stays a few screens long (it ran 5,000 px in one column)."""
    width, height = viewport
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(live_app["url"])
    page.locator("#dfd-input input[type=file]").set_input_files(str(SOLVAY))
    page.locator("#dfd-summary").get_by_text("Verdict:").wait_for(timeout=90_000)
    page.locator(".dfd-face img").last.wait_for(state="visible")
    summary = page.locator("#dfd-summary").inner_text()
    assert "20 faces found" in summary and "of 20 faces" in summary, summary
    assert f"called Fake only when at least {faces_needed(20)} of them look generated" in summary, summary
    assert page.locator(".dfd-legend li").count() == 20
    cards = page.locator(".dfd-face")
    assert cards.count() == 20
    boxes = [cards.nth(i).bounding_box() for i in range(20)]
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= width for box in boxes), "a face card is cut off"
    lefts = sorted({round(box["x"]) for box in boxes})
    assert columns[0] <= len(lefts) <= columns[1], f"{len(lefts)} columns of face cards at {width} px: {lefts}"
    reading = [round(box["y"]) * 10_000 + round(box["x"]) for box in boxes]
    assert reading == sorted(reading), "cards are not in reading order"
    page_height = page.evaluate("document.documentElement.scrollHeight")
    assert page_height <= screens * height, f"the page is {page_height} px long"  # measured: 1,923 and 3,007 px
    page.screenshot(path=str(tmp_path / f"crowd-{width}.png"), full_page=True)
    assert not errors, errors
    page.close()
