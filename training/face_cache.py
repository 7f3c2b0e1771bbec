"""The canonical face of every row, decoded once: what makes long CPU training affordable.

Decoding a 1024-px PNG and shrinking it to the 128-px canonical face (`deepfake_detector.preprocess.canonicalize`)
costs more than a training step's augmentation on the canonical face itself, and the result is the same every epoch.
So each split is decoded once into `DIR/<split>.npy` (n, 128, 128, 3) uint8, memory-mapped afterwards, with the
build-time landmarks moved into the canonical face's pixels (for the facial-feature blackout) in
`DIR/<split>.landmarks.npy` (n, 5, 2), NaN where no face was found. `DIR/<split>.json` records the rows' sha256
digests, so a cache built from another dataset (or another split dealing) is rebuilt, never silently reused.

Training on the cache is the same pipeline as on the bytes: the `robust` preset's first step *is* the canonical face
(`training.transforms.robust_preset(canonical_input=True)` skips only that step), and a canonical face is what the
app feeds the model (`tests/test_face_cache.py` proves both).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from deepfake_detector.images import load_rgb_array
from deepfake_detector.preprocess import CANONICAL_SIZE, canonicalize


def rows_digest(split) -> str:
    """One digest of the split's rows, in order (their sha256 column)."""
    return hashlib.sha256("\n".join(split["sha256"]).encode()).hexdigest()


def canonical_landmarks(landmarks, width: int, height: int, size: int = CANONICAL_SIZE) -> np.ndarray:
    """Build-time landmarks (x1, y1, ... x5, y5 in the file's pixels) in the canonical face's pixels: (5, 2), NaN if
    there are none. Mirrors `canonicalize`: centred square crop, then a resize of the square to `size`."""
    points = np.asarray(landmarks if landmarks is not None else (), dtype=np.float32).reshape(-1, 2)
    if len(points) != 5:
        return np.full((5, 2), np.nan, dtype=np.float32)
    side = min(width, height)
    offset = np.array([(width - side) // 2, (height - side) // 2], dtype=np.float32)
    return (points - offset) * (size / side)


def cached_faces(split, cache_dir: Path, stem: str, columns: list[str], face_of, desc: str, meta: dict | None = None, before_meta=None,
                 size: int = CANONICAL_SIZE) -> np.ndarray:
    """`cache_dir/<stem>.npy`, (n, 128, 128, 3) uint8 with `face_of(index, row)` for every row of `split` (read through
    `columns`), built once and memory-mapped afterwards. `<stem>.json` records the rows' digest (and `meta`): a cache
    of other rows is rebuilt, never reused; a crash mid-build leaves only `<stem>.partial.npy`, never a half cache under
    the name. `before_meta()` runs once the faces are in place, before the digest that marks the cache complete."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    faces_path, meta_path, partial = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json", cache_dir / f"{stem}.partial.npy"
    digest = rows_digest(split)
    if meta_path.is_file() and json.loads(meta_path.read_text()).get("rows_digest") == digest:
        return np.load(faces_path, mmap_mode="r")
    faces = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(len(split), size, size, 3))
    for index, row in enumerate(tqdm(split.select_columns(columns), desc=desc, unit="img")):
        faces[index] = face_of(index, row)
    faces.flush()
    del faces
    partial.replace(faces_path)
    if before_meta:
        before_meta()
    meta_path.write_text(json.dumps({"rows_digest": digest, "rows": len(split), **(meta or {}), "size": size}, indent=2))
    return np.load(faces_path, mmap_mode="r")


def build(split, cache_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode and canonicalise every row of `split` into `cache_dir` (skipped if an up-to-date cache is there)."""
    landmarks_path = cache_dir / f"{name}.landmarks.npy"
    landmarks = np.empty((len(split), 5, 2), dtype=np.float32)

    def face_of(index: int, row: dict) -> np.ndarray:
        landmarks[index] = canonical_landmarks(row["landmarks"], row["width"], row["height"])
        return canonicalize(load_rgb_array(row["image"]["bytes"]))

    faces = cached_faces(split, cache_dir, name, ["image", "width", "height", "landmarks"], face_of, f"canonical faces ({name})",
                         before_meta=lambda: np.save(landmarks_path, landmarks))
    return faces, np.load(landmarks_path)


class CachedFaces(torch.utils.data.Dataset):
    """Rows of a cached split through an albumentations pipeline: {"pixel_values", "labels"} as `training.train` wants.

    `labels` are the whole split's; `rows` (default: all) the split rows this dataset serves, in order."""

    def __init__(self, faces: np.ndarray, landmarks: np.ndarray, labels: list[int], pipeline, rows=None):
        if not len(faces) == len(landmarks) == len(labels):
            raise ValueError(f"cache holds {len(faces)} faces for {len(labels)} rows")
        self.faces, self.landmarks, self.labels, self.pipeline = faces, landmarks, labels, pipeline
        self.rows = list(range(len(labels))) if rows is None else list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        points = self.landmarks[row]
        points = points if np.isfinite(points).all() else np.zeros((0, 2), dtype=np.float32)
        image = np.ascontiguousarray(self.faces[row])
        return {"pixel_values": self.pipeline(image=image, landmarks=points)["image"], "labels": int(self.labels[row])}
