"""The Gradio app's content and handlers; the repository's `app.py` only lays out the page and wires it to these.

* `runtime`: this process's upload folder and ledger, and the detector it serves (import it before gradio);
* `handlers`: the browser page's and the API's endpoint functions, with their input checks;
* `render`: an analysed photo turned into the page's summary, annotated photo and face cards;
* `page`: the page's fixed text (title, About tab) and its example photos;
* `model_tab`: the Model tab, from the files in the model's folder;
* `server`: serving the page until SIGTERM/SIGINT.

Needs the `app` extra (gradio); the rest of deepfake_detector does not import this package.
"""
