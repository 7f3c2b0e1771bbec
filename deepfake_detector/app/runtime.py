"""What one app process holds: its private upload folder and ledger, and the detector it serves.

Import this before gradio: Gradio components capture GRADIO_TEMP_DIR when they are built, so this module gives the
process a locked folder of its own (under the host's GRADIO_TEMP_DIR or the system temp folder) and points
GRADIO_TEMP_DIR at it. That is the one write at import time; the folder is removed at exit.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
from pathlib import Path

from deepfake_detector import uploads

_UPLOAD_ROOT = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "deepfake-detector-uploads")
UPLOAD_FOLDER = uploads.process_folder(_UPLOAD_ROOT)
os.environ["GRADIO_TEMP_DIR"] = str(UPLOAD_FOLDER)
atexit.register(uploads.remove_folder, UPLOAD_FOLDER)

import gradio as gr  # noqa: E402

from deepfake_detector.model import DEFAULT_MODEL_DIR, Detector, load_detector  # noqa: E402
from deepfake_detector.uploads import UNCLAIMED_TTL_S, UploadLedger  # noqa: E402

# Requests analysed at once. Each gets cpu_count // CONCURRENCY torch threads (TORCH_THREADS overrides): on a 2-core
# machine two requests with torch's default two threads each oversubscribe the CPU (benchmarks/load.json: 7.5 -> 8.4
# requests/s with one thread each, single-client p50 225 -> 205 ms).
CONCURRENCY = 2

log = logging.getLogger("deepfake_detector.app")
# UPLOAD_TTL_S: how long an upload that no request reads may stay (default UNCLAIMED_TTL_S); stalled partial uploads
# are dropped after at most the same time.
TTL_S = float(os.environ.get("UPLOAD_TTL_S") or UNCLAIMED_TTL_S)
LEDGER = UploadLedger(UPLOAD_FOLDER, ttl=TTL_S, stalled=min(uploads.STALLED_UPLOAD_S, TTL_S))

_detector: Detector | None = None
_model_id = os.environ.get("MODEL_ID") or str(DEFAULT_MODEL_DIR)


def load_model(model_id: str) -> Detector:
    """Load the detector the app serves; the server exits with the reason if this raises."""
    global _detector, _model_id
    _detector = load_detector(model_id)
    _model_id = str(model_id)
    return _detector


def get_detector() -> Detector:
    if _detector is None:  # only when `demo` is launched without app.py's main()
        raise gr.Error("The detector model is not loaded; start the app with `python app.py`.")
    return _detector


def model_id() -> str:
    """The model the app serves, or will serve: --model, else MODEL_ID, else the bundled default."""
    return _model_id
