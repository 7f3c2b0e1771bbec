"""The build step pyproject.toml cannot express: the wheel carries the default model.

The model's one source of truth is the repository's `models/<DEFAULT_MODEL_NAME>/` (tests, training and the app read
it there). Building the package (`pip install .`, `pip wheel .`, `python -m build`) copies that folder, `member/`
included, into `deepfake_detector/<BUNDLED_MODEL_SUBDIR>/` of the build, never of the working tree, so an installed
`deepfake-detector scan` finds it without a checkout (`deepfake_detector.model.default_model_dir`). Both names are
read from deepfake_detector/model.py, which cannot be imported here (it imports torch).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def model_constant(name: str) -> str:
    """The string constant `name` assigned at the top level of deepfake_detector/model.py."""
    tree = ast.parse((ROOT / "deepfake_detector" / "model.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"deepfake_detector/model.py assigns no {name}")


class build_py_with_model(build_py):
    """build_py, then a copy of the default model folder into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout's models/ folder itself
            return
        source = ROOT / "models" / model_constant("DEFAULT_MODEL_NAME")
        if not (source / "config.json").is_file():
            raise RuntimeError(f"the default model folder {source} is missing: the package cannot be built without it")
        target = Path(self.build_lib) / "deepfake_detector" / model_constant("BUNDLED_MODEL_SUBDIR")
        if target.exists():  # a stale copy from an earlier build
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*", "__pycache__"))


setup(cmdclass={"build_py": build_py_with_model})
