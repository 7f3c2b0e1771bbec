"""Frozen-feature probes by depth: scored like the leave-one-source-out runs, and run end to end on corpus faces."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_small_dataset, needs_corpus
from datasets import Dataset, DatasetDict

from research import depth_probe, generalization

# (source, label, look) per row block: "look" is what a source's images share beyond real/fake (resolution, content).
ROWS = [("ffhq", 0, 1.0), ("celeba", 0, 0.0), ("stargan", 1, 0.0), ("tpdne", 1, 1.0)]


def _toy(per_source: int = 40) -> DatasetDict:
    splits = {}
    for split in depth_probe.SPLITS:
        rows = [(source, label) for source, label, _ in ROWS for _ in range(per_source)]
        splits[split] = Dataset.from_dict(
            {"source": [s for s, _ in rows], "label": [l for _, l in rows], "width": [128] * len(rows), "height": [128] * len(rows)}
        )
    return DatasetDict(splits)


def _features(dataset: DatasetDict, signal: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    looks = {source: look for source, _, look in ROWS}
    out = {}
    for split in depth_probe.SPLITS:
        labels = np.asarray(dataset[split]["label"], dtype=float)
        look = np.array([looks[s] for s in dataset[split]["source"]])
        columns = [labels] if signal == "label" else [look, labels * (look == 0)]  # "look": the label shows only in look 0
        out[split] = np.stack(columns + [rng.normal(size=len(labels))], 1) + 0.1 * rng.normal(size=(len(labels), len(columns) + 1))
    return out


def test_a_feature_that_carries_the_label_generalises_to_the_held_out_source():
    dataset = _toy()
    result = depth_probe.probe_holdout(_features(dataset, "label"), dataset, "tpdne", ["tpdne"])
    assert result["held_out_fake"] == 3 * 40 and result["held_out_real"] == 0
    assert result["held_out_roc_auc_vs_test_counterpart"] > 0.99
    assert result["in_distribution_roc_auc"] > 0.99


def test_a_feature_that_carries_only_the_look_fails_the_held_out_source():
    """Without tpdne, "look 1" is only ever real: the probe learns it, and the held-out fakes of look 1 rank as real
    as the test reals of look 1 (at best chance), while the sources it saw stay separable."""
    dataset = _toy()
    result = depth_probe.probe_holdout(_features(dataset, "look"), dataset, "tpdne", ["tpdne"])
    assert result["held_out_roc_auc_vs_test_counterpart"] < 0.6
    assert result["in_distribution_roc_auc"] > 0.9
    assert depth_probe.all_sources_auc(_features(dataset, "look"), dataset) > 0.8  # tpdne vs ffhq stays a coin flip


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    sources = (("real", "ffhq"), ("real", "celeba_stargan_input"), ("fake", "sd21"), ("fake", "stargan"))
    return build_small_dataset(tmp_path_factory, sources, 12, "--no_detect_faces")


def probe_argv(dataset_dir, tmp_path) -> list[str]:
    """depth_probe's arguments for the small corpus dataset, holding out SD 2.1 and FFHQ, writing under tmp_path."""
    return ["--dataset", str(dataset_dir), "--face_cache", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "probe"),
            "--holdout", "sd21", "--holdout", "ffhq"]


@needs_corpus
def test_depth_probe_end_to_end_on_corpus_faces(small_dataset, tmp_path):
    argv = probe_argv(small_dataset, tmp_path)
    assert depth_probe.main(argv) == 0
    report = json.loads((tmp_path / "probe" / "depth_probe.json").read_text())
    assert list(report["rows"]) == [f"block{i}" for i in range(7)] + ["head"]
    for results in report["rows"].values():
        assert [r["holdout"] for r in results] == ["sd21", "ffhq"]
        assert all(0.0 <= generalization.held_out_auc(r) <= 1.0 for r in results)
    from PIL import Image

    with Image.open(tmp_path / "probe" / "depth_probe.png") as plot:  # the plot people look at instead of the table
        assert plot.format == "PNG" and plot.width > 400
    table = (tmp_path / "probe" / "depth_probe.md").read_text()
    assert "| block3 |" in table and "| sd21 | ffhq |" in table
    saved = (tmp_path / "probe" / "train.npz").stat().st_mtime_ns
    assert depth_probe.main(argv) == 0  # the pooled features of the same rows are reused, not recomputed
    assert (tmp_path / "probe" / "train.npz").stat().st_mtime_ns == saved
    assert depth_probe.main(argv + ["--project_out", "look"]) == 0  # same features, the look projected out first
    assert (tmp_path / "probe" / "train.npz").stat().st_mtime_ns == saved
    projected = json.loads((tmp_path / "probe" / "depth_probe.json").read_text())
    assert projected["project_out"] == "look" and projected["rows"] != report["rows"]
    assert "('look' projected out)" in (tmp_path / "probe" / "depth_probe.md").read_text()
    before = np.load(tmp_path / "probe" / "train.npz")["block0"]
    assert depth_probe.main(argv + ["--canonical_size", "48"]) == 0  # other faces: the saved features are recomputed
    assert not np.allclose(np.load(tmp_path / "probe" / "train.npz")["block0"], before)
    assert "(faces shrunk to 48 px)" in (tmp_path / "probe" / "depth_probe.md").read_text()


@needs_corpus
def test_clip_probe_end_to_end_on_corpus_faces(small_dataset, tmp_path):
    from test_clip_features import tower

    argv = probe_argv(small_dataset, tmp_path)
    assert depth_probe.main(argv) == 0
    cnn_rows = len(np.load(tmp_path / "probe" / "train.npz")["block0"])
    # the same output folder, another backbone: the CNN's saved features must not be read as CLIP's
    assert depth_probe.main(argv + ["--clip_onnx", str(tower(tmp_path / "tower.onnx", layers=2))]) == 0
    report = json.loads((tmp_path / "probe" / "depth_probe.json").read_text())
    assert report["model"].startswith("CLIP") and list(report["rows"]) == ["layer0", "layer1", "cls_all"]
    saved = np.load(tmp_path / "probe" / "train.npz")
    assert "block0" not in saved and saved["layer0"].shape == (cnn_rows, 2 * 224)
    assert all(0.0 <= generalization.held_out_auc(r) <= 1.0 for results in report["rows"].values() for r in results)
    assert "| cls_all |" in (tmp_path / "probe" / "depth_probe.md").read_text()


def _nuisance_accuracy(features, nuisance):
    from sklearn.linear_model import LogisticRegression

    half = len(nuisance) * 2 // 3
    return LogisticRegression(max_iter=1000).fit(features[:half], nuisance[:half]).score(features[half:], nuisance[half:])


def test_nullspace_projection_removes_a_nuisance_and_keeps_what_is_independent_of_it():
    # three nuisance values, told apart along two directions: the first round removes exactly those two
    rng = np.random.default_rng(1)
    nuisance = rng.integers(0, 3, size=3000)
    independent = rng.normal(size=3000)
    features = np.column_stack([np.eye(3)[nuisance][:, 1:] + 0.1 * rng.normal(size=(3000, 2)), independent, rng.normal(size=(3000, 10))])
    from sklearn.linear_model import LinearRegression

    projection = depth_probe.nullspace_projection(features, nuisance)
    assert _nuisance_accuracy(features, nuisance) > 0.95
    assert _nuisance_accuracy(features @ projection, nuisance) < 0.4  # three balanced values: chance is 1/3
    assert np.linalg.matrix_rank(projection, tol=1e-6) == features.shape[1] - 2
    kept = features @ projection  # the independent column is still there, linearly
    assert LinearRegression().fit(kept, independent).score(kept, independent) > 0.99
    assert np.allclose(depth_probe.nullspace_projection(features, np.zeros(3000)), np.eye(features.shape[1]))


def test_nullspace_projection_over_several_rounds_is_one_projection():
    # one ordinal column: a multinomial classifier removes two directions per round, the second one fitted to noise,
    # and on some draws later rounds go on; what they remove must stay removed (symmetric and idempotent, not a
    # product of the rounds' projections, which on draw 6 was neither)
    ranks = []
    for seed in (5, 6, 9):
        rng = np.random.default_rng(seed)
        nuisance = rng.integers(0, 3, size=600)
        independent = rng.normal(size=600)
        features = np.column_stack([nuisance + 0.1 * rng.normal(size=600), independent, rng.normal(size=(600, 10))])
        projection = depth_probe.nullspace_projection(features, nuisance)
        assert np.allclose(projection, projection.T) and np.allclose(projection @ projection, projection)
        assert _nuisance_accuracy(features @ projection, nuisance) < 0.45
        ranks.append(np.linalg.matrix_rank(projection, tol=1e-6))
    assert min(ranks) < features.shape[1] - 2  # more than one round ran on some draw


def test_project_out_look_uses_only_the_training_rows_it_is_given():
    dataset = _toy()
    features = _features(dataset, "look")
    keep = np.asarray(dataset["train"]["source"]) != "tpdne"
    projected = depth_probe.project_out(features, dataset, keep, "look")
    assert set(projected) == set(depth_probe.SPLITS)
    looks = np.array([depth_probe.LOOK_GROUPS[s] for s in dataset["test"]["source"]])
    # the look column's information is gone from every split, held-out rows included
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=1000).fit(projected["train"][keep], depth_probe.NUISANCES["look"](dataset["train"])[keep])
    assert probe.score(projected["test"], looks) < 0.8
    assert LogisticRegression(max_iter=1000).fit(features["train"][keep], looks[keep]).score(features["test"], looks) > 0.95


def test_a_missing_or_doubled_clip_backbone_is_refused(tmp_path):
    base = ["--dataset", "x", "--face_cache", "x", "--output_dir", str(tmp_path), "--holdout", "sd21"]
    with pytest.raises(SystemExit, match="no such file"):
        depth_probe.main(base + ["--clip_onnx", str(tmp_path / "missing.onnx")])
    (tmp_path / "a.onnx").write_bytes(b"x")
    (tmp_path / "b.safetensors").write_bytes(b"x")
    with pytest.raises(SystemExit, match="give one"):
        depth_probe.main(base + ["--clip_onnx", str(tmp_path / "a.onnx"), "--clip_weights", str(tmp_path / "b.safetensors")])


def test_family_weights_give_each_family_and_the_photos_an_equal_share():
    from research.depth_probe import family_weights

    labels = np.array([1] * 90 + [1] * 10 + [0] * 50 + [0] * 5)
    families = np.array(["gan"] * 90 + ["sd15"] * 10 + ["real"] * 55)
    sources = np.array(["stargan"] * 90 + ["arc2face-sd15"] * 10 + ["ffhq"] * 50 + ["photo_dlib"] * 5)
    weights = family_weights(labels, families, sources)
    assert np.isclose(weights.mean(), 1.0)
    share = lambda mask: weights[mask].sum() / weights.sum()  # noqa: E731
    assert np.isclose(share(families == "gan"), 0.25) and np.isclose(share(families == "sd15"), 0.25)
    assert np.isclose(share(sources == "photo_dlib"), 0.25) and np.isclose(share(sources == "ffhq"), 0.25)


def test_weighted_fit_probe_follows_the_weights():
    from research.depth_probe import fit_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    labels = (x[:, 0] > 0).astype(int)
    labels[:40] = 1 - labels[:40]  # 40 rows that contradict the rest
    heavy = np.ones(400)
    heavy[:40] = 50.0
    plain, weighted = fit_probe(x, labels), fit_probe(x, labels, sample_weight=heavy)
    assert (plain.predict(x[:40]) == labels[:40]).mean() < (weighted.predict(x[:40]) == labels[:40]).mean()
