"""training.clip_probe end to end on corpus faces with the real converted CLIP tower (cut to one layer to stay fast):
the folder loads like any model, its head computes the fitted probe, predict() and Grad-CAM run on it, the
hold-out results are written, and it is calibrated on validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_small_dataset, needs_corpus

from training import clip_probe, generalization


def test_set_head_makes_the_margin_the_probe_decision():
    import torch

    from training.depth_probe import fit_probe

    rng = np.random.default_rng(0)
    features = rng.normal(loc=3.0, scale=[0.5] * 4 + [4.0] * 4, size=(200, 8))
    labels = (features[:, 0] + features[:, 5] * 0.1 > 3.2).astype(int)
    probe = fit_probe(features, labels)
    head = torch.nn.Linear(8, 2)
    clip_probe.set_head(type("Model", (), {"head": head})(), probe)
    with torch.no_grad():
        logits = head(torch.from_numpy(features).float()).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], probe.decision_function(features), rtol=1e-4, atol=1e-4)


@needs_corpus
@pytest.mark.parametrize("pool", ["mean", "token"])
def test_clip_probe_end_to_end_on_corpus_faces(tmp_path_factory, tmp_path, clip_weights, pool):
    sources = (("real", "ffhq"), ("real", "celeba_stargan_input"), ("fake", "sd21"), ("fake", "stargan"))
    dataset_dir = build_small_dataset(tmp_path_factory, sources, 16, "--no_detect_faces")
    output = tmp_path / "clip-d1"
    argv = ["--dataset", str(dataset_dir), "--face_cache", str(tmp_path / "cache"), "--clip_weights", str(clip_weights),
            "--depth", "1", "--pool", pool, "--output_dir", str(output), "--holdout", "sd21"]
    assert clip_probe.main(argv) == 0
    from deepfake_detector.model import load_detector
    from deepfake_detector.predict import predict

    detector = load_detector(output)
    assert len(detector.net.blocks) == 1 and detector.data_config["input_size"] == (3, 128, 128)
    assert detector.config["calibration"] and 0.0 < detector.threshold < 1.0  # calibrated on validation
    recipe = json.loads((output / "training_config.json").read_text())
    assert recipe["recipe"] == "clip_probe" and recipe["depth"] == 1 and recipe["pool"] == pool
    assert detector.net.global_pool == {"mean": "avg", "token": "token"}[pool]
    (loso,) = json.loads((output / "loso.json").read_text())
    assert loso["holdout"] == "sd21" and 0.0 <= generalization.held_out_auc(loso) <= 1.0
    from deepfake_detector.images import load_rgb_array
    from training.data import load_built_dataset

    image = load_rgb_array(load_built_dataset(str(dataset_dir))["test"][0]["image"]["bytes"])
    result = predict(image, detector, explain=True)
    assert result.faces and 0.0 <= result.faces[0].fake_probability <= 1.0
    assert result.faces[0].heatmap is not None  # Grad-CAM through the transformer's tokens


def test_bad_depth_and_size_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="--depth"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", "x", "--depth", "13", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="16-px patch"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", "x", "--input_size", "120", "--output_dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="convert_clip"):
        clip_probe.main(["--dataset", "x", "--face_cache", "x", "--clip_weights", str(tmp_path / "none.safetensors"), "--output_dir", str(tmp_path)])
