"""Deepfake face detector: a Gradio app (browser UI + named API) over `deepfake_detector.predict`.

This file is the page's layout and its wiring; what the page says and does lives in `deepfake_detector.app`
(text in `page`, endpoint functions in `handlers`, results in `render`, the Model tab in `model_tab`).

Run locally with `python app.py [--model FOLDER_OR_hf-hub:ORG/NAME]` (honours GRADIO_SERVER_NAME,
GRADIO_SERVER_PORT and MODEL_ID); a Hugging Face Space runs the same file unchanged. The model is loaded before the
server starts; if it cannot be, the process exits with status 2 and the reason.

Privacy (`deepfake_detector.uploads`): every upload gets a private path; a request reads its own upload into memory
and the file is deleted when the request ends (API) or PREVIEW_KEEP_S seconds later (the browser page, so that the
photo's preview can load). Unread uploads are deleted after UNCLAIMED_TTL_S, the upload folder at exit (SIGTERM
included), and folders left by killed processes at the next start. Result images travel back inside the page as data
URIs, so nothing derived from an upload is written to disk.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# First: gives this process its own upload folder and points GRADIO_TEMP_DIR at it before any component is built.
from deepfake_detector.app import runtime

import gradio as gr
from gradio_client import handle_file

from deepfake_detector.app import handlers, page, server
from deepfake_detector.app.model_tab import model_tab
from deepfake_detector.app.render import band_text
from deepfake_detector.model import Detector
from deepfake_detector.predict import UNCERTAIN_BAND

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
UI: dict[str, gr.components.Component] = {}  # the components configure() fills in before launch


def configure(detector: Detector) -> None:
    """Give the page the loaded model's values before launch: the slider's start (and reset) value, the band
    sentence and the Model tab, so that no page load waits for them."""
    threshold = round(detector.threshold, 2)
    UI["threshold"].value = threshold
    UI["band"].value = band_text(threshold, detector.band, detector.fake_band)
    UI["model_summary"].value, UI["model_plots"].value, UI["model_details"].value = model_tab(detector, runtime.model_id())


def build_demo() -> gr.Blocks:
    with gr.Blocks(title=page.TITLE) as demo:
        gr.Markdown(page.INTRO)
        with gr.Tabs():
            with gr.Tab("Detect", id="detect"):
                state = gr.State(None, time_to_live=900)  # a visitor's last analysis (~3 MB), dropped after 15 min
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        image = gr.Image(
                            label="Photo (JPEG, PNG, WebP, BMP, GIF)",
                            sources=["upload", "clipboard", "webcam"],
                            type="filepath",
                            image_mode=None,  # decoding is deepfake_detector.images' job, not Gradio's
                            elem_id="dfd-input",
                            height=320,
                        )
                        with gr.Accordion("Advanced", open=False, elem_id="dfd-advanced"):
                            threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Decision threshold", elem_id="dfd-threshold")
                            band = gr.Markdown(band_text(0.5, UNCERTAIN_BAND), elem_id="dfd-band")  # configure() sets the model's
                    with gr.Column(scale=2, min_width=300):
                        summary = gr.Markdown(elem_id="dfd-summary")
                        provenance = gr.HTML(elem_id="dfd-provenance")
                        photo = gr.HTML(elem_id="dfd-photo")
                        faces = gr.HTML(elem_id="dfd-faces")
                examples = page.example_files(EXAMPLES_DIR)
                if examples:
                    gr.Examples(examples=[[f] for f in examples], inputs=[image], label="Examples (see examples/README.md for their sources)")

                runtime.LEDGER.keep(image.keep_in_cache)  # the examples' cached copies: readable, never deleted
                outputs = [summary, provenance, photo, faces, state]
                # preprocess=False everywhere: handlers get raw values and check each one themselves; a file is read
                # only through the upload ledger, which opens nothing but uploads it issued.
                image.change(handlers.detect_ui, [image, threshold, state], outputs, preprocess=False, api_visibility="private")
                threshold.change(handlers.rethreshold_ui, [threshold, state], [summary, photo, faces, band], preprocess=False, api_visibility="private")

            with gr.Tab("About", id="about"):
                gr.Markdown(page.about(runtime.TTL_S))
            with gr.Tab("Model", id="model"):
                UI["model_summary"] = gr.Markdown(elem_id="dfd-model-summary")
                UI["model_plots"] = gr.HTML(elem_id="dfd-model-plots")
                with gr.Accordion("Full report and model card", open=False):
                    UI["model_details"] = gr.Markdown(elem_id="dfd-model-details")
        UI["threshold"], UI["band"] = threshold, band

        # Named API endpoints for gradio_client: hidden inputs, separate functions from the UI handlers.
        with gr.Group(visible=False):
            api_image = gr.File(label="image", type="filepath", file_types=["image"])
            api_images = gr.File(label="images", type="filepath", file_count="multiple", file_types=["image"])
            # The API page's example calls: a public-domain face photo instead of Gradio's placeholder PDF.
            api_image.example_payload = lambda: handle_file(page.EXAMPLE_PHOTO_URL)
            api_images.example_payload = lambda: [handle_file(page.EXAMPLE_PHOTO_URL)]
            api_threshold = gr.Number(label="threshold", value=None)
            api_overlay = gr.Checkbox(label="include_overlay", value=False)
            api_result = gr.JSON(label="result")
            api_results = gr.JSON(label="results")
            api_button = gr.Button()
            api_batch_button = gr.Button()
        api_button.click(handlers.predict_api, [api_image, api_threshold, api_overlay], api_result, api_name="predict", preprocess=False)
        api_batch_button.click(
            handlers.predict_batch_api, [api_images, api_threshold, api_overlay], api_results, api_name="predict_batch", preprocess=False
        )
    demo.queue(default_concurrency_limit=runtime.CONCURRENCY, max_size=64)
    return demo


demo = build_demo()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the deepfake face detector app.")
    parser.add_argument("--model", "--model_dir", help="model folder or hf-hub:ORG/NAME[@rev] (default: MODEL_ID or the bundled model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(server.serve(demo, args.model or runtime.model_id(), configure))


if __name__ == "__main__":
    main()
