"""A wheel that works outside the checkout: the built wheel carries the default model (setup.py copies
models/deepfake-detector-clip-cnn-fused into deepfake_detector/bundled_model of the build), and the installed package
scans real photos from a folder far from the repository with no --model.

No mocks: the wheel is built by pip from a copy of the sources (--no-build-isolation, so setuptools comes from this
environment and the working tree is never written), installed with --no-deps into a --target folder, and run with
PYTHONPATH naming only that folder (the heavy dependencies, torch and timm, come from the running interpreter's own
site-packages, which holds no deepfake_detector).
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from deepfake_detector.model import BUNDLED_MODEL_SUBDIR, DEFAULT_MODEL_NAME, MEMBER_DIR

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_MODEL = REPO_ROOT / "models" / DEFAULT_MODEL_NAME
CNN_MODEL = REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"  # the fast CNN, for --model
PHOTOS = ("solvay-1927.jpg", "astronaut.jpg")
PACKAGED = f"deepfake_detector/{BUNDLED_MODEL_SUBDIR}"


def build_source(destination: Path) -> Path:
    """What a checkout holds that the build reads: pyproject.toml, setup.py, MANIFEST.in, the package, the default model."""
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in"):
        shutil.copy(REPO_ROOT / name, destination / name)
    shutil.copytree(REPO_ROOT / "deepfake_detector", destination / "deepfake_detector",
                    ignore=shutil.ignore_patterns("__pycache__", BUNDLED_MODEL_SUBDIR))
    shutil.copytree(SOURCE_MODEL, destination / "models" / DEFAULT_MODEL_NAME)
    return destination


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = build_source(tmp_path_factory.mktemp("source"))
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip wheel failed: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    (built,) = dist.glob("deepfake_detector-*.whl")
    print(f"wheel: {built.name}, {built.stat().st_size / 1e6:.1f} MB")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory) -> Path:
    """The wheel installed with --no-deps into a bare --target folder (its console script lands in TARGET/bin)."""
    target = tmp_path_factory.mktemp("target")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return target


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("away") / "photos"
    folder.mkdir()
    for name in PHOTOS:
        shutil.copy(REPO_ROOT / "examples" / name, folder / name)
    return folder


def run_outside(target: Path, command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`command` in `cwd` (outside the checkout) with only `target` on PYTHONPATH; stderr is a pipe, not a terminal."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "DFD_"))}
    env |= {"PYTHONPATH": str(target), "OMP_NUM_THREADS": "2", "HOME": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_wheel_carries_the_default_model_byte_for_byte(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        expected = {f"{PACKAGED}/{path.relative_to(SOURCE_MODEL).as_posix()}": path for path in SOURCE_MODEL.rglob("*") if path.is_file()}
        assert set(expected) <= names, sorted(set(expected) - names)
        for required in ("config.json", "model.safetensors.index.json", f"{MEMBER_DIR}/config.json", f"{MEMBER_DIR}/model.safetensors"):
            assert f"{PACKAGED}/{required}" in names
        for name, path in expected.items():
            assert sha256(archive.read(name)) == sha256(path.read_bytes()), name
    # The copy is made by the build: the package source holds none and git tracks none.
    assert not [n for n in names if n.startswith(("models/", "training/", "tests/"))]
    tracked = subprocess.run(["git", "ls-files", f"deepfake_detector/{BUNDLED_MODEL_SUBDIR}"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert tracked.returncode != 0 or not tracked.stdout.strip()
    # The sdist grafts the same folder, so a wheel built from an sdist (python -m build) carries it too.
    assert f"graft models/{DEFAULT_MODEL_NAME}" in (REPO_ROOT / "MANIFEST.in").read_text()


def test_installed_package_scans_outside_the_checkout_with_its_bundled_model(installed, photos):
    cwd = photos.parent
    assert not cwd.resolve().is_relative_to(REPO_ROOT)
    where = run_outside(installed, [sys.executable, "-c", "import deepfake_detector.model as m; print(m.__file__); print(m.default_model_dir(required=True))"], cwd)
    assert where.returncode == 0, where.stderr[-2000:]
    module_file, model_folder = (Path(line) for line in where.stdout.split())
    assert module_file.is_relative_to(installed), f"the checkout was imported: {module_file}"
    assert model_folder == installed / PACKAGED

    # The console script pip wrote, with no --model: the bundled default.
    script = installed / "bin" / "deepfake-detector"
    assert script.is_file()
    result = run_outside(installed, [str(script), "scan", "photos", "--output", "results.csv"], cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"model: {DEFAULT_MODEL_NAME} ({installed / PACKAGED})" in result.stderr, result.stderr[-2000:]
    rows = list(csv.DictReader((cwd / "results.csv").open()))
    assert {row["file"] for row in rows} == {f"photos/{name}" for name in PHOTOS}
    for row in rows:
        assert row["model"] == DEFAULT_MODEL_NAME and not row["error"]
        assert row["face_found"] == "true" and 0.0 <= float(row["fake_probability"]) <= 1.0
    assert sum(row["file"] == "photos/solvay-1927.jpg" for row in rows) > 10  # the 1927 Solvay group photo: many faces
    # Not a terminal: plain progress lines, no carriage returns.
    assert "\r" not in result.stderr and f"scan: {len(PHOTOS)}/{len(PHOTOS)} images (100%)" in result.stderr


def test_without_a_bundled_model_the_error_is_clear_and_model_still_works(installed, photos, tmp_path):
    # The same installation less its bundled copy (what an install from an older wheel looks like).
    bare = tmp_path / "bare"
    shutil.copytree(installed, bare, ignore=shutil.ignore_patterns(BUNDLED_MODEL_SUBDIR))
    shutil.copytree(photos, tmp_path / "photos")
    command = [sys.executable, "-m", "deepfake_detector.cli", "scan", "photos", "--output", "results.csv"]
    result = run_outside(bare, command, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "No default model" in result.stderr and "--model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results.csv").exists()
    # --model FOLDER needs no bundled model (hf-hub:ORG/NAME goes through the same resolve_model_folder).
    small = Image.open(photos / "astronaut.jpg").convert("RGB")
    small.thumbnail((256, 256))
    (tmp_path / "small").mkdir()
    small.save(tmp_path / "small" / "astronaut.png")
    result = run_outside(bare, [*command[:4], "small", "--output", "cnn.csv", "--model", str(CNN_MODEL)], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = csv.DictReader((tmp_path / "cnn.csv").open())
    assert row["file"] == "small/astronaut.png" and row["model"] == CNN_MODEL.name, row
