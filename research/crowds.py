"""Photos with several faces: how many are called Fake by the old rule (the most suspicious face decides) and by
`deepfake_detector.predict.photo_verdict` (Fake only when `faces_needed(n)` faces are).

Every photo goes through `predict()` (the app's path); photos with 2+ faces found are kept: the real everyday photos
(`photo_*` sources) of the extra corpus and of the dev corpus, and the generated images of the extra corpus.

    .venv/bin/python -m research.crowds [--model FOLDER] [--output reports/crowds/crowds.json]

Writes the JSON (totals per group, one row per photo) and prints the README's table.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from deepfake_detector.images import load_rgb_array  # noqa: E402
from deepfake_detector.model import DEFAULT_MODEL_DIR, load_detector  # noqa: E402
from deepfake_detector.predict import FACE_FALSE_FAKE_RATE, Prediction, faces_needed, predict_many, verdict_for  # noqa: E402

EXTRA_DIR = REPO_ROOT / "data" / "extra"
CORPUS_DIR = REPO_ROOT.parent / "shared" / "data" / "faces"
GROUPS = ("real photos, extra corpus", "real photos, dev corpus", "generated, extra corpus")


def photos(extra: Path, corpus: Path) -> list[tuple[str, str, Path]]:
    """(group, source, file) of every candidate photo, in a fixed order."""
    found = []
    with (extra / "MANIFEST.csv").open(newline="") as manifest:
        for row in csv.DictReader(manifest):
            if row["label"] == "real" and row["source"].startswith("photo_"):
                found.append((GROUPS[0], row["source"], extra / row["path"]))
            elif row["label"] == "fake":
                found.append((GROUPS[2], row["source"], extra / row["path"]))
    for folder in sorted((corpus / "real").glob("photo_*")):
        found += [(GROUPS[1], folder.name, file) for file in sorted(folder.iterdir()) if file.is_file()]
    return found


def most_suspicious_rule(prediction: Prediction) -> str:
    """The photo verdict before issue 22: the verdict of the most suspicious judged face."""
    if prediction.faces_judged == 0:
        return prediction.verdict
    return verdict_for(prediction.fake_probability, prediction.threshold, prediction.uncertain_band, prediction.fake_band)


def measure(model: str, extra: Path, corpus: Path, batch: int = 8) -> dict:
    detector = load_detector(model)
    candidates = photos(extra, corpus)
    rows = []
    one_face = {group: {"photos": 0, "Fake": 0} for group in GROUPS}  # the rate a crowd should not exceed
    for start in range(0, len(candidates), batch):
        chunk = candidates[start : start + batch]
        images = [load_rgb_array(file) for _, _, file in chunk]
        for (group, source, file), prediction in zip(chunk, predict_many(images, detector)):
            faces = len(prediction.faces) if prediction.face_found else 0
            if faces == 1 and prediction.faces_judged == 1:
                one_face[group]["photos"] += 1
                one_face[group]["Fake"] += prediction.verdict == "Fake"
            if faces < 2:
                continue
            rows.append(
                {
                    "group": group,
                    "source": source,
                    "file": str(file.relative_to(extra if group != GROUPS[1] else corpus)),
                    "faces_found": faces,
                    "faces_judged": prediction.faces_judged,
                    "faces_flagged": prediction.faces_flagged,
                    "faces_needed": faces_needed(prediction.faces_judged),
                    "top_fake_probability": round(prediction.fake_probability, 4),
                    "before": most_suspicious_rule(prediction),
                    "after": prediction.verdict,
                }
            )
        print(f"{min(start + batch, len(candidates))}/{len(candidates)} photos", file=sys.stderr)
    totals = {}
    for group in GROUPS:
        mine = [row for row in rows if row["group"] == group]
        totals[group] = {
            "photos": len(mine),
            "faces_judged": sum(row["faces_judged"] for row in mine),
            "faces_flagged": sum(row["faces_flagged"] for row in mine),
            "photos_with_a_flagged_face": sum(row["faces_flagged"] > 0 for row in mine),
            **{f"{when}_{verdict}": sum(row[when] == verdict for row in mine) for when in ("before", "after") for verdict in ("Fake", "Uncertain", "Real", "Too small")},
        }
    return {
        "model": detector.name,
        "threshold": detector.threshold,
        "uncertain_band": detector.band,
        "face_false_fake_rate": FACE_FALSE_FAKE_RATE,
        "faces_needed": {n: faces_needed(n) for n in range(1, 21)},
        "totals": totals,
        "one_face_photos": one_face,  # photos with one judged face in the same groups: called Fake by either rule
        "photos": rows,
    }


def table(result: dict) -> str:
    lines = [
        "| photos with 2+ faces | photos | faces judged | faces Fake | Fake before | Fake after | Uncertain before | Uncertain after | Real before | Real after | one-face photos called Fake |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, t in result["totals"].items():
        single = result["one_face_photos"][group]
        lines.append(
            f"| {group} | {t['photos']} | {t['faces_judged']} | {t['faces_flagged']} | {t['before_Fake']} | {t['after_Fake']} "
            f"| {t['before_Uncertain']} | {t['after_Uncertain']} | {t['before_Real']} | {t['after_Real']} | {single['Fake']} of {single['photos']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_DIR), help="model folder or hf-hub:ORG/NAME (default: the bundled one)")
    parser.add_argument("--extra", type=Path, default=EXTRA_DIR, help="the rebuilt extra corpus (with MANIFEST.csv)")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="the dev corpus (real/photo_* are read)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "reports" / "crowds" / "crowds.json")
    args = parser.parse_args(argv)
    result = measure(args.model, args.extra, args.corpus)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
