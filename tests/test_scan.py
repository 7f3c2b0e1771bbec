"""`deepfake-detector scan` on a small real folder: rows per face, unreadable files, heatmaps, resume after SIGKILL, and
two processes under `accelerate launch` writing what one process writes, row for row.

Every run compared byte for byte uses one thread (OMP_NUM_THREADS=1): the thread count changes the last digit of
some probabilities, and accelerate gives each of its processes one thread.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_detector.predict import faces_needed
from conftest import BUNDLED_MODEL
from deepfake_detector.scan import (COLUMNS, PlainProgress, error_row, heatmap_path, list_images, merge, read_rows, repair, scan,
                                    shard_paths)

REPO_ROOT = Path(__file__).resolve().parent.parent
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
MULTI_FACE_PHOTO = "real/photo_facerec/facerec_ex_knn_ex_train_biden_biden2.jpg"  # three people
CROPS_PER_LABEL = 8


@pytest.fixture(scope="module")
def photos(faces_dir: Path, tmp_path_factory) -> Path:
    """tmp/photos: two whole photos, 8 real and 8 fake face crops, a wall (no face), two unreadable files, ignored names."""
    folder = tmp_path_factory.mktemp("scan") / "photos"
    (folder / "crops" / "real").mkdir(parents=True)
    (folder / "crops" / "fake").mkdir(parents=True)
    shutil.copy(faces_dir / MULTI_FACE_PHOTO, folder)
    shutil.copy(faces_dir / "real/photo_facerec/facerec_ex_obama_small.jpg", folder)
    for label, source in (("real", "ffhq"), ("fake", "stargan")):
        for path in sorted((faces_dir / label / source).iterdir())[:CROPS_PER_LABEL]:
            shutil.copy(path, folder / "crops" / label)
    Image.new("RGB", (200, 160), (120, 120, 120)).save(folder / "wall.png")
    (folder / "broken.jpg").write_text("not an image")
    jpeg = (faces_dir / "real/photo_facerec/facerec_ex_obama.jpg").read_bytes()
    (folder / "crops" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    shutil.copy(faces_dir / MULTI_FACE_PHOTO, folder / ".hidden.jpg")  # hidden names are not walked
    (folder / "notes.txt").write_text("not a photo suffix")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scan_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepfake_detector.cli", "scan", *args]


def csv_rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def reference(photos: Path, model_dir: Path) -> dict:
    """One uninterrupted one-process scan of `photos` (run from its parent, so `file` reads photos/...)."""
    output = photos.parent / "reference.csv"
    result = subprocess.run(
        scan_command("photos", "--output", output.name, "--model", str(model_dir)),
        cwd=photos.parent, env=ONE_THREAD, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {"text": output.read_text(), "rows": csv_rows(output.read_text()), "stderr": result.stderr}


@pytest.fixture(scope="module")
def detector(model_dir: Path):
    """The model in this process, run on one thread like the subprocess runs (and quicker on a busy 2-core machine)."""
    import torch

    from deepfake_detector.model import load_detector

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_detector(model_dir)
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------- pure helpers


def test_list_images_walks_sorted_skips_hidden_and_refuses_missing(tmp_path):
    # Rule: the order is fixed (it decides the output order and the split between processes).
    for name in ("b/2.png", "b/1.JPG", "a.jpeg", ".cache/x.jpg", "b/.y.png", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_images([tmp_path]) == [str(tmp_path / n) for n in ("a.jpeg", "b/1.JPG", "b/2.png")]
    assert list_images([tmp_path / "c.txt", tmp_path / "a.jpeg", tmp_path]) == [str(tmp_path / n) for n in ("c.txt", "a.jpeg", "b/1.JPG", "b/2.png")]
    with pytest.raises(ValueError, match="does not exist"):
        list_images([tmp_path / "missing"])


def test_heatmap_path_stays_inside_the_folder(tmp_path):
    # Rule: a heatmap is named after its input and never lands outside --heatmaps, whatever the input path.
    for file in ("../../etc/passwd.jpg", "/abs/photo.png", "photos/a.jpg"):
        path = heatmap_path(tmp_path, file, 2)
        assert path.resolve().is_relative_to(tmp_path.resolve()) and path.name == f"{Path(file).name}.face2.png"


def test_repair_cuts_only_a_half_written_line(tmp_path):
    output = tmp_path / "out.csv"
    output.write_text(",".join(COLUMNS) + "\nphotos/a.jpg,0\nphotos/b.j")
    repair(output)
    assert output.read_text() == ",".join(COLUMNS) + "\nphotos/a.jpg,0\n"
    repair(output)  # complete lines are left alone
    assert output.read_text().endswith("photos/a.jpg,0\n")


def test_merge_orders_rows_by_the_file_list_and_removes_shards(tmp_path):
    output = tmp_path / "out.jsonl"
    rows = {name: error_row(name, "unreadable", "m", 0.5) for name in ("a", "b", "c", "old")}
    output.write_text(json.dumps(rows["old"]) + "\n" + json.dumps(rows["b"]) + "\n")
    output.with_name("out.jsonl.part-1-of-2").write_text(json.dumps(rows["c"]) + "\n")
    output.with_name("out.jsonl.part-0-of-2").write_text(json.dumps(rows["a"]) + "\n")
    merged = merge(output, ["a", "b", "c"], "jsonl")
    # A photo no longer listed keeps its place first; the rest follow the list, whichever shard held them.
    assert [row["file"] for row in merged] == ["old", "a", "b", "c"]
    assert [row["file"] for row in read_rows(output, "jsonl")] == ["old", "a", "b", "c"]
    assert shard_paths(output) == []


def test_cli_refuses_a_threshold_outside_0_1(capsys):
    from deepfake_detector.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["scan", "photos", "--output", "out.csv", "--threshold", "1.5"])
    assert exit_info.value.code == 2 and "not between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- real scans


def test_one_row_per_face_and_one_per_unreadable_file(reference, photos):
    rows = reference["rows"]
    walked = [str(Path("photos") / Path(p).relative_to(photos)) for p in list_images([photos])]
    assert len(walked) == 2 * CROPS_PER_LABEL + 5 and not any(".hidden" in f or "notes.txt" in f for f in walked)
    # Rows come in walk order, each photo's rows together.
    assert list(dict.fromkeys(row["file"] for row in rows)) == walked
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)

    group = by_file["photos/" + Path(MULTI_FACE_PHOTO).name]
    assert [row["face_index"] for row in group] == ["0", "1", "2"] and all(row["face_found"] == "true" for row in group)
    assert len({row["box"] for row in group}) == 3
    top = max((row for row in group if row["fake_probability"]), key=lambda row: float(row["fake_probability"]))
    # The photo rule (predict.photo_verdict): Fake only with faces_needed(n) Fake faces, Uncertain with fewer, else
    # the most suspicious face decides.
    flagged = sum(row["verdict"] == "Fake" for row in group)
    needed = faces_needed(sum(bool(row["fake_probability"]) for row in group))
    expected = "Fake" if flagged and flagged >= needed else "Uncertain" if flagged else top["verdict"]
    assert all(row["image_verdict"] == expected for row in group)

    for name in [f for f in walked if "/crops/real/" in f or "/crops/fake/" in f] + ["photos/facerec_ex_obama_small.jpg"]:
        assert len(by_file[name]) == 1 and by_file[name][0]["face_found"] == "true", by_file[name]
    (wall,) = by_file["photos/wall.png"]
    assert wall["face_found"] == "false" and json.loads(wall["box"]) == [0, 0, 200, 160]  # no face: the whole image

    for name, reason in (("photos/broken.jpg", "not an image we can read"), ("photos/crops/truncated.jpg", "damaged or truncated")):
        (row,) = by_file[name]
        assert reason in row["error"] and row["face_index"] == row["fake_probability"] == row["verdict"] == ""
    for row in rows:
        if not row["error"]:
            assert row["verdict"] and row["model"] and 0.0 <= float(row["threshold"]) <= 1.0
    for name in walked:
        if "/crops/real/" in name or "/crops/fake/" in name:  # every face crop is judged
            (row,) = by_file[name]
            assert 0.0 <= float(row["fake_probability"]) <= 1.0 and row["verdict"] in ("Real", "Fake", "Uncertain")
    # Progress into a pipe: plain lines with a rate, no carriage returns; and the summary counts what was done.
    assert "images/s" in reference["stderr"] and "\r" not in reference["stderr"]
    assert f"scanned {len(walked)} images" in reference["stderr"] and "2 unreadable" in reference["stderr"]


def test_jsonl_in_process_matches_the_csv(reference, photos, detector, tmp_path):
    # Rule: the library call and the command write the same rows; JSON Lines keeps native types.
    output = tmp_path / "out.jsonl"
    summary = scan([photos], output, detector, progress=False)
    assert (summary.scanned, summary.skipped, summary.unreadable) == (len(list_images([photos])), 0, 2)
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == len(reference["rows"]) and summary.faces == len(rows) - 2
    for row, expected in zip(rows, reference["rows"]):
        assert row["file"] == str(photos.parent / expected["file"])
        assert (row["face_found"], row["box"], row["crop_box"], row["error"]) == (
            {"true": True, "false": False, "": None}[expected["face_found"]],
            json.loads(expected["box"]) if expected["box"] else None,
            json.loads(expected["crop_box"]) if expected["crop_box"] else None,
            expected["error"] or None,
        )
        if not row["error"]:
            # One thread in both runs: the same numbers.
            assert row["fake_probability"] == (float(expected["fake_probability"]) if expected["fake_probability"] else None)
            assert row["verdict"] == expected["verdict"] and row["heatmap"] is None


def test_heatmaps_one_png_per_face_named_after_the_input(photos, detector, tmp_path):
    files = [photos / Path(MULTI_FACE_PHOTO).name, photos / "wall.png", photos / "broken.jpg"]
    output, heatmaps = tmp_path / "out.jsonl", tmp_path / "heatmaps"
    scan(files, output, detector, heatmaps_dir=heatmaps, progress=False)
    rows = read_rows(output, "jsonl")
    assert [row["face_index"] for row in rows] == [0, 1, 2, 0, None]
    assert rows[-1]["heatmap"] is None  # nothing to explain in an unreadable file
    explained = [row for row in rows if row["fake_probability"] is not None]  # a heatmap wherever a face was judged
    assert len(explained) >= 3 and sorted(heatmaps.rglob("*.png")) == sorted(Path(row["heatmap"]) for row in explained)
    for row in explained:
        assert Path(row["heatmap"]) == heatmap_path(heatmaps, row["file"], row["face_index"])
        x0, y0, x1, y1 = row["crop_box"]
        with Image.open(row["heatmap"]) as picture:  # the Grad-CAM overlay, at the size of the crop the model saw
            assert picture.format == "PNG" and picture.size == (x1 - x0, y1 - y0)
            assert np.asarray(picture).std() > 1.0


def test_resume_refuses_another_threshold(reference, photos, detector, tmp_path):
    # Rule: one output holds one model's verdicts at one threshold; mixing them would be silent nonsense.
    output = tmp_path / "out.csv"
    output.write_text(reference["text"])
    with pytest.raises(ValueError, match="same --model and --threshold"):
        scan([photos], output, detector, threshold=0.99, progress=False)


def test_resume_after_sigkill_skips_finished_files_and_ends_identical(reference, photos, model_dir, tmp_path):
    shutil.copytree(photos, tmp_path / "photos")
    output = tmp_path / "out.csv"
    command = scan_command("photos", "--output", output.name, "--model", str(model_dir), "--no_progress")
    process = subprocess.Popen(command, cwd=tmp_path, env=ONE_THREAD, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while len({row["file"] for row in read_rows(output, "csv")}) < 4:
            assert process.poll() is None, f"the scan ended before it could be killed: {process.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "no rows after 300 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    done = {row["file"] for row in read_rows(output, "csv")}
    total = len(list_images([photos]))
    assert 4 <= len(done) < total, "the kill came too late to test resuming"
    # A redone photo would now be read as junk and show up as an error row: the final comparison catches it.
    for file in done:
        (tmp_path / file).write_bytes(b"junk")
    with output.open("a") as handle:  # as if the kill had landed in the middle of a write
        handle.write("photos/crops/real/half-a-li")

    resumed = subprocess.run(command, cwd=tmp_path, env=ONE_THREAD, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"scanned {total - len(done)} images" in resumed.stderr and f"{len(done)} already in the output" in resumed.stderr
    assert output.read_text() == reference["text"]


def test_two_processes_under_accelerate_write_the_same_rows(reference, photos, model_dir):
    output = photos.parent / "two-processes.csv"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    result = subprocess.run(
        [*launch, "-m", "deepfake_detector.cli", "scan", "photos", "--output", output.name, "--model", str(model_dir), "--no_progress"],
        cwd=photos.parent, env=ONE_THREAD, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "with 2 processes" in result.stderr  # really two processes, not one that ignored the launcher
    assert output.read_text() == reference["text"]
    assert shard_paths(output) == []


# ---------------------------------------------------------------------------------------------------- progress in a log


class ManualClock:
    """A clock the test moves by hand (steps exact in binary, so no line hinges on a rounding error)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain_lines(total: int, seconds_per_image: float) -> list[str]:
    stream, clock = io.StringIO(), ManualClock()
    with PlainProgress(total, "scan", stream, clock=clock) as bar:
        for _ in range(total):
            clock.now += seconds_per_image
            bar.update(1)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    return text.splitlines()


def test_plain_progress_every_5_percent_or_10_seconds_whichever_is_sparser():
    # 368 photos at 1 s each: every 19 photos (5% rounded up) is sparser than every 10 s; then the last line.
    lines = plain_lines(368, 1.0)
    assert len(lines) == 368 // 19 + 1
    assert lines[0] == "scan: 19/368 images (5%), elapsed 0:19, ETA 5:49, 1.00 images/s"
    assert lines[-1] == "scan: 368/368 images (100%), elapsed 6:08, 1.00 images/s"
    # 1000 photos at 0.125 s: every 10 s (80 photos) is sparser than every 5% (50 photos).
    lines = plain_lines(1000, 0.125)
    assert [line.split()[1] for line in lines] == [f"{n}/1000" for n in (*range(80, 1000, 80), 1000)]
    assert "ETA 1:55" in lines[0] and "elapsed 2:05" in lines[-1]
    # Long scans read as hours; an empty scan (all resumed) still says where it stands.
    assert "elapsed 3:28:20" in plain_lines(100_000, 0.125)[-1]
    assert plain_lines(0, 1.0) == ["scan: 0/0 images (100%), elapsed 0:00, 0.00 images/s"]


@pytest.fixture(scope="module")
def dozen_photos(tmp_path_factory) -> Path:
    """12 small photos made from the repository's examples (4 pictures at 3 sizes, JPEG and PNG)."""
    folder = tmp_path_factory.mktemp("dozen") / "photos"
    folder.mkdir()
    for name in ("astronaut.jpg", "camera.jpg", "chelsea.jpg", "solvay-1927.jpg"):
        image = Image.open(REPO_ROOT / "examples" / name).convert("RGB")
        for side, suffix in ((160, "png"), (240, "jpg"), (320, "jpg")):
            small = image.copy()
            small.thumbnail((side, side))
            small.save(folder / f"{Path(name).stem}-{side}.{suffix}")
    return folder


def test_scan_into_a_log_writes_plain_progress_lines(dozen_photos):
    # stderr is a pipe here, as in CI or `2> scan.log`: readable lines, not a tqdm bar redrawn with '\r'.
    command = scan_command("photos", "--output", "out.csv", "--model", str(BUNDLED_MODEL))
    result = subprocess.run(command, cwd=dozen_photos.parent, env=ONE_THREAD, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr and result.stderr.endswith("\n")
    progress = [line for line in result.stderr.splitlines() if line.startswith("scan: ")]
    assert progress and all("/12 images (" in line and "images/s" in line for line in progress), result.stderr
    assert progress[-1].startswith("scan: 12/12 images (100%), elapsed "), result.stderr
    assert "scanned 12 images" in result.stderr.splitlines()[-1]
    assert len(csv_rows((dozen_photos.parent / "out.csv").read_text())) >= 12
