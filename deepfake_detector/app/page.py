"""The page's fixed text (title, About tab) and its example photos."""

from __future__ import annotations

import os
from pathlib import Path

from deepfake_detector.model import LABEL_NAMES
from deepfake_detector.predict import MIN_FACE_SIDE
from deepfake_detector.uploads import MAX_UPLOAD_BYTES, PREVIEW_KEEP_S

TITLE = "Deepfake face detector"
INTRO = "# Deepfake face detector\nIs each face in a photo real or generated? Upload, paste or take a photo."

# NASA's public-domain portrait of astronaut Eileen Collins, as shipped with scikit-image (the API page's example).
EXAMPLE_PHOTO_URL = "https://raw.githubusercontent.com/scikit-image/scikit-image/main/skimage/data/astronaut.png"
# The examples under the upload box, in this order: a real photo, a generated face, a group photo. examples/README.md
# gives each one's origin, licence and what the shipped default model answers (tests/test_examples.py checks it).
# The other images in examples/ are test fixtures, not shown on the page.
EXAMPLES = ("grace-hopper.jpg", "omnigen-woman-with-book.jpg", "solvay-1927.jpg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


# The About tab's text; about() fills in the upload limits.
ABOUT = """
## What this is
Photos of faces can now be generated or edited by GANs so well that people cannot tell. This app estimates, for
**each face** in a photo, the probability that the face was produced by a generator rather than a camera, and
shows **where** in the face the model looked (Grad-CAM heatmap: where the evidence for *fake* came from in this
model, not a map of edited pixels).

## What it can do
* Find every face in an uploaded, pasted or webcam photo and give each its own verdict: **Real**, **Fake** or
  **Uncertain**. The default model says Fake or Real only when it is very sure, and never Real for a face unlike the
  faces it was trained on (an old black-and-white photo, say): **Uncertain is its most common answer**, with the
  probability beside it. A model may ask more of a Fake verdict than of a Real one (its Fake cut can sit above the
  Real cut's mirror image); *Advanced*, under the photo, gives both cuts.
* Recognise faces made by the generators it was trained on: **StarGAN**, **AttGAN** (attribute editing of real
  faces), **StyleGAN / StyleGAN2 / ThisPersonDoesNotExist**, **Stable Diffusion 2.1** and about forty modern
  variants (Stable Diffusion 1.5 fine-tunes, SDXL, Kolors, FLUX.1-based identity methods, DALL-E 2, OmniGen,
  Infinity, Kandinsky), against real CelebA, CelebA-HQ and FFHQ photos and faces from everyday photos of people.
* Read a photo that is on its side or upside down: each face is turned upright before it is judged.
* Say **No face** when it finds none, and **Too small** for a face narrower than {min_face} px: the model was
  trained on faces of a useful size and has nothing to say about cats, landscapes or distant crowds.

## What it cannot do
* It is **not proof**. A score is a statistical estimate from one model; it can be wrong in both directions,
  especially on generators it never saw (with each generator family held out of training it caught 18-47% of that
  family's faces; the model card has the table), face swaps, heavy compression, blur, filters, screenshots or very
  small faces.
* It is **not forensic or legal evidence** and must not be used to accuse anyone.
* It only looks at faces in still images: no video, audio or text.

## Privacy
Uploaded photos are **not stored**. Each upload gets a private file that only its own request can read; the
request reads it into memory and the file is **deleted when the request ends** (on this page **at most
{preview:.0f} seconds later**, so that your photo's preview can load). A photo that is uploaded but never analysed is
deleted after {ttl:.0f} seconds, and everything left when the server stops. Results are sent back inside the page;
nothing is logged. Files over {size:.0f} MB are refused.
"""


def about(ttl_s: float) -> str:
    """The About tab; `ttl_s`: how long an upload that no request reads may stay (runtime.TTL_S)."""
    return ABOUT.format(preview=PREVIEW_KEEP_S, ttl=ttl_s, size=MAX_UPLOAD_BYTES / 1e6, min_face=MIN_FACE_SIDE)


def example_files(folder: str | os.PathLike) -> list[str]:
    """The bundled examples in `folder`, plus two real and two fake images from DATASET_DIR/{real,fake} when it is set."""
    files = [str(Path(folder) / name) for name in EXAMPLES]
    dataset = os.environ.get("DATASET_DIR")
    if dataset:
        for label in LABEL_NAMES:
            found = sorted(p for p in (Path(dataset) / label).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            files += [str(p) for p in found[:2]]
    return files
