"""The canonical-face cache trains on exactly what the app feeds the model, and is never reused stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from deepfake_detector.images import load_rgb_array
from deepfake_detector.preprocess import eval_tensor
from training import face_cache
from training.data import load_built_dataset
from training.transforms import make_preset

from conftest import build_small_dataset, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()
pytestmark = needs_corpus
DATA_CONFIG = {"input_size": (3, 128, 128), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    """Real files of three formats and sizes: 1024-px FFHQ PNG reals, 768-px SD 2.1 JPEGs, 128-px StarGAN JPEGs."""
    return build_small_dataset(tmp_path_factory, (("real", "ffhq"), ("fake", "sd21"), ("fake", "stargan")), 8)


def test_cached_face_through_the_eval_preset_is_the_apps_model_input(dataset_dir, tmp_path):
    split = load_built_dataset(dataset_dir)["train"]
    faces, _ = face_cache.build(split, tmp_path, "train")
    pipeline = make_preset("eval", DATA_CONFIG, canonical_input=True)
    assert len(set(split["format"])) == 2 and len({w for w in split["width"]}) >= 2  # PNG and JPEG, several sizes
    for index, row in enumerate(split):
        app_input = eval_tensor(load_rgb_array(row["image"]["bytes"]), DATA_CONFIG)
        cached = pipeline(image=np.ascontiguousarray(faces[index]))["image"]
        assert torch.allclose(cached, app_input, atol=1e-6)


def test_landmarks_follow_the_face_into_the_canonical_pixels():
    image = np.zeros((300, 200, 3), dtype=np.uint8)  # portrait: canonicalize keeps rows 50..250
    points = [(40.0, 90.0), (150.0, 90.0), (100.0, 150.0), (60.0, 200.0), (140.0, 200.0)]
    mapped = face_cache.canonical_landmarks([v for p in points for v in p], width=200, height=300)
    expected = (np.asarray(points) - [0, 50]) * (128 / 200)
    assert np.allclose(mapped, expected)
    # and the real canonicalize puts a mark drawn at a landmark where the mapped landmark says
    from deepfake_detector.preprocess import canonicalize

    x, y = (int(v) for v in points[2])
    image[y - 6 : y + 7, x - 6 : x + 7] = 255
    canonical = canonicalize(image)
    mx, my = (int(round(v)) for v in mapped[2])
    assert canonical[my, mx].mean() > 200 and canonical[my, mx + 10].mean() < 60
    assert np.isnan(face_cache.canonical_landmarks([], 200, 300)).all()


def test_a_cache_of_other_rows_is_rebuilt_not_reused(dataset_dir, tmp_path):
    split = load_built_dataset(dataset_dir)["train"]
    full, _ = face_cache.build(split, tmp_path, "train")
    subset, _ = face_cache.build(split.select(range(5)), tmp_path, "train")
    assert len(full) == len(split) and len(subset) == 5
    assert np.array_equal(np.asarray(subset), np.asarray(full[:5]))
    assert not list(tmp_path.glob("*.partial.npy"))


def test_cached_faces_serve_only_the_selected_rows(dataset_dir, tmp_path):
    split = load_built_dataset(dataset_dir)["train"]
    faces, landmarks = face_cache.build(split, tmp_path, "train")
    rows = [i for i, source in enumerate(split["source"]) if source != "sd21"]  # a leave-one-source-out selection
    data = face_cache.CachedFaces(faces, landmarks, split["label"], make_preset("robust", DATA_CONFIG, canonical_input=True), rows=rows)
    assert len(data) == len(rows)
    assert [data[i]["labels"] for i in range(len(data))] == [split["label"][r] for r in rows]
    assert data[0]["pixel_values"].shape == (3, 128, 128)


def test_training_from_the_cache_with_frozen_blocks_and_channels_last(dataset_dir, tmp_path):
    """One short real run: frozen stem + 2 blocks stay at their ImageNet start, the folder is saved (contiguous)."""
    weights = tmp_path / "init.safetensors"
    import timm
    from safetensors.torch import save_file

    init = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    save_file({k: v.contiguous() for k, v in init.state_dict().items()}, str(weights))
    output = tmp_path / "run"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_cpu_threads_per_process", "1",
        "-m", "training.train", "--dataset", str(dataset_dir), "--model", "tf_efficientnet_lite0", "--output_dir", str(output),
        "--pretrained_file", str(weights), "--face_cache", str(tmp_path / "cache"), "--freeze_blocks", "2", "--channels_last",
        "--test_time_flip", "--stop_after_training", "--epochs", "1", "--batch_size", "8", "--samples_per_epoch", "16", "--num_workers", "0",
        "--report_to", "none",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    before, after = init.state_dict(), load_file(str(output / "model.safetensors"))
    assert torch.equal(before["blocks.1.0.conv_pw.weight"], after["blocks.1.0.conv_pw.weight"])
    assert not torch.equal(before["blocks.5.0.conv_pw.weight"], after["blocks.5.0.conv_pw.weight"])
    assert (tmp_path / "cache" / "train.npy").is_file() and (tmp_path / "cache" / "validation.npy").is_file()
    assert not (output / "metrics.json").exists()  # --stop_after_training: no calibration, no test run
    assert json.loads((output / "config.json").read_text())["test_time_flip"] is True
