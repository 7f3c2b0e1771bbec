"""Enumerate labelled image files from folders (`<label>/<source>/<file>`, optional MANIFEST.csv) and from the
ICIAP 2022 Face Deepfake Detection Challenge zips (`0-CelebA.zip` real, `1-STARGAN.zip` fake, ...), and derive
each file's leakage group.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from deepfake_detector.model import LABEL_NAMES
ICIAP_ZIP = re.compile(r"^(?P<label>[01])-(?P<source>.+)\.zip$", re.IGNORECASE)
# Files that describe a corpus rather than belong to it.
META_FILES = {"MANIFEST.csv", "README.md", "SHA256SUMS", "LICENSE", "LICENSE.txt", ".DS_Store", "Thumbs.db"}


@dataclass
class SourceFile:
    path: str  # relative to its input (folder) or "<zip name>/<member>"
    label: str  # "real" or "fake"
    source: str  # generator or real-photo source, lower case
    read: Callable[[], bytes]
    origin_repo: str = ""
    origin_path: str = ""
    license_note: str = ""
    per_face: bool = False  # a whole picture: one row per detected face (as for `photo_*`), grouped by origin repo


def iter_source_files(source: str | Path, per_face: bool = False) -> Iterator[SourceFile]:
    """Every candidate file under a folder or inside an ICIAP zip; raises ValueError naming a bad input.

    `per_face`: every file of the folder is a whole picture (a generated scene or an everyday photo, as visitors
    upload them): the builder keeps one row per detected face, and the folder's repositories are the groups."""
    source = Path(source)
    if not source.exists():
        raise ValueError(f"--source {source} does not exist.")
    if source.is_file():
        match = ICIAP_ZIP.match(source.name)
        if not match or not zipfile.is_zipfile(source):
            raise ValueError(
                f"--source {source} is a file but not an ICIAP challenge zip named like 0-CelebA.zip or 1-STARGAN.zip "
                "(0- real, 1- fake)."
            )
        yield from _iter_zip(source, LABEL_NAMES[int(match["label"])], match["source"].lower())
        return
    yield from _iter_folder(source, per_face)


def _iter_zip(zip_path: Path, label: str, source: str) -> Iterator[SourceFile]:
    with zipfile.ZipFile(zip_path) as archive:
        members = [info.filename for info in archive.infolist() if not info.is_dir()]
    for member in sorted(members):
        name = Path(member).name
        if name in META_FILES or name.startswith(".") or "__MACOSX" in member:
            continue

        def read(member: str = member) -> bytes:
            with zipfile.ZipFile(zip_path) as archive:
                return archive.read(member)

        yield SourceFile(path=f"{zip_path.name}/{member}", label=label, source=source, read=read, origin_path=member)


def _iter_folder(folder: Path, per_face: bool = False) -> Iterator[SourceFile]:
    manifest = _read_manifest(folder / "MANIFEST.csv")
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            if entry.name not in META_FILES and not entry.name.startswith("."):
                raise ValueError(f"{entry} lies outside a label folder; expected {folder}/real/<source>/ or {folder}/fake/<source>/.")
            continue
        if entry.name.startswith("."):
            continue
        if entry.name not in LABEL_NAMES:
            raise ValueError(f"Unknown label folder {entry}: the folders under a source must be 'real' and 'fake'.")
        for file in sorted(p for p in entry.rglob("*") if p.is_file()):
            if file.name in META_FILES or file.name.startswith("."):
                continue
            relative = file.relative_to(folder).as_posix()
            parts = file.relative_to(entry).parts
            row = manifest.get(relative, {})
            yield SourceFile(
                path=relative,
                label=entry.name,
                source=(row.get("source") or (parts[0] if len(parts) > 1 else entry.name)).lower(),
                read=file.read_bytes,
                origin_repo=row.get("origin_repo", ""),
                origin_path=row.get("origin_path", ""),
                license_note=row.get("license_note", ""),
                per_face=per_face,
            )


def _read_manifest(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["path"]: row for row in csv.DictReader(handle)}


GRID_TILE = re.compile(r"^(?P<grid>[^#]+)#tile=\d+px,row=(?P<row>\d+),col=(?P<col>\d+)$")
STARGAN_GRID = re.compile(r"stargan_celeba_(128|256)/results/(?P<n>\d+)-images\.jpg$")
CELEBA_ID = re.compile(r"(?P<id>\d{6})\.jpg$")
SEED = re.compile(r"_seed(?P<seed>\d+)")

# `photo_*` sources are whole photos of people (what visitors upload), not face crops: the builder runs them through
# the app's face detection and keeps one row per face (see training.build_dataset.inspect_photo).
PHOTO_SOURCE_PREFIX = "photo_"
# File-name prefixes of the photo sources (origin repo + folder), removed before reading the person's name.
PHOTO_NAME_PREFIX = re.compile(r"^(facenet|facerec_test|facerec(_ex)?(_knn_ex_(train|test))?|gfpgan|photomaker)_", re.IGNORECASE)
# Trailing image numbers and labels: `_1`, `2`, `_img1`, `_test1`, `_crop`, `_small`, and face_recognition's
# `_john1` (Kit Harington's training photos are named after his role) and `_biden2`.
PHOTO_NAME_SUFFIX = re.compile(r"(_(crop|small|img\d*|test\d*|john\d*|biden\d*)|_?\d+)$", re.IGNORECASE)
# Different names for one person in the file names: `johnsnow_test1` is Kit Harington as Jon Snow.
PERSON_ALIASES = {"johnsnow": "kit_harington", "scarlett": "scarlett_johansson", "yangmi": "yang_mi"}


def is_photo_source(source: str) -> bool:
    return source.startswith(PHOTO_SOURCE_PREFIX)


def person_in_file(name: str) -> str:
    """The person a `photo_*` file is named after, normalised: `facerec_ex_knn_ex_train_biden_biden2.jpg` -> `biden`,
    `facerec_ex_alex-lacamoire.png` and `..._test_alex_lacamoire1.jpg` -> `alex_lacamoire`."""
    stem = PHOTO_NAME_PREFIX.sub("", Path(name).stem).lower().replace("-", "_")
    while True:
        shorter = PHOTO_NAME_SUFFIX.sub("", stem)
        if shorter == stem or not shorter:
            break
        stem = shorter
    return PERSON_ALIASES.get(stem, stem)


def group_key(file: SourceFile) -> str:
    """Images that share a person or a latent get one key, so a split never holds the same face twice.

    - StarGAN grid rows: 1 real CelebA input + 5 edits of that person. The 256-px grids (NathanMaton) show the same
      64 people as the first four 128-px grids (ZoeLiao), in an order we cannot verify, so all of them are one group.
    - AttGAN tiles: every tile of one CelebA test id (input, reconstruction and edits) is one person.
    - StyleGAN2 files with the same seed at different truncation share a latent; the StyleGAN interpolation frames
      are one latent path.
    - `photo_*` files: every photo of one person (by the name in the file name, `person_in_file`), across sources.
    - A `per_face` file with an origin repository: the whole repository (its README figures, its test photos and
      its identities are one origin; the extra corpus' README: never split a repository).
    - Anything else is its own group.
    """
    if file.per_face and file.origin_repo:
        return f"repo:{file.origin_repo}"
    if is_photo_source(file.source):
        return f"person:{person_in_file(file.path)}"
    origin = file.origin_path
    tile = GRID_TILE.match(origin)
    if tile:
        grid = tile["grid"]
        stargan = STARGAN_GRID.search(grid)
        if stargan:
            number = int(stargan["n"])
            if "256" in grid or number <= 4:
                return "stargan-test:first-64-people"
            return f"stargan-test:grid{number}:row{int(tile['row'])}"
        celeba = CELEBA_ID.search(grid)
        if celeba:
            return f"celeba:{celeba['id']}"
        return f"grid:{file.origin_repo}:{grid}:row{int(tile['row'])}"
    name = Path(file.path).stem
    seed = SEED.search(name)
    if seed and file.origin_repo:
        return f"latent:{file.origin_repo}:seed{int(seed['seed'])}"
    if "_interp" in name and file.origin_repo:
        return f"latent:{file.origin_repo}:interpolation"
    return f"file:{file.label}/{file.source}/{name}"


# Generator families for leave-one-family-out evaluation (issue 22): a family is held out whole, with its fine-tunes,
# because a fine-tune of a seen generator says little about an unseen one. First match wins; "real" for every photo.
FAMILIES = (
    ("gan", re.compile(r"^(stargan|attgan|tpdne|stylegan\d*|gdwct)")),
    ("sd21", re.compile(r"^sd21$")),
    ("sdxl-kolors", re.compile(r"^(sdxl|kolors|facechain-sdxl|midjourney)")),
    ("flux", re.compile(r"flux")),
    ("dalle2", re.compile(r"^dalle2")),
    ("omnigen-infinity-kandinsky", re.compile(r"^(omnigen|infinity|kandinsky)")),
    ("sd15", re.compile(r"(sd15|sd1\.|arc2face|easyphoto|ic-light|uniportrait|fastcomposer|stable-diffusion)")),
)


def generator_family(label: str, source: str) -> str:
    """The generator family of a fake source (FAMILIES), "real" for a real one, "other" for a fake one not listed.

    Borderline calls, stated: `midjourney-v6-cref` (2 tiles of the Kolors repository's figures) and `facechain-sdxl`
    go with SDXL + Kolors; `stable-diffusion-unknown-version` (could be SD 2.x) with SD 1.5; PuLID and IP-Adapter on
    FLUX.1 with FLUX."""
    if label == "real":
        return "real"
    for family, pattern in FAMILIES:
        if pattern.search(source):
            return family
    return "other"
