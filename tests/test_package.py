"""`pip install .`: the wheel holds the inference package and its default model only, declares its runtime dependencies
only (within the pinned versions), and installs a `deepfake-detector` command that answers --help without torch and
scans with it.

The wheel is built offline (--no-build-isolation: setuptools from this environment) from a copy of the sources, so
the build never writes into the working tree.
"""

from __future__ import annotations

import ast
import csv
import email.parser
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deepfake_detector.model import BUNDLED_MODEL_SUBDIR, DEFAULT_MODEL_NAME

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAINING_ONLY = {"accelerate", "datasets", "evaluate", "albumentations", "transformers", "tensorboard", "scikit-learn", "pandas"}
ENTRY_POINT = "deepfake-detector = deepfake_detector.cli:main"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    # training/, tests/ and app.py come along so that their absence from the wheel means something; setup.py and the
    # default model folder because the build copies that folder into the package (tests/test_wheel.py runs it).
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "deepfake_detector", "training", "tests", "app.py", f"models/{DEFAULT_MODEL_NAME}"):
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", BUNDLED_MODEL_SUBDIR))
        else:
            shutil.copy(REPO_ROOT / name, source / name)
    dist = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"pip wheel failed (setuptools>=77 is needed in this environment): {result.stdout[-2000:]}{result.stderr[-2000:]}"
    (built,) = dist.glob("deepfake_detector-*.whl")
    return built


@pytest.fixture(scope="module")
def metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A fresh virtual environment with only the wheel installed (--no-deps): no torch, no timm."""
    folder = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


def run_in(folder: Path, command: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    # No PYTHONPATH and a working directory outside the repository: only what was installed can be imported.
    env = {"PATH": f"{folder / 'bin'}:/usr/bin:/bin", "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, **kwargs)


def test_wheel_holds_the_inference_package_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("deepfake_detector/", "deepfake_detector-")) for n in names), names
    assert {"deepfake_detector/cli.py", "deepfake_detector/scan.py", "deepfake_detector/predict.py", "deepfake_detector/model.py"} <= set(names)
    assert not [n for n in names if n.startswith(("training/", "tests/", "models/")) or n == "app.py"]
    # The one data folder: the default model, copied by the build (tests/test_wheel.py checks it byte for byte).
    data = {n for n in names if n.startswith("deepfake_detector/") and not n.endswith(".py")}
    assert data and all(n.startswith(f"deepfake_detector/{BUNDLED_MODEL_SUBDIR}/") for n in data), sorted(data)[:5]


def test_runtime_dependencies_exclude_training_and_cover_every_import(metadata):
    requirements = [Requirement(line) for line in metadata.get_all("Requires-Dist")]
    runtime = {canonicalize_name(r.name) for r in requirements if r.marker is None}
    extras = {canonicalize_name(r.name): str(r.marker) for r in requirements if r.marker is not None}
    assert not runtime & TRAINING_ONLY and "gradio" not in runtime
    assert 'extra == "app"' in extras["gradio"] and 'extra == "accelerate"' in extras["accelerate"]
    # Every third-party module the package imports (at the top or lazily) is declared, at runtime or as an extra.
    imported = set()
    for path in (REPO_ROOT / "deepfake_detector").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__", "deepfake_detector"}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {m for m in third_party if not {canonicalize_name(d) for d in distributions.get(m, [m])} & (runtime | set(extras))}
    assert not undeclared, f"imported by deepfake_detector but not in pyproject.toml: {undeclared}"


def test_dependency_ranges_contain_the_pinned_versions(metadata):
    # requirements*.txt hold the versions the Space and CI install: the package must accept them.
    pins = {}
    for path in REPO_ROOT.glob("requirements*.txt"):
        for line in path.read_text().splitlines():
            if "==" in line and not line.lstrip().startswith("#"):
                name, version = line.split("#")[0].strip().split("==")
                pins[canonicalize_name(name)] = version
    for line in metadata.get_all("Requires-Dist"):
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency of the package but pinned in no requirements*.txt"
        assert requirement.specifier.contains(pins[name]), f"{requirement} excludes the pinned {name}=={pins[name]}"


def test_fresh_venv_gets_the_command_and_help_needs_no_torch(wheel, venv, tmp_path):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        assert ENTRY_POINT in archive.read(name).decode()
    assert run_in(venv, [str(venv / "bin" / "python"), "-c", "import torch"], tmp_path).returncode != 0
    result = run_in(venv, ["deepfake-detector", "--help"], tmp_path)
    assert result.returncode == 0 and "scan" in result.stdout, result.stderr
    result = run_in(venv, ["deepfake-detector", "scan", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in ("--output", "--model", "--threshold", "--heatmaps", "--format"):
        assert flag in result.stdout


def test_installed_command_scans_a_photo(venv, faces_dir, model_dir, tmp_path):
    # The project's own dependencies (the pinned ones) are made visible to the fresh venv instead of downloading 2 GB;
    # the package itself still comes from the wheel.
    site_packages = Path(sysconfig.get_paths()["purelib"])
    assert not (site_packages / "deepfake_detector").exists()
    (target,) = (venv / "lib").glob("python*/site-packages")
    (target / "project-dependencies.pth").write_text(str(site_packages) + "\n")
    python = str(venv / "bin" / "python")
    where = run_in(venv, [python, "-c", "import deepfake_detector; print(deepfake_detector.__file__)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv), where

    photo = faces_dir / "real/ffhq/bhunakit_r0.png"
    result = run_in(venv, ["deepfake-detector", "scan", str(photo), "--model", str(model_dir), "--output", "out.csv", "--no_progress"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = csv.DictReader((tmp_path / "out.csv").open())
    assert row["file"] == str(photo) and row["face_found"] == "true" and 0.0 <= float(row["fake_probability"]) <= 1.0
    # Without --model the command loads the default model the wheel carries, not a checkout's (tests/test_wheel.py
    # scans with it); here only where it resolves, which needs no model load.
    where = run_in(venv, [python, "-c", "from deepfake_detector.model import default_model_dir; print(default_model_dir(required=True))"], tmp_path)
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(venv), where
