"""Serving the page: load the model, size the thread pools, start the upload sweeper, launch, stop on a signal."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

import gradio as gr
from starlette.middleware import Middleware

from deepfake_detector import uploads
from deepfake_detector.app.runtime import CONCURRENCY, LEDGER, UPLOAD_FOLDER, load_model
from deepfake_detector.headers import SecurityHeadersMiddleware
from deepfake_detector.model import Detector
from deepfake_detector.uploads import MAX_UPLOAD_BYTES


def serve(demo: gr.Blocks, model_id: str, configure: Callable[[Detector], None]) -> int:
    """Load the model (then `configure(detector)` fills in the page), serve `demo` until SIGTERM/SIGINT; returns the
    exit status: 2 with the reason on stderr if the model cannot be loaded, 0 after a signal."""
    try:
        detector = load_model(model_id)
    except Exception as error:  # noqa: BLE001 - any load failure stops the deployment with its reason
        print(f"error: the detector model could not be loaded from {model_id}: {error}", file=sys.stderr)
        print("Check MODEL_ID or --model (a folder written by training.train, or hf-hub:ORG/NAME).", file=sys.stderr)
        return 2
    configure(detector)
    import cv2
    import torch

    threads = int(os.environ.get("TORCH_THREADS") or max(1, (os.cpu_count() or 1) // CONCURRENCY))
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)  # OpenCV's own pool (resizes, JPEG round trip of the canonical face)
    uploads.install_gradio_hook(LEDGER)
    LEDGER.forget_hooks.append(demo.upload_file_set.discard)  # Gradio's own record of uploads would grow forever
    LEDGER.start_sweeper()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by Gradio itself.
    demo.launch(
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=False,
        prevent_thread_lock=True,
        app_kwargs={"middleware": [Middleware(SecurityHeadersMiddleware)]},
    )
    while not stop.wait(0.5):  # a timed wait, so the signal handler runs promptly
        pass
    demo.close()
    uploads.remove_folder(UPLOAD_FOLDER)
    return 0
