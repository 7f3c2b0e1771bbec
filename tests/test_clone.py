"""A plain clone without the dev corpus: the run says how many tests it skipped for want of it, and CI=true fails it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# One test that needs the corpus (it asks for faces_dir) and one that does not.
SELECTION = [
    "tests/test_scan.py::test_one_row_per_face_and_one_per_unreadable_file",
    "tests/test_scan.py::test_repair_cuts_only_a_half_written_line",
]


def run_pytest(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "CI"}  # CI only where a test sets it
    environment.update(DFD_CORPUS=str(tmp_path / "no-corpus-here"), **env)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION]
    return subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=300)


def test_missing_corpus_is_reported_loudly(tmp_path):
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "DEV CORPUS MISSING" in result.stdout
    assert f"1 of 2 tests were SKIPPED because the dev corpus is not at {tmp_path / 'no-corpus-here'}" in result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_missing_corpus_fails_under_ci(tmp_path):
    result = run_pytest(tmp_path, CI="true")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "CI=true: a run without the corpus FAILS" in result.stdout
