"""research.clip_probe end to end on corpus faces with the real converted CLIP tower (cut to one layer to stay fast):
the folder loads like any model, its head computes the fitted probe, predict() and Grad-CAM run on it, the
hold-out results are written, and it is calibrated on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_small_dataset, needs_corpus

from research import clip_probe, generalization


def test_set_head_makes_the_margin_the_probe_decision():
    import torch

    from research.depth_probe import fit_probe

    rng = np.random.default_rng(0)
    features = rng.normal(loc=3.0, scale=[0.5] * 4 + [4.0] * 4, size=(200, 8))
    labels = (features[:, 0] + features[:, 5] * 0.1 > 3.2).astype(int)
    probe = fit_probe(features, labels)
    head = torch.nn.Linear(8, 2)
    clip_probe.set_head(type("Model", (), {"head": head})(), probe)
    with torch.no_grad():
        logits = head(torch.from_numpy(features).float()).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], probe.decision_function(features), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def clip_dataset(tmp_path_factory):
    sources = (("real", "ffhq"), ("real", "celeba_stargan_input"), ("fake", "sd21"), ("fake", "stargan"))
    return build_small_dataset(tmp_path_factory, sources, 16, "--no_detect_faces")


# mean: the app's framing (wider than its default), one augmented view teaching two processing directions, the int8
# tower; token: the centred squares as they are, float; penalty: one re-saved view whose changes the head is penalised
# for reading (research.invariance_penalty), float.
RECIPES = {
    "penalty": ["--app_faces", "{tmp}/app-faces", "--augmented_views", "0", "--resaved_views", "1", "--invariance_penalty", "10",
                "--quantize", "none"],
    "mean": ["--app_faces", "{tmp}/app-faces", "--crop_scale", "1.6", "--augmented_views", "1", "--processing_directions", "2"],
    "token": ["--framing", "square", "--face_cache", "{tmp}/cache", "--augmented_views", "0", "--quantize", "none"],
}


@needs_corpus
@pytest.mark.parametrize("variant", ["mean", "token", "penalty"])
def test_clip_probe_end_to_end_on_corpus_faces(clip_dataset, tmp_path, clip_weights, variant):
    dataset_dir = clip_dataset
    output = tmp_path / "clip-d1"
    pool = "token" if variant == "token" else "mean"
    argv = ["--dataset", str(dataset_dir), "--clip_weights", str(clip_weights), "--depth", "1", "--input_size", "128",
            "--pool", pool, "--output_dir", str(output), "--holdout", "sd21", *(a.format(tmp=tmp_path) for a in RECIPES[variant])]
    assert clip_probe.main(argv) == 0
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict

    detector = load_detector(output)
    assert len(detector.net.blocks) == 1 and detector.data_config["input_size"] == (3, 128, 128)
    assert detector.config["calibration"] and 0.0 < detector.threshold < 1.0  # calibrated on validation
    recipe = json.loads((output / "training_config.json").read_text())
    assert recipe["recipe"] == "clip_probe" and recipe["depth"] == 1 and recipe["pool"] == pool
    train_rows = len(load_built_dataset_rows(dataset_dir))
    if variant == "penalty":  # the re-saved copies were not rows: the head was fitted on the clean rows, penalised
        assert recipe["invariance_penalty"] == 10 and recipe["resaved_views"] == 1
        assert recipe["train_rows_fitted"] == train_rows and detector.fast_net is None
        assert (tmp_path / "app-faces" / "train.resaved-1.npy").is_file()
    elif pool == "mean":  # the processed copies taught directions, the head was fitted on the clean rows; int8 tower
        assert recipe["framing"] == "app" and recipe["train_rows_fitted"] == train_rows and recipe["processing_directions"] == 2
        assert detector.config["quantization"] == "dynamic-int8" and detector.fast_net is not None
        # framed at 1.6 detector boxes, and the folder tells predict() to frame uploads so
        assert recipe["crop_scale"] == 1.6 and detector.face_crop_scale == 1.6
        assert (tmp_path / "app-faces" / "train.augmented-1.x1.6.npy").is_file()
        assert list((tmp_path / "app-faces" / "clip-features").glob("train.app-x1.6-clean.*.npy"))
    else:
        assert recipe["train_rows_fitted"] == train_rows and "quantization" not in detector.config and detector.fast_net is None
        assert detector.face_crop_scale == 1.45
    assert detector.net.global_pool == {"mean": "avg", "token": "token"}[pool]
    (loso,) = json.loads((output / "loso.json").read_text())
    assert loso["holdout"] == "sd21" and 0.0 <= generalization.held_out_auc(loso) <= 1.0
    from deepfake_detector.images import load_rgb_array
    from training.data import load_built_dataset

    image = load_rgb_array(load_built_dataset(str(dataset_dir))["test"][0]["image"]["bytes"])
    result = predict(image, detector, explain=True)
    assert result.faces and 0.0 <= result.faces[0].fake_probability <= 1.0
    assert result.faces[0].heatmap is not None  # Grad-CAM through the transformer's tokens


def load_built_dataset_rows(dataset_dir):
    from training.data import load_built_dataset

    return load_built_dataset(str(dataset_dir))["train"]


@needs_corpus
def test_a_shallower_tower_reuses_the_deeper_towers_cached_layers(clip_dataset, tmp_path, clip_weights):
    """--features_dir: the smoothed int8 tower cut after 2 layers caches both layers' mean tokens; a 1-layer run reads
    its features from there, and they are what the smoothed 1-layer int8 tower computes itself (a layer's smoothing
    depends only on the layers before it)."""
    from deepfake_detector.model import quantize_dynamic_int8
    from research import app_faces

    common = ["--dataset", str(clip_dataset), "--clip_weights", str(clip_weights), "--input_size", "128", "--app_faces",
              str(tmp_path / "faces"), "--augmented_views", "0", "--features_dir", str(tmp_path / "features"), "--no_calibration"]
    assert clip_probe.main(common + ["--depth", "2", "--output_dir", str(tmp_path / "d2")]) == 0
    cached = tmp_path / "features" / "test.app-clean.{}.128px.dynamic-int8-sq0.75.npy".format(clip_weights.stem)
    written = cached.stat().st_mtime_ns
    assert clip_probe.main(common + ["--depth", "1", "--output_dir", str(tmp_path / "d1")]) == 0
    assert cached.stat().st_mtime_ns == written and np.load(cached).shape[1] == 2  # read, not recomputed
    from research.smooth_quant import smooth

    faces = app_faces.build(load_built_dataset_rows(clip_dataset).select(range(4)), tmp_path / "few", "train")

    def smoothed_int8(depth: int):
        tower = clip_probe.build_tower(clip_weights, depth, 128)
        smooth(tower, faces[:2], clip_probe.tower_data_config(tower), alpha=0.75)
        return quantize_dynamic_int8(tower)

    own, deeper = (clip_probe.layer_means(smoothed_int8(depth), faces, batch_size=1) for depth in (1, 2))
    np.testing.assert_array_equal(own[:, 0], deeper[:, 0])


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--app_faces"):
        clip_probe.main(["--dataset", "x", "--clip_weights", __file__, "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--framing app"):
        clip_probe.main(["--dataset", "x", "--framing", "square", "--face_cache", "x", "--clip_weights", __file__, "--output_dir", str(tmp_path)])
    square = ["--dataset", "x", "--framing", "square", "--face_cache", "x", "--augmented_views", "0", "--clip_weights", __file__]
    with pytest.raises(SystemExit, match="--crop_scale needs --framing app"):
        clip_probe.main([*square, "--crop_scale", "1.8", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--invariance_penalty S needs"):
        clip_probe.main(["--dataset", "x", "--app_faces", "x", "--clip_weights", __file__, "--augmented_views", "0",
                         "--invariance_penalty", "10", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="not both"):
        clip_probe.main(["--dataset", "x", "--app_faces", "x", "--clip_weights", __file__, "--resaved_views", "1",
                         "--invariance_penalty", "10", "--processing_directions", "2", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--resaved_views needs --framing app"):
        clip_probe.main([*square, "--resaved_views", "1", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="--crop_scale must be from 1.0 to 4.0"):
        clip_probe.main(["--dataset", "x", "--app_faces", "x", "--clip_weights", __file__, "--crop_scale", "0.9", "--output_dir", str(tmp_path)])


def test_bad_depth_and_size_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--depth"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", "x", "--depth", "13", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="16-px patch"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", "x", "--input_size", "120", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="convert_clip"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", str(tmp_path / "none.safetensors"), "--output_dir", str(tmp_path)])
