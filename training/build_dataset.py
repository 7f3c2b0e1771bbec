"""Build the labelled real/fake face dataset and publish it with `datasets`.

    python -m training.build_dataset --source ../shared/data/faces --output data/faces-dataset [--seed 0]
    # the corpus grew: keep every earlier file in its split, deal only the new ones
    python -m training.build_dataset --source ../shared/data/faces --output data/faces-dataset-v2 --seed 0 \
        --keep_splits_of data/faces-dataset
    python -m training.build_dataset --source 0-CelebA.zip --source 1-STARGAN.zip ... --output DIR \
        --push_to_hub --hub_dataset_id ORG/NAME

`photo_*` sources (whole photos of people) go through the app's face detection and cropping (`detect_faces` +
`crop_face` at `FACE_CROP_SCALE`, the calls `deepfake_detector.predict.predict` makes): one row per face, holding the
square crop the model sees at inference (lossless PNG), grouped by the person named in the file name.

Output: DIR/arrow (`save_to_disk`), DIR/data/*.parquet + DIR/README.md (the layout `push_to_hub` uploads, the
rendered dataset card), DIR/report.md and DIR/report.json (counts per split x label x source, skipped files and
duplicates). Splits are 80/10/10, stratified by label and source, grouped so that one person or latent never
sits in two splits, deterministic for a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from deepfake_detector.images import ImageError, image_info, load_rgb_array
from deepfake_detector.model import LABEL_NAMES
from training.sources import SourceFile, generator_family, group_key, is_photo_source, iter_source_files

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MAX_SHARD_BYTES = 400 * 1024 * 1024
# The most faces `predict()` classifies in one photo (its `max_faces` default): a photo gives at most this many rows.
MAX_FACES_PER_PHOTO = 20


@dataclass
class BuildReport:
    counts: dict = field(default_factory=dict)  # split -> label -> source -> n
    skipped: list = field(default_factory=list)  # {path, reason}
    duplicates: list = field(default_factory=list)  # {path, duplicate_of}
    resolutions: dict = field(default_factory=dict)  # source -> "WxH" -> n
    formats: dict = field(default_factory=dict)  # source -> format -> n
    photos: dict = field(default_factory=dict)  # photo_* source -> {"photos", "faces", "no_face", "people", "max_faces"}
    kept_splits: dict = field(default_factory=dict)  # {"previous": build, "rows": rows matched, "previous_rows": n}

    def to_markdown(self) -> str:
        lines = ["| split | label | source | images |", "|---|---|---|---:|"]
        for split in SPLITS:
            for label in LABEL_NAMES:
                for source, n in sorted(self.counts.get(split, {}).get(label, {}).items()):
                    lines.append(f"| {split} | {label} | {source} | {n} |")
        totals = {split: sum(sum(s.values()) for s in self.counts.get(split, {}).values()) for split in SPLITS}
        lines.append("")
        lines.append("Totals: " + ", ".join(f"{split} {n}" for split, n in totals.items()))
        lines.append(f"Skipped files: {len(self.skipped)}; exact duplicates dropped: {len(self.duplicates)}")
        if self.kept_splits:
            lines.append(
                f"Splits kept from `{self.kept_splits['previous']}`: {self.kept_splits['rows']} rows "
                f"(of its {self.kept_splits['previous_rows']}); the other rows were dealt anew"
            )
        for source, stats in sorted(self.photos.items()):
            lines.append(
                f"- {source}: {stats['photos']} photos of {stats['people']} people -> {stats['faces']} face rows "
                f"({stats['no_face']} photos without a face kept whole; at most {stats['max_faces']} faces in one photo)"
            )
        for item in self.skipped:
            lines.append(f"- skipped `{item['path']}`: {item['reason']}")
        for item in self.duplicates[:50]:
            lines.append(f"- duplicate `{item['path']}` of `{item['duplicate_of']}`")
        return "\n".join(lines)


def inspect_file(file: SourceFile, detect: bool = True) -> list[dict]:
    """Read, hash and fully decode one file; find its faces. Returns its rows (one per face for a `photo_*` source,
    else one) or [{"error": reason}]."""
    try:
        data = file.read()
    except OSError as error:
        return [{"path": file.path, "error": f"cannot read: {error}"}]
    try:
        width, height, fmt = image_info(data)
        pixels = load_rgb_array(data)  # decodes every pixel: catches truncated files
    except ImageError as error:
        return [{"path": file.path, "error": str(error)}]
    record = {
        "image": {"bytes": data, "path": Path(file.path).name},
        "label": file.label,
        "source": file.source,
        "family": generator_family(file.label, file.source),
        "group": group_key(file),
        "sha256": hashlib.sha256(data).hexdigest(),
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "format": fmt,
        "path": file.path,
        "origin_repo": file.origin_repo,
        "license_note": file.license_note,
        "face_box": [],
        "landmarks": [],
        "face_index": -1,
        "crop_box": [],
    }
    if is_photo_source(file.source) or file.per_face:
        return photo_face_rows(record, pixels)
    if detect:
        from deepfake_detector.faces import detect_faces

        faces = detect_faces(pixels)
        if faces:
            record["face_box"] = list(faces[0].box)
            record["landmarks"] = [coordinate for point in faces[0].landmarks for coordinate in point]
    return [record]


def photo_face_rows(record: dict, pixels) -> list[dict]:
    """One row per face of a whole photo, cropped exactly as `predict()` crops it; the row's image is that crop
    (PNG, so the only compression the model sees is the canonical face's), its `face_box`/`landmarks` are in the
    crop's pixels, `crop_box` is the square in the photo and `face_index` the face's rank (largest first). A photo in
    which no face is found gives one row, the whole photo (face_index -1), as `predict()` then classifies the whole
    image."""
    import cv2

    from deepfake_detector.faces import FACE_CROP_SCALE, crop_box, crop_face, detect_faces

    faces = detect_faces(pixels)[:MAX_FACES_PER_PHOTO]
    rows = []
    for index, face in enumerate(faces):
        x0, y0, x1, y1 = crop_box(face.box, pixels.shape, FACE_CROP_SCALE)
        crop = crop_face(pixels, face.box, FACE_CROP_SCALE)  # (side, side, 3) RGB
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"PNG encoding of face {index} of {record['path']} failed")
        data = encoded.tobytes()
        x, y, w, h = face.box
        rows.append(
            record
            | {
                "image": {"bytes": data, "path": f"{Path(record['path']).stem}_face{index}.png"},
                "sha256": hashlib.sha256(data).hexdigest(),
                "width": crop.shape[1],
                "height": crop.shape[0],
                "format": "PNG",
                "path": f"{record['path']}#face={index}",
                "face_box": [x - x0, y - y0, w, h],
                "landmarks": [c - offset for point in face.landmarks for c, offset in zip(point, (x0, y0))],
                "face_index": index,
                "crop_box": [x0, y0, x1, y1],
            }
        )
    return rows or [record]


def cap_per_source(files: list[SourceFile], cap: int, seed: int = 0) -> list[SourceFile]:
    """At most `cap` files of each (label, source), drawn with a generator seeded by `seed`, in their listed order:
    the same files for the same corpus and seed, whatever the machine."""
    by_source = defaultdict(list)
    for index, file in enumerate(files):
        by_source[(file.label, file.source)].append(index)
    rng = random.Random(seed)
    keep = set()
    for key in sorted(by_source):
        indices = by_source[key]
        keep.update(indices if len(indices) <= cap else rng.sample(indices, cap))
    return [file for index, file in enumerate(files) if index in keep]


def _inspect(args: tuple[SourceFile, bool]) -> list[dict]:
    return inspect_file(*args)


def collect(sources: list[str], detect: bool = True, num_proc: int = 2, per_face_sources: list[str] = (),
            max_per_source: int = 0, seed: int = 0) -> tuple[list[dict], BuildReport]:
    """Inspect every file of every source; drop unreadable files and exact duplicates (the first copy stays).
    `per_face_sources`: folders of whole pictures, one row per detected face (`iter_source_files(per_face=True)`);
    `max_per_source`: at most this many files of each (label, source), a seeded sample (0: all)."""
    files = [file for source in sources for file in iter_source_files(source)]
    files += [file for source in per_face_sources for file in iter_source_files(source, per_face=True)]
    if max_per_source:
        files = cap_per_source(files, max_per_source, seed)
    report = BuildReport()
    records, seen = [], {}
    jobs = [(file, detect) for file in files]
    if num_proc > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(max_workers=num_proc) as pool:
            results = list(tqdm(pool.map(_inspect, jobs, chunksize=64), total=len(jobs), desc="Reading images", unit="img"))
    else:
        results = [_inspect(job) for job in tqdm(jobs, desc="Reading images", unit="img")]
    for rows in results:
        first = rows[0]
        if "error" in first:
            report.skipped.append({"path": first["path"], "reason": first["error"]})
            continue
        if first["file_sha256"] in seen:  # duplicates are files: a photo's face rows stay or go together
            report.duplicates.append({"path": first["path"].split("#face=")[0], "duplicate_of": seen[first["file_sha256"]]})
            continue
        seen[first["file_sha256"]] = first["path"].split("#face=")[0]
        records.extend(rows)
    return records, report


def assign_splits(
    records: list[dict], seed: int = 0, fractions: tuple[float, ...] = SPLIT_FRACTIONS, previous: dict[str, str] | None = None
) -> list[str]:
    """A split name per record: whole groups move together; groups are dealt per stratum (their label x source
    mix) so that each stratum is split close to `fractions`. Deterministic for `seed` and independent of order.

    `previous` (`previous_splits` of an earlier build): a group with a file in it, or of the same name, keeps that split, so a
    model trained on the earlier build's train split never meets those files in this build's validation or test
    (the dealing of the shared seed otherwise moves old groups whenever a source is added). Only the other groups
    are dealt."""
    members = defaultdict(list)
    for index, record in enumerate(records):
        members[record["group"]].append(index)
    split_of = [""] * len(records)
    if previous:
        for group, indices in list(members.items()):
            earlier = Counter(previous[f"sha256:{records[i]['file_sha256']}"] for i in indices if f"sha256:{records[i]['file_sha256']}" in previous)
            if f"group:{group}" in previous:
                earlier[previous[f"group:{group}"]] += len(indices)
            if earlier:
                # the earlier build was grouped too; if groups were redefined since, the most common split wins
                # (ties: the earlier split listed first in SPLITS, train before validation before test)
                kept = max(SPLITS, key=lambda split: (earlier[split], -SPLITS.index(split)))
                for index in indices:
                    split_of[index] = kept
                del members[group]
    strata = defaultdict(list)
    for group, indices in members.items():
        # a whole repository is one group of many sources: repositories are dealt among themselves, per label
        if group.startswith("repo:"):
            stratum = tuple(sorted({("repository", records[i]["label"]) for i in indices}))
        else:
            stratum = tuple(sorted({(records[i]["label"], records[i]["source"]) for i in indices}))
        strata[stratum].append(group)
    rng = random.Random(seed)
    for stratum in sorted(strata):
        groups = sorted(strata[stratum])
        rng.shuffle(groups)
        total = sum(len(members[g]) for g in groups)
        targets = [fraction * total for fraction in fractions]
        filled = [0.0] * len(fractions)
        for group in groups:
            # the split furthest below its target takes the group (train first on ties)
            choice = max(range(len(fractions)), key=lambda k: (targets[k] - filled[k]) / max(targets[k], 1e-9))
            filled[choice] += len(members[group])
            for index in members[group]:
                split_of[index] = SPLITS[choice]
    return split_of


def previous_splits(path: str) -> dict[str, str]:
    """{"sha256:<hash>": split, "group:<group>": split} of an earlier build (its folder or Hub id)."""
    from training.data import load_built_dataset

    dataset = load_built_dataset(path)
    splits = {}
    for split in SPLITS:
        if split in dataset:
            splits |= {f"group:{group}": split for group in dataset[split]["group"]}
            splits |= {f"sha256:{sha}": split for sha in dataset[split]["sha256"]}
    return splits


def build_dataset_dict(records: list[dict], split_of: list[str]):
    import datasets

    by_split = {split: [r for r, s in zip(records, split_of) if s == split] for split in SPLITS}
    schema = row_features()
    columns = list(schema.keys())
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns}, features=schema)
            for split, rows in by_split.items()
        }
    )


def row_features():
    """`training.data.features()` plus where a photo's face row came from: `face_index` (rank of the face in its
    photo, largest first; -1 for a row that is a whole file) and `crop_box` (x0, y0, x1, y1 of the crop in the
    photo; empty for whole files)."""
    import datasets

    from training.data import features

    schema = features()
    schema["face_index"] = datasets.Value("int32")
    schema["crop_box"] = datasets.Sequence(datasets.Value("int32"))
    return schema


def summarize(records: list[dict], split_of: list[str], report: BuildReport) -> BuildReport:
    counts = defaultdict(lambda: defaultdict(Counter))
    resolutions, formats = defaultdict(Counter), defaultdict(Counter)
    for record, split in zip(records, split_of):
        counts[split][record["label"]][record["source"]] += 1
        resolutions[f"{record['label']}/{record['source']}"][f"{record['width']}x{record['height']}"] += 1
        formats[f"{record['label']}/{record['source']}"][record["format"]] += 1
    report.counts = {s: {l: dict(c) for l, c in labels.items()} for s, labels in counts.items()}
    report.resolutions = {k: dict(v) for k, v in resolutions.items()}
    report.formats = {k: dict(v) for k, v in formats.items()}
    photos = defaultdict(lambda: {"files": Counter(), "people": set(), "no_face": 0})
    for record in records:
        if is_photo_source(record["source"]):
            stats = photos[record["source"]]
            stats["files"][record["file_sha256"]] += 1
            stats["people"].add(record["group"])
            stats["no_face"] += record["face_index"] < 0
    report.photos = {
        source: {
            "photos": len(stats["files"]),
            "faces": sum(stats["files"].values()) - stats["no_face"],
            "no_face": stats["no_face"],
            "people": len(stats["people"]),
            "max_faces": max(stats["files"].values()),
        }
        for source, stats in photos.items()
    }
    return report


def write_parquet(dataset_dict, output: Path) -> None:
    """`data/<split>-XXXXX-of-YYYYY.parquet`: the file layout `DatasetDict.push_to_hub` writes on the Hub."""
    data_dir = output / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob("*.parquet"):
        old.unlink()
    for split, dataset in dataset_dict.items():
        n_shards = max(1, -(-dataset.data.nbytes // MAX_SHARD_BYTES))
        for index in range(n_shards):
            shard = dataset.shard(num_shards=n_shards, index=index, contiguous=True)
            shard.to_parquet(str(data_dir / f"{split}-{index:05d}-of-{n_shards:05d}.parquet"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", default=[], help="a <label>/<source>/ folder or an ICIAP zip; repeatable")
    parser.add_argument("--per_face_source", action="append", default=[],
                        help="a <label>/<source>/ folder of whole pictures (generated scenes, everyday photos; e.g. ../shared/data/extra): "
                        "one row per detected face, as for photo_* sources, each origin repository one group; repeatable")
    parser.add_argument("--output", "--output_dir", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_detect_faces", action="store_true", help="skip the face/landmark pass on face crops (faster; no blackout augmentation); photo_* sources are always detected, their rows are faces")
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument("--max_per_source", type=int, default=0,
                        help="at most N files of each label x source, a sample seeded by --seed (0: every file); the "
                        "large GAN sources are thousands of near-duplicates, the thin modern ones a few dozen")
    parser.add_argument(
        "--keep_splits_of",
        help="an earlier build: files found in it keep their split (with their groups), so models trained on it stay "
        "honest on this build's test split; only new files are dealt",
    )
    parser.add_argument("--push_to_hub", action="store_true")
    parser.add_argument("--hub_dataset_id", help="ORG/NAME on the Hugging Face Hub")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args(argv)
    if not args.source and not args.per_face_source:
        parser.error("give at least one --source (or --per_face_source)")
    if args.push_to_hub and not args.hub_dataset_id:
        parser.error("--push_to_hub needs --hub_dataset_id ORG/NAME")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from training.dataset_card import render_dataset_card

    output = Path(args.output)
    try:
        records, report = collect(args.source, detect=not args.no_detect_faces, num_proc=args.num_proc, per_face_sources=args.per_face_source,
                                  max_per_source=args.max_per_source, seed=args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not records:
        print("error: no readable images found in the given sources", file=sys.stderr)
        return 2
    previous = previous_splits(args.keep_splits_of) if args.keep_splits_of else None
    split_of = assign_splits(records, seed=args.seed, previous=previous)
    if previous is not None:
        report.kept_splits = {
            "previous": args.keep_splits_of,
            "rows": sum(f"sha256:{record['file_sha256']}" in previous or f"group:{record['group']}" in previous for record in records),
            "previous_rows": sum(key.startswith("sha256:") for key in previous),
        }
    summarize(records, split_of, report)
    dataset_dict = build_dataset_dict(records, split_of)
    output.mkdir(parents=True, exist_ok=True)
    dataset_dict.save_to_disk(str(output / "arrow"))
    write_parquet(dataset_dict, output)
    card = render_dataset_card(report, seed=args.seed, sources=args.source + args.per_face_source)
    (output / "README.md").write_text(card)
    (output / "report.md").write_text(report.to_markdown() + "\n")
    (output / "report.json").write_text(json.dumps(report.__dict__, indent=2))
    print(report.to_markdown())
    if args.push_to_hub:
        from huggingface_hub import DatasetCard

        dataset_dict.push_to_hub(args.hub_dataset_id, private=args.private)
        DatasetCard(card).push_to_hub(args.hub_dataset_id)
        print(f"Pushed to https://huggingface.co/datasets/{args.hub_dataset_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
