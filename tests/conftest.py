"""Fixtures shared by the test modules: the dev corpus, a model folder and one live app per test session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The dev corpus of real and fake faces (read at run time, never copied into the repo)."""
    folder = (REPO_ROOT / ".." / "shared" / "data" / "faces").resolve()
    if not (folder / "real").is_dir():
        pytest.skip(f"dev corpus not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """DFD_TEST_MODEL if set, else the bundled DEFAULT_MODEL_DIR (committed, so missing means failing)."""
    from deepfake_detector.model import DEFAULT_MODEL_DIR

    candidates = [Path(os.environ["DFD_TEST_MODEL"])] if os.environ.get("DFD_TEST_MODEL") else []
    candidates.append(Path(DEFAULT_MODEL_DIR))
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder
    # The default model is committed: its absence is a broken checkout, not a reason to skip.
    pytest.fail(f"no model folder: the bundled {DEFAULT_MODEL_DIR} is missing (looked at {[str(c) for c in candidates]})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upload_files(folder: Path) -> set[Path]:
    """Non-empty files under a Gradio upload folder (Gradio also leaves empty multipart temp files: no data)."""
    return {p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0}


@pytest.fixture(scope="session")
def live_app(model_dir: Path, tmp_path_factory):
    """`python app.py` on a free localhost port with its own GRADIO_TEMP_DIR; yields a dict (url, temp_dir, baseline, files, log).

    baseline: the files in the upload folder once the app is up (Gradio's cached copies of the examples).
    """
    temp_dir = tmp_path_factory.mktemp("gradio-uploads")
    port = _free_port()
    env = {
        **os.environ,
        "MODEL_ID": str(model_dir),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    env.pop("DATASET_DIR", None)
    log = (tmp_path_factory.mktemp("app-log") / "app.log").open("w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not answer on {url} within 180 s; see {log.name}")
                time.sleep(1)
        yield {
            "url": url,
            "temp_dir": temp_dir,
            "baseline": upload_files(temp_dir),
            "files": lambda: upload_files(temp_dir),  # the folder's non-empty files now
            "log": log.name,
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
