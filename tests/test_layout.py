"""The Space only installs requirements.txt: the app and the shared package must import without training-only packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINING_ONLY = ("accelerate", "datasets", "evaluate", "albumentations", "transformers", "tensorboard", "training")


def test_app_imports_without_training_packages():
    code = (
        "import sys\n"
        f"for name in {TRAINING_ONLY!r}: sys.modules[name] = None  # importing any of them now fails\n"
        "import app, deepfake_detector.predict, deepfake_detector.cam, deepfake_detector.model\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_space_front_matter_is_valid():
    """README.md's YAML makes the repository a Gradio Space running app.py."""
    import yaml

    text = (REPO_ROOT / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    assert header["sdk"] == "gradio" and header["app_file"] == "app.py"
    assert (REPO_ROOT / header["app_file"]).is_file()
    assert "make test" in text and "make demo" in text


def test_app_requirements_are_pinned_and_lean():
    lines = [line.split("#")[0].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    packages = [line for line in lines if line]
    assert all("==" in line for line in packages)
    assert not {line.split("==")[0].lower() for line in packages} & {"accelerate", "datasets", "evaluate", "albumentations"}


def test_product_and_pipeline_never_import_research_code():
    """research/ holds screens and probes; deepfake_detector/, training/ and app.py must run without it."""
    import ast

    offenders = []
    for path in [REPO_ROOT / "app.py", *(REPO_ROOT / "deepfake_detector").rglob("*.py"), *(REPO_ROOT / "training").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO_ROOT)}: {name}" for name in names if name == "research" or name.startswith("research.")]
    assert not offenders, offenders


def test_the_import_graph_of_our_modules_has_no_cycles():
    """deepfake_detector, training, research and app import each other in one direction only (module- and
    function-level imports both count): a cycle means two modules that cannot be understood, or moved, apart."""
    from research.import_graph import cycles, import_graph

    graph = import_graph(REPO_ROOT)
    assert "training.train" in graph and "deepfake_detector.predict" in graph  # the graph sees the real modules
    assert not cycles(graph), cycles(graph)


def test_the_pipeline_reaches_no_research_module():
    """What training's entry points reach, at any depth, stays inside deepfake_detector/ and training/."""
    from research.import_graph import import_graph

    graph = import_graph(REPO_ROOT)
    roots = ["training.train", "training.build_dataset", "training.evaluate", "training.calibration", "training.model_card",
             "training.dataset_card", "training.hub"]
    reached, todo = set(), [root for root in roots if root in graph]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo += graph[module]
    assert not {module for module in reached if module.split(".")[0] not in ("training", "deepfake_detector")}


def test_reports_hold_results_not_scripts():
    """reports/ holds what was measured; the code that measured it lives in research/ (python -m research.NAME)."""
    scripts = sorted(path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "reports").rglob("*.py"))
    assert not scripts, f"move these to research/: {scripts}"
