"""The dataset builder on a small real subset of ../shared/data/faces (copied into tmp_path, never into the repo)."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from training import build_dataset
from training.data import load_built_dataset
from conftest import corpus_dir

FACES = corpus_dir()  # DFD_CORPUS, else ../shared/data/faces (tests/conftest.py)
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"needs the dev corpus at {FACES} (set DFD_CORPUS)")


def _manifest_rows() -> list[dict]:
    with (FACES / "MANIFEST.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _pick(rows: list[dict]) -> list[dict]:
    """Two StarGAN grid rows (input + 5 edits each), two AttGAN people, FFHQ, TPDNE, a StyleGAN2 seed at two psi."""
    picked = [r for r in rows if "stargan_celeba_128/results/60-images.jpg" in r["origin_path"] and ("row=0," in r["origin_path"] or "row=1," in r["origin_path"])]
    for celeba_id in ("182640", "182641"):
        picked += [r for r in rows if r["source"] in ("attgan", "celeba_attgan_input") and f"/{celeba_id}.jpg" in r["origin_path"]][:5]
    picked += [r for r in rows if r["source"] == "ffhq"][:12]
    picked += [r for r in rows if r["source"] == "tpdne"][:12]
    picked += [r for r in rows if r["source"] == "stylegan2" and "seed6600" in r["path"]]
    picked += [r for r in rows if Path(r["path"]).name in PHOTOS]
    return picked


# Whole photos: Biden's has three detections (his face and two in the painting behind him), Obama has two photos,
# Kit Harington one photo named after his role (johnsnow) and one after himself.
PHOTOS = {
    "facerec_ex_knn_ex_train_biden_biden2.jpg",
    "facerec_ex_obama.jpg",
    "facerec_ex_obama_small.jpg",
    "facerec_ex_knn_ex_test_johnsnow_test1.jpg",
    "facerec_ex_knn_ex_train_kit_harington_john2.jpeg",
    "gfpgan_Adele_crop.png",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A `<label>/<source>/` folder with MANIFEST.csv, one duplicate file and two broken files."""
    root = tmp_path_factory.mktemp("corpus")
    rows = _pick(_manifest_rows())
    for row in rows:
        (root / row["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FACES / row["path"], root / row["path"])
    shutil.copyfile(FACES / rows[-20]["path"], root / "real" / "ffhq" / "copy_of_one.png")  # exact duplicate
    good = (FACES / [r for r in rows if r["source"] == "tpdne"][0]["path"]).read_bytes()
    (root / "fake" / "tpdne" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "fake" / "tpdne" / "notes.jpg").write_text("not an image")
    with (root / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("built")
    assert build_dataset.main(["--source", str(corpus), "--output", str(output), "--seed", "0", "--num_proc", "1"]) == 0
    return output


def test_splits_features_and_label_names(built):
    """Three splits, the promised features, ClassLabel real/fake; both on-disk layouts load."""
    dataset = load_built_dataset(built)
    assert set(dataset) == {"train", "validation", "test"}
    for column in ("image", "label", "source", "group", "sha256", "width", "height", "format", "landmarks"):
        assert column in dataset["train"].features
    assert dataset["train"].features["label"].names == ["real", "fake"]
    parquet = load_built_dataset_parquet(built)
    assert sorted(parquet["train"]["sha256"]) == sorted(dataset["train"]["sha256"])
    assert sorted((built / "data").glob("train-*-of-*.parquet"))


def load_built_dataset_parquet(path: Path):
    import datasets

    return datasets.load_dataset(str(path))


def test_original_bytes_are_kept(built, corpus):
    """`image` holds the file's own bytes, not a re-encoding."""
    import hashlib

    row = next(row for row in load_built_dataset(built)["train"] if row["face_index"] == -1)
    assert hashlib.sha256(row["image"]["bytes"]).hexdigest() == row["sha256"]
    assert (corpus / row["path"]).read_bytes() == row["image"]["bytes"]


def test_no_group_or_hash_in_two_splits(built):
    """Leakage-free: a person (StarGAN row, AttGAN id) or latent (StyleGAN2 seed) lives in one split."""
    dataset = load_built_dataset(built)
    groups = {split: set(dataset[split]["group"]) for split in dataset}
    hashes = {split: set(dataset[split]["sha256"]) for split in dataset}
    for a in dataset:
        for b in dataset:
            if a < b:
                assert not groups[a] & groups[b]
                assert not hashes[a] & hashes[b]
    all_groups = [g for split in dataset for g in dataset[split]["group"]]
    assert sum(1 for g in set(all_groups) if g.startswith("stargan-test:grid60")) == 2  # two rows, each one group
    assert all_groups.count("latent:xinyiff/Project-on-StyleGAN:seed6600") == 2  # psi 0.5 and 1.0 together


def test_duplicate_kept_once_and_broken_files_reported(built):
    report = json.loads((built / "report.json").read_text())
    assert [d["path"] for d in report["duplicates"]] == ["real/ffhq/copy_of_one.png"]
    skipped = {item["path"]: item["reason"] for item in report["skipped"]}
    assert set(skipped) == {"fake/tpdne/truncated.jpg", "fake/tpdne/notes.jpg"}
    assert "truncated" in skipped["fake/tpdne/truncated.jpg"] or "damaged" in skipped["fake/tpdne/truncated.jpg"]
    assert "not an image" in skipped["fake/tpdne/notes.jpg"]
    markdown = (built / "report.md").read_text()
    assert "| train | real | ffhq |" in markdown and "truncated.jpg" in markdown


def test_report_counts_match_the_dataset(built):
    dataset = load_built_dataset(built)
    counts = json.loads((built / "report.json").read_text())["counts"]
    for split in dataset:
        for label_index, label in enumerate(["real", "fake"]):
            expected = sum(1 for value in dataset[split]["label"] if value == label_index)
            assert sum(counts.get(split, {}).get(label, {}).values()) == expected


def test_splits_are_deterministic_for_a_seed(corpus, tmp_path):
    records, _ = build_dataset.collect([str(corpus)], detect=False, num_proc=1)
    first = build_dataset.assign_splits(records, seed=3)
    again = build_dataset.assign_splits(list(reversed(records)), seed=3)
    assert dict(zip((r["sha256"] for r in records), first)) == dict(zip((r["sha256"] for r in reversed(records)), again))
    assert first != build_dataset.assign_splits(records, seed=4)


def test_iciap_zips_give_the_same_dataset_as_folders(tmp_path):
    """`0-FFHQ.zip`/`1-STARGAN.zip` read straight from the zips == the same files in `<label>/<source>/` folders."""
    ffhq = sorted((FACES / "real" / "ffhq").iterdir())[:10]
    stargan = sorted((FACES / "fake" / "stargan").iterdir())[:10]
    folder = tmp_path / "folder"
    for label, source, files, zip_name in (("real", "ffhq", ffhq, "0-FFHQ.zip"), ("fake", "stargan", stargan, "1-STARGAN.zip")):
        (folder / label / source).mkdir(parents=True)
        with zipfile.ZipFile(tmp_path / zip_name, "w") as archive:
            for file in files:
                shutil.copyfile(file, folder / label / source / file.name)
                archive.write(file, arcname=f"{source.upper()}/{file.name}")
    from_zips, from_folder = tmp_path / "z", tmp_path / "f"
    args = ["--seed", "1", "--num_proc", "1", "--no_detect_faces"]
    assert build_dataset.main(["--source", str(tmp_path / "0-FFHQ.zip"), "--source", str(tmp_path / "1-STARGAN.zip"), "--output", str(from_zips), *args]) == 0
    assert build_dataset.main(["--source", str(folder), "--output", str(from_folder), *args]) == 0
    zipped, foldered = load_built_dataset(from_zips), load_built_dataset(from_folder)
    for split in ("train", "validation", "test"):
        key = lambda d: sorted(zip(d["sha256"], d["label"], d["source"]))  # noqa: E731
        assert key(zipped[split]) == key(foldered[split])


def test_bad_sources_are_named(tmp_path, capsys):
    (tmp_path / "bogus" / "x").mkdir(parents=True)
    assert build_dataset.main(["--source", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert "Unknown label folder" in capsys.readouterr().err
    assert build_dataset.main(["--source", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dataset_card_parses_and_counts_come_from_the_data(built):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(built / "README.md")
    assert card.data.license == "other"
    assert "image-classification" in card.data.task_categories
    n = sum(len(split) for split in load_built_dataset(built).values())
    assert card.data.size_categories == ["n<1K"]
    assert f"**{n}** face images" in card.text
    assert "non-commercial" in card.text.lower()


@pytest.mark.parametrize(
    "name, person",
    [
        ("facerec_ex_knn_ex_train_biden_biden2.jpg", "biden"),
        ("facerec_ex_biden.jpg", "biden"),
        ("facerec_ex_alex-lacamoire.png", "alex_lacamoire"),
        ("facerec_ex_knn_ex_test_alex_lacamoire1.jpg", "alex_lacamoire"),
        ("facerec_ex_knn_ex_train_alex_lacamoire_img1.jpg", "alex_lacamoire"),
        ("facerec_test_obama3.jpg", "obama"),
        ("facerec_ex_obama_small.jpg", "obama"),
        ("facerec_ex_knn_ex_test_johnsnow_test1.jpg", "kit_harington"),
        ("facerec_ex_knn_ex_train_kit_harington_john1.jpeg", "kit_harington"),
        ("facenet_angelina_jolie_1.jpg", "angelina_jolie"),
        ("gfpgan_Julia_Roberts_crop.png", "julia_roberts"),
        ("photomaker_scarlett_0.jpg", "scarlett_johansson"),
        ("photomaker_yangmi_2.jpeg", "yang_mi"),
    ],
)
def test_person_named_in_photo_file(name, person):
    """Photos are grouped by the person in the file name, whatever the origin's naming scheme."""
    from training.sources import person_in_file

    assert person_in_file(name) == person


def test_every_corpus_photo_names_a_known_person():
    """The corpus' 34 photos name 16 people; a new naming scheme that parses to a fragment fails here."""
    from training.sources import person_in_file

    people = {person_in_file(file.name) for file in (FACES / "real").glob("photo_*/*")}
    assert len(people) == 16
    assert all(len(person) > 3 and not person[-1].isdigit() for person in people), people


def test_photo_rows_are_the_crops_predict_classifies(built, corpus):
    """One row per face, pixel for pixel the crop `predict()` feeds the model, in its order, with its square."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict

    detector = load_detector(Path(__file__).resolve().parents[1] / "models" / "deepfake-detector-effnet-lite0")
    dataset = load_built_dataset(built)
    rows = [row for split in dataset for row in dataset[split] if row["source"].startswith("photo_")]
    assert sorted({row["path"].split("#")[0].rsplit("/", 1)[1] for row in rows}) == sorted(PHOTOS)
    assert len(rows) == len(PHOTOS) + 2  # Biden's photo gives three rows
    for row in rows:
        photo = load_rgb_array((corpus / row["path"].split("#face=")[0]).read_bytes())
        face = predict(photo, detector).faces[row["face_index"]]
        assert row["path"].endswith(f"#face={row['face_index']}")
        assert row["crop_box"] == face.crop_box
        assert np.array_equal(load_rgb_array(row["image"]["bytes"]), face.crop)
        x, y, w, h = row["face_box"]
        assert [x + face.crop_box[0], y + face.crop_box[1], w, h] == face.box  # box stored in the crop's pixels


def test_photo_people_stay_in_one_split(built):
    """Both Obama photos, and Kit Harington's photo under his role's name, share a group and so a split."""
    dataset = load_built_dataset(built)
    split_of = {}
    for split in dataset:
        for row in dataset[split]:
            if row["source"].startswith("photo_"):
                split_of.setdefault(row["group"], set()).add(split)
    assert set(split_of) == {"person:biden", "person:obama", "person:kit_harington", "person:adele"}
    assert all(len(splits) == 1 for splits in split_of.values()), split_of
    report = json.loads((built / "report.json").read_text())
    assert report["photos"]["photo_facerec"] == {"photos": 5, "faces": 7, "no_face": 0, "people": 3, "max_faces": 3}


def test_keep_splits_of_an_earlier_build(built, corpus, tmp_path):
    """A grown corpus rebuilt with --keep_splits_of leaves every earlier file in its split; new files are dealt."""
    grown = tmp_path / "grown"
    shutil.copytree(corpus, grown)
    (grown / "fake" / "sd21").mkdir()
    for file in sorted((FACES / "fake" / "sd21").iterdir())[:12]:
        shutil.copyfile(file, grown / "fake" / "sd21" / file.name)
    output = tmp_path / "v2"
    args = ["--source", str(grown), "--output", str(output), "--seed", "0", "--num_proc", "1", "--no_detect_faces"]
    assert build_dataset.main([*args, "--keep_splits_of", str(built)]) == 0
    before, after = load_built_dataset(built), load_built_dataset(output)
    split_before = {sha: split for split in before for sha in before[split]["sha256"]}
    split_after = {sha: split for split in after for sha in after[split]["sha256"]}
    assert {sha: split_after[sha] for sha in split_before} == split_before
    new = [split_after[sha] for sha in set(split_after) - set(split_before)]
    assert len(new) == 12 and {"train", "validation", "test"} <= set(new)
    report = json.loads((output / "report.json").read_text())
    assert report["kept_splits"]["rows"] == len(split_before)


# ---------------------------------------------------------------- whole pictures (--per_face_source), families, caps

def _whole_pictures(root: Path) -> Path:
    """A per-face source laid out as ../shared/data/extra is: fakes and photos from two origin repositories each,
    the multi-face Biden photo among the photos (three detections)."""
    rows = _manifest_rows()
    chosen = {
        ("fake", "sd15-face-repo", "org/diffusion-a"): [r for r in rows if r["source"] == "sd21"][:3],
        ("fake", "flux1-dev-ipadapter", "org/diffusion-b"): [r for r in rows if r["source"] == "sd21"][3:5],
        ("fake", "dalle2", "org/diffusion-c"): [r for r in rows if r["source"] == "sd21"][5:6],
        ("real", "photo_extra_a", "org/photos-a"): [r for r in rows if Path(r["path"]).name == "facerec_ex_knn_ex_train_biden_biden2.jpg"],
        ("real", "photo_extra_b", "org/photos-b"): [r for r in rows if Path(r["path"]).name == "facerec_ex_obama.jpg"],
        ("real", "photo_extra_c", "org/photos-c"): [r for r in rows if Path(r["path"]).name == "facerec_ex_obama_small.jpg"],
    }
    manifest = []
    for (label, source, repo), picked in chosen.items():
        for row in picked:
            path = f"{label}/{source}/{Path(row['path']).name}"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(FACES / row["path"], root / path)
            manifest.append({**row, "path": path, "source": source, "origin_repo": repo})
    with (root / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(manifest[0].keys()))
        writer.writeheader()
        writer.writerows(manifest)
    return root


def test_whole_pictures_give_a_row_per_face_a_family_and_repository_groups(tmp_path):
    extra = _whole_pictures(tmp_path / "extra")
    output = tmp_path / "built"
    assert build_dataset.main(["--per_face_source", str(extra), "--output", str(output), "--num_proc", "1"]) == 0
    dataset = load_built_dataset(output)
    rows = [row for split in dataset.values() for row in split.remove_columns("image")]
    extra_rows = [row for row in rows if row["origin_repo"].startswith("org/")]
    biden = [row for row in extra_rows if "biden" in row["path"]]
    assert len(biden) == 3 and sorted(row["face_index"] for row in biden) == [0, 1, 2]  # one row per detected face
    assert all(row["face_index"] >= 0 for row in extra_rows if row["label"] == 1)  # generated pictures are cropped too
    assert {row["group"] for row in extra_rows} == {f"repo:org/{name}" for name in ("diffusion-a", "diffusion-b", "diffusion-c", "photos-a", "photos-b", "photos-c")}
    families = {row["source"]: row["family"] for row in rows}
    assert families["sd15-face-repo"] == "sd15" and families["flux1-dev-ipadapter"] == "flux"
    assert families["photo_extra_a"] == "real"
    split_of_repo = {}
    for split, data in dataset.items():
        for group in data["group"]:
            if group.startswith("repo:"):
                assert split_of_repo.setdefault(group, split) == split, f"{group} is in two splits"


@pytest.mark.parametrize("label, source, family", [
    ("fake", "facechain-sd15-majicmixrealistic-v6", "sd15"), ("fake", "arc2face-sd15", "sd15"), ("fake", "sd21", "sd21"),
    ("fake", "kolors-ipadapter-plus", "sdxl-kolors"), ("fake", "sdxl-controlnet-pose", "sdxl-kolors"), ("fake", "pulid-flux", "flux"),
    ("fake", "dalle2-early-preview", "dalle2"), ("fake", "infinity-8b", "omnigen-infinity-kandinsky"), ("fake", "tpdne", "gan"),
    ("fake", "stylegan2", "gan"), ("fake", "something-new", "other"), ("real", "photo_dlib", "real"), ("real", "ffhq", "real"),
])
def test_generator_family(label, source, family):
    from training.sources import generator_family

    assert generator_family(label, source) == family


def test_cap_per_source_is_a_seeded_sample_of_each_source():
    from training.sources import SourceFile

    files = [SourceFile(path=f"{source}/{i}.png", label="fake", source=source, read=bytes) for source in ("a", "b") for i in range(10)]
    files += [SourceFile(path="c/0.png", label="real", source="c", read=bytes)]
    capped = build_dataset.cap_per_source(files, 4, seed=1)
    assert [f.source for f in capped].count("a") == 4 and [f.source for f in capped].count("b") == 4
    assert [f.path for f in capped if f.source == "c"] == ["c/0.png"]
    assert [f.path for f in capped] == [f.path for f in build_dataset.cap_per_source(files, 4, seed=1)]
    assert [f.path for f in capped] != [f.path for f in build_dataset.cap_per_source(files, 4, seed=2)]
