"""research.app_faces: training rows framed as predict() frames them, processed reproducibly, cached safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_MODEL, needs_corpus

from research import app_faces


def corpus_rows(faces_dir, count: int = 3, folder: str = "fake/sd21") -> list[bytes]:
    """The first files of a corpus source (SD 2.1: 768-px portraits, where the app's square is smaller than the file)."""
    return [path.read_bytes() for path in sorted((faces_dir / folder).iterdir())[:count]]


def rows_dataset(images: list[bytes], face_index: list[int]):
    import hashlib

    import datasets

    return datasets.Dataset.from_dict({
        "image": [{"bytes": data, "path": None} for data in images],
        "face_index": face_index,
        "sha256": [hashlib.sha256(data).hexdigest() for data in images],
    })


@needs_corpus
def test_a_row_is_framed_as_predict_frames_it(faces_dir):
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict
    from deepfake_detector.preprocess import canonicalize

    detector = load_detector(BUNDLED_MODEL)
    for data in corpus_rows(faces_dir, 2):
        image = load_rgb_array(data)
        crop = predict(image, detector).faces[0].crop
        assert crop.shape[0] < image.shape[0]  # the detector's square, not the whole file
        np.testing.assert_array_equal(app_faces.app_face(image), canonicalize(crop))


@needs_corpus
def test_build_frames_whole_files_and_keeps_photo_faces_as_they_are(faces_dir, tmp_path):
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.preprocess import canonicalize

    images = corpus_rows(faces_dir, 2)
    faces = app_faces.build(rows_dataset(images, [-1, 0]), tmp_path, "train")
    assert faces.shape == (2, 128, 128, 3) and faces.dtype == np.uint8
    np.testing.assert_array_equal(faces[0], app_faces.app_face(load_rgb_array(images[0])))  # a whole file: located
    np.testing.assert_array_equal(faces[1], canonicalize(load_rgb_array(images[1])))  # a face cropped from a photo: as is
    assert not list(tmp_path.glob("*.partial.npy"))


@needs_corpus
def test_augmented_views_are_reproducible_processed_and_rebuilt_for_other_rows(faces_dir, tmp_path):
    images = corpus_rows(faces_dir, 3)
    dataset = rows_dataset(images, [-1, -1, -1])
    clean = np.array(app_faces.build(dataset, tmp_path / "a", "train"))
    first = np.array(app_faces.build(dataset, tmp_path / "a", "train", "augmented-1"))
    again = np.array(app_faces.build(dataset, tmp_path / "b", "train", "augmented-1"))
    other = np.array(app_faces.build(dataset, tmp_path / "b", "train", "augmented-2"))
    np.testing.assert_array_equal(first, again)  # seeded by the view's seed and the row
    assert not np.array_equal(first, clean) and not np.array_equal(first, other)
    fewer = app_faces.build(rows_dataset(images[:2], [-1, -1]), tmp_path / "a", "train", "augmented-1")
    assert len(fewer) == 2  # another set of rows: rebuilt, never the stale cache


def test_random_processing_draws_from_the_generator():
    image = np.random.default_rng(0).integers(0, 255, size=(96, 80, 3), dtype=np.uint8)
    outputs = [app_faces.random_processing(image, np.random.default_rng(seed)) for seed in range(40)]
    np.testing.assert_array_equal(outputs[3], app_faces.random_processing(image, np.random.default_rng(3)))
    assert len({(o.shape, o.tobytes()) for o in outputs}) > 30  # mirror x seven processings x their parameters
    assert all(o.dtype == np.uint8 and o.ndim == 3 for o in outputs)


def test_random_resave_is_a_light_reproducible_re_encoding():
    from deepfake_detector.images import load_rgb_array

    photo = load_rgb_array(Path(BUNDLED_MODEL).parent.parent.joinpath("docs", "screenshot-desktop.png").read_bytes())[:160, :200]
    outputs = [app_faces.random_resave(photo, np.random.default_rng(seed)) for seed in range(12)]
    np.testing.assert_array_equal(outputs[5], app_faces.random_resave(photo, np.random.default_rng(5)))
    assert all(o.shape == photo.shape and o.dtype == np.uint8 for o in outputs)
    changes = [np.abs(o.astype(int) - photo).mean() for o in outputs]
    assert min(changes) > 0 and max(changes) < 8  # re-encoded, not processed
    assert len({o.tobytes() for o in outputs}) > 8  # JPEG or WEBP at many qualities


@needs_corpus
def test_resaved_views_are_built_and_cached_beside_the_others(faces_dir, tmp_path):
    images = corpus_rows(faces_dir, 2)
    dataset = rows_dataset(images, [-1, -1])
    clean = np.array(app_faces.build(dataset, tmp_path, "train"))
    resaved = np.array(app_faces.build(dataset, tmp_path, "train", "resaved-1"))
    assert (tmp_path / "train.resaved-1.npy").is_file()
    assert not np.array_equal(resaved, clean) and np.abs(resaved.astype(int) - clean).mean() < 8
    np.testing.assert_array_equal(resaved, app_faces.build(dataset, tmp_path / "again", "train", "resaved-1"))


@pytest.mark.parametrize("view", ["augmented", "augmented-x", "noisy-1", "resaved", ""])
def test_unknown_views_are_refused(view):
    with pytest.raises(ValueError, match="view must be"):
        app_faces.parse_view(view)


def _folder_with(tmp_path, **values) -> Path:
    """A copy of the bundled model folder with `values` set in its config.json."""
    import json
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | values))
    return folder


def _folder_with_crop_scale(tmp_path, value) -> Path:
    """A copy of the bundled model folder whose config.json asks for `value` as its face_crop_scale."""
    return _folder_with(tmp_path, face_crop_scale=value)


@needs_corpus
def test_a_model_framed_wider_crops_uploads_and_training_rows_alike(faces_dir, tmp_path):
    """A folder's face_crop_scale decides predict()'s square, and app_faces frames rows at that scale exactly so."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict
    from deepfake_detector.preprocess import canonicalize

    data = min((faces_dir / "real/photo_facenet").iterdir()).read_bytes()  # a whole photo: room around the face
    image = load_rgb_array(data)
    default, wide = load_detector(BUNDLED_MODEL), load_detector(_folder_with_crop_scale(tmp_path, 1.9))
    assert wide.face_crop_scale == 1.9 and default.face_crop_scale == 1.45
    narrow_face, wide_face = predict(image, default).faces[0], predict(image, wide).faces[0]
    assert narrow_face.box == wide_face.box  # the same face found ...
    assert side(wide_face) == pytest.approx(side(narrow_face) * 1.9 / 1.45, abs=2)  # ... framed wider
    assert wide_face.crop.shape[:2] == (side(wide_face), side(wide_face))  # the crop is that square, nothing clipped
    np.testing.assert_array_equal(app_faces.app_face(image, 1.9), canonicalize(wide_face.crop))

    faces = app_faces.build(rows_dataset([data], [-1]), tmp_path / "cache", "train", crop_scale=1.9)
    np.testing.assert_array_equal(faces[0], canonicalize(wide_face.crop))
    default_faces = app_faces.build(rows_dataset([data], [-1]), tmp_path / "cache", "train")  # its own cache, not the wide one
    np.testing.assert_array_equal(default_faces[0], canonicalize(narrow_face.crop))
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.npy")) == ["train.clean.npy", "train.clean.x1.9.npy"]


def side(face) -> int:
    """The side of the square a face was cropped from, in the upload's pixels."""
    return face.crop_box[2] - face.crop_box[0]


@pytest.mark.parametrize("value", [0.5, 4.5, "wide", True, None])
def test_a_face_crop_scale_outside_the_range_is_refused(tmp_path, value):
    from deepfake_detector.model import load_detector

    with pytest.raises(ValueError, match="face_crop_scale"):
        load_detector(_folder_with_crop_scale(tmp_path, value))
    with pytest.raises(ValueError, match="face_crop_scale"):
        app_faces.build(rows_dataset([b"x"], [-1]), tmp_path / "cache", "train", crop_scale=value)


@needs_corpus
def test_a_folders_canonical_face_decides_what_predict_and_app_faces_feed_it(faces_dir, tmp_path):
    """config.json's canonical_size / canonical_jpeg_quality reach eval_tensor through the detector's data config, and
    app_faces builds training rows at the same canonical face (its own cache)."""
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict
    from deepfake_detector.preprocess import canonicalize, eval_tensor, to_model_tensor

    data = min((faces_dir / "real/photo_facenet").iterdir()).read_bytes()
    image = load_rgb_array(data)
    large = load_detector(_folder_with(tmp_path, canonical_size=224, canonical_jpeg_quality=90))
    assert (large.data_config["canonical_size"], large.data_config["canonical_jpeg_quality"]) == (224, 90)
    crop = predict(image, large).faces[0].crop
    expected = canonicalize(crop, 224, 90)
    assert expected.shape == (224, 224, 3)
    np.testing.assert_array_equal(eval_tensor(crop, large.data_config), to_model_tensor(expected, large.data_config))
    assert not np.array_equal(eval_tensor(crop, large.data_config), eval_tensor(crop, {**large.data_config, "canonical_size": 128, "canonical_jpeg_quality": 75}))
    faces = app_faces.build(rows_dataset([data], [-1]), tmp_path / "cache", "train", size=224, quality=90)
    np.testing.assert_array_equal(faces[0], expected)
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.npy")) == ["train.clean.c224q90.npy"]


@pytest.mark.parametrize("values", [{"canonical_size": 32}, {"canonical_size": "big"}, {"canonical_jpeg_quality": 101}, {"canonical_jpeg_quality": True}])
def test_a_canonical_face_outside_the_range_is_refused(tmp_path, values):
    from deepfake_detector.model import load_detector

    with pytest.raises(ValueError, match="canonical_"):
        load_detector(_folder_with(tmp_path, **values))
