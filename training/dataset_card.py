"""Render the dataset card (Hub YAML header + sections) from a build report: every count is computed, not typed."""

from __future__ import annotations

from collections import Counter

from deepfake_detector.faces import FACE_CROP_SCALE

SPLITS = ("train", "validation", "test")


def _size_category(n: int) -> str:
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "n>1M"


def _header(total: int) -> str:
    return f"""---
pretty_name: Real and GAN-generated faces (deepfake face detection, ICIAP 2022 setting)
license: other
license_name: celeba-ffhq-non-commercial-research
license_link: https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html
task_categories:
- image-classification
task_ids:
- multi-class-image-classification
tags:
- deepfake-detection
- gan-detection
- faces
size_categories:
- {_size_category(total)}
source_datasets:
- CelebA
- CelebA-HQ
- FFHQ
annotations_creators:
- machine-generated
language_creators:
- found
multilinguality:
- monolingual
language:
- en
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
  - split: validation
    path: data/validation-*
  - split: test
    path: data/test-*
---
"""


def render_dataset_card(report, seed: int = 0, sources: list[str] | None = None) -> str:
    """The card's markdown for a `training.build_dataset.BuildReport`."""
    per_source = Counter()
    per_split = Counter()
    for split, labels in report.counts.items():
        for label, sources_count in labels.items():
            for source, n in sources_count.items():
                per_source[(label, source)] += n
                per_split[(split, label)] += n
    total = sum(per_source.values())
    rows = []
    for (label, source), n in sorted(per_source.items()):
        key = f"{label}/{source}"
        res = ", ".join(f"{r} ({c})" for r, c in sorted(report.resolutions.get(key, {}).items(), key=lambda x: -x[1]))
        fmt = ", ".join(f"{f} ({c})" for f, c in sorted(report.formats.get(key, {}).items(), key=lambda x: -x[1]))
        split_counts = " / ".join(str(report.counts.get(s, {}).get(label, {}).get(source, 0)) for s in SPLITS)
        rows.append(f"| {label} | {source} | {n} | {split_counts} | {res} | {fmt} |")
    split_rows = [
        f"| {s} | {per_split[(s, 'real')]} | {per_split[(s, 'fake')]} | {per_split[(s, 'real')] + per_split[(s, 'fake')]} |" for s in SPLITS
    ]
    n_real = sum(n for (label, _), n in per_source.items() if label == "real")
    n_fake = total - n_real
    source_list = ", ".join(f"`{s}`" for s in (sources or []))
    photos = getattr(report, "photos", {}) or {}
    photo_rows = "\n".join(
        f"| {source} | {stats['photos']} | {stats['people']} | {stats['faces']} | {stats['no_face']} | {stats['max_faces']} |"
        for source, stats in sorted(photos.items())
    )
    has_sd21 = any(source == "sd21" for (_, source) in per_source)
    diffusion_confound = (
        "\n- **Diffusion (sd21):** one generator, one prompt template, 768-px JPEG, many children and studio-like lighting:"
        "\n  \"768-px JPEG = fake\" and \"studio portrait = fake\" are shortcuts; canonicalise and judge it per source."
        if has_sd21
        else ""
    )
    photo_confound = (
        f"\n- **Everyday photos:** only {sum(s['photos'] for s in photos.values())} photos of "
        f"{sum(s['people'] for s in photos.values())} people, so their test split holds a handful of faces; \"real\" is"
        "\n  inferred from their use as recognition/restoration inputs (promotional photos are likely retouched, the GFPGAN"
        "\n  inputs are degraded scans)."
        if photos
        else ""
    )
    kept = getattr(report, "kept_splits", {}) or {}
    kept_sentence = (
        f"\n**Splits carried over:** {kept['rows']} rows (every file of the earlier build `{kept['previous']}`, "
        f"{kept['previous_rows']} rows, and the groups they belong to) keep the split they had there, so a model trained on "
        "that build's train split meets none of its training faces in this build's validation or test split; only the "
        "rows new since then were dealt as above (`--keep_splits_of`)."
        if kept
        else ""
    )
    identity_sentence = (
        "The only names are those of the public figures in the `photo_*` photos, kept in `group` (`person:<name>`, from"
        "\nthe file name) because splits must keep each person in one split; no other identity labels are included."
        if photos
        else "No names or identity labels are included."
    )
    photo_section = (
        f"""
## Everyday photos (`photo_*`): one row per face

Whole photos of people (press, red-carpet, portrait and old scanned photos) are what visitors upload, so they enter
the dataset the way the app sees them: libfacedetection (yuface) finds the faces, each face is cropped to the square
`deepfake_detector.predict.predict` classifies (`crop_face`, {FACE_CROP_SCALE} x the detector box), and that crop is
the row's `image` (lossless PNG: the only compression the model then sees is the canonical face's JPEG q75).
`face_index` is the face's rank in its photo (largest first, as the app orders faces), `crop_box` the square in the
photo, `face_box` and `landmarks` are in the crop's pixels, `path` is `<file>#face=<index>`, `sha256` hashes the
crop (duplicates are dropped by the photo's own hash). All photos of one person, named in the file name, are one
group, so no person is in two splits. Every face the detector returns is kept, false detections included (the app
classifies them too).

| source | photos | people | face rows | photos without a face (kept whole) | most faces in one photo |
|---|---:|---:|---:|---:|---:|
{photo_rows}
"""
        if photos
        else ""
    )
    return _header(total) + f"""
# Real and GAN-generated faces

A labelled set of **{total}** face images (**{n_real} real**, **{n_fake} fake**) for training and testing deepfake face
detectors in the setting of the ICIAP 2022 Face Deepfake Detection Challenge: real faces from CelebA, CelebA-HQ and FFHQ;
fakes from StarGAN, AttGAN (attribute edits of CelebA faces), StyleGAN, StyleGAN2 (incl. thispersondoesnotexist.com) and
diffusion models where the sources include them (Stable Diffusion 1.5 and 2.1 faces); plus, where the sources include
`photo_*` folders, the faces of everyday photos of people (see *Everyday photos*). Every face-crop image keeps its
**original file bytes** (not re-encoded), so format and compression can be studied, and must be normalised by whoever
trains on it (see *Known confounds*).

**Licence: non-commercial research only.** CelebA, CelebA-HQ and FFHQ-derived images and the StyleGAN outputs are
distributed by their owners under non-commercial terms (CelebA agreement; FFHQ CC BY-NC-SA 4.0; NVIDIA Source Code
License-NC). Nothing here is cleared for commercial use; check the origin's terms (column `license_note`) before
republishing any image.

## Sources

| label | source | images | train / validation / test | resolution (count) | format (count) |
|---|---|---:|---|---|---|
{chr(10).join(rows)}

Built from {source_list or 'the sources given to the builder'}. Each row's origin repository, commit and path are kept
in the columns `origin_repo` and `license_note` (and in the corpus' MANIFEST.csv).

## Splits

| split | real | fake | total |
|---|---:|---:|---:|
{chr(10).join(split_rows)}

80/10/10, seed {seed}, stratified by label x source and **grouped**: all images of one person (a StarGAN grid row: one
CelebA input and its five edits; an AttGAN CelebA id: input, reconstruction and edits) or one latent (StyleGAN2 seeds
rendered at two truncations; a StyleGAN interpolation) fall in the same split. The 64 people shown by both the 128-px
and 256-px StarGAN grids form one group. Exact duplicates (same sha256) are kept once ({len(report.duplicates)} dropped);
unreadable files are skipped and listed in the build report ({len(report.skipped)} skipped).{kept_sentence}

{photo_section}
## Features

`image` (original bytes; for faces cut from whole photos, the crop), `label` (ClassLabel: real=0, fake=1), `source`, `family`
(the generator family a fake row is held out with in leave-one-family-out evaluation: `sd15`, `sd21`, `sdxl-kolors`, `flux`,
`dalle2`, `omnigen-infinity-kandinsky`, `gan`; `real` for real rows), `group` (leakage group), `sha256`, `width`,
`height`, `format`, `path`, `origin_repo`, `license_note`, `face_box` (x, y, w, h of the first face found by
libfacedetection/yuface, empty if none) and `landmarks` (its five points: eyes, nose tip, mouth corners), `face_index` and
`crop_box` (for the faces cut from whole photos; -1 and empty for every other row).

## How it was built

`python -m training.build_dataset --source <folder or ICIAP zip> ... --output DIR --seed {seed}` reads folders laid out
`<label>/<source>/<file>` (optionally with a MANIFEST.csv) and the challenge's zips (`0-*.zip` real, `1-*.zip` fake),
decodes every file fully (truncated and non-image files are skipped with their reason), hashes it, runs the face
detector, assigns groups and splits, and writes `save_to_disk` and Parquet shards with this card. `--per_face_source DIR`
(e.g. the rebuilt `../shared/data/extra`: whole generated pictures and everyday photos) keeps one row per detected face of
every file, and each origin repository is one group, dealt among the repositories of its label, so no repository's
images sit in two splits. `--max_per_source N` keeps a seeded sample of at most N files per label x source (the large
GAN sources are thousands of near-duplicates).

## Personal and sensitive information

These are photographs of real people (CelebA: celebrities; FFHQ: Flickr users) and synthetic faces that resemble real
people. {identity_sentence} Do not use this dataset to identify people, to infer sensitive
attributes, or for surveillance. Attribute edits (StarGAN/AttGAN) change hair colour, gender and age appearance.

## Known confounds

- **Format:** in the 128-px part every FFHQ real is PNG while every fake is JPEG q75; at 1024 px it is the other way
  round (CelebA-HQ reals JPEG, StyleGAN fakes PNG). A model can separate many sources by compression alone.
  Re-encode both classes alike (the project's training does: canonical 128-px JPEG plus random re-compression).
- **Resolution:** most images are 128 px; the high-resolution part (>= 512 px) is a few dozen images per class and
  identifies its origin.
- **Identity and domain:** StarGAN/AttGAN reals and fakes show the same people (good: identity is not a shortcut
  within those sources); the 1024-px reals are CelebA-HQ celebrities while the 1024-px fakes are FFHQ-trained StyleGANs.
- **Imbalance:** StarGAN dominates the fakes; sample or weight by source.{diffusion_confound}{photo_confound}

## What is missing against the ICIAP 2022 challenge

- **GDWCT**: no images (no public repository with committed GDWCT outputs was found).
- **StyleGAN (v1)**: only a handful of images; real FFHQ at high resolution: almost none.
- The challenge's processed test images (rotation, mirroring, blur, scaling, cropping, re-compression) are not stored;
  `training.evaluate --perturbations icip` applies the same operations at evaluation time.
"""
