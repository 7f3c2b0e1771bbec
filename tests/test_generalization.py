"""Leave-one-source-out runs from the canonical-face cache: the same scores as the crop path, a real end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.images import load_rgb_array
from deepfake_detector.model import load_detector
from deepfake_detector.predict import classify_crops
from research import generalization
from training.data import load_built_dataset

from conftest import BUNDLED_MODEL, build_small_dataset, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()
BUNDLED = BUNDLED_MODEL
pytestmark = needs_corpus


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    sources = (("real", "ffhq"), ("real", "celeba_stargan_input"), ("fake", "sd21"), ("fake", "stargan"))
    return build_small_dataset(tmp_path_factory, sources, 10, "--no_detect_faces")


def test_cached_scores_equal_the_crop_path_on_the_decoded_files(dataset_dir, tmp_path):
    dataset = load_built_dataset(dataset_dir)
    detector = load_detector(BUNDLED)
    split = dataset["train"]
    indices = list(range(len(split)))
    probabilities, labels = generalization.cached_scorer(detector, tmp_path, dataset)(split, "train", indices)
    direct = classify_crops([load_rgb_array(row["image"]["bytes"]) for row in split], detector)
    assert np.allclose(probabilities, direct, atol=1e-5)
    assert labels.tolist() == split["label"]


def test_held_out_source_run_from_the_cache(dataset_dir, tmp_path):
    output = tmp_path / "loso"
    argv = [
        "--dataset", str(dataset_dir), "--model", "tf_efficientnet_lite0", "--output_dir", str(output),
        "--holdout", "sd21", "--face_cache", str(tmp_path / "cache"), "--",
        "--epochs", "1", "--batch_size", "8", "--samples_per_epoch", "16", "--num_workers", "0", "--report_to", "none",
    ]
    assert generalization.main(argv) == 0
    [result] = json.loads((output / "generalization.json").read_text())
    sources = [s for split in load_built_dataset(dataset_dir).values() for s in split["source"]]
    assert result["held_out_fake"] == sources.count("sd21") and result["held_out_real"] == 0
    assert result["scored"] == "cached face crops"
    assert 0.0 <= result["held_out_roc_auc_vs_test_counterpart"] <= 1.0
    assert not (output / "sd21" / "metrics.json").exists()  # trained with --stop_after_training
    config = json.loads((output / "sd21" / "training_config.json").read_text())
    assert config["exclude_sources"] == "sd21" and config["face_cache"]


def test_ablation_reads_the_loso_run_and_the_benchmark(dataset_dir, tmp_path):
    """The ablation table's LOSO and speed cells come from generalization.json and benchmark.json as those scripts write them."""
    from research import ablation
    from training import benchmark

    eval_folder = tmp_path / "eval"
    argv = [
        "--dataset", str(dataset_dir), "--model", "tf_efficientnet_lite0", "--output_dir", str(eval_folder / "loso"),
        "--holdout", "stargan", "--face_cache", str(tmp_path / "cache"), "--",
        "--epochs", "1", "--batch_size", "8", "--samples_per_epoch", "8", "--num_workers", "0", "--report_to", "none",
    ]
    assert generalization.main(argv) == 0
    assert benchmark.main(["--model", str(BUNDLED), "--data", str(dataset_dir), "--images", "3", "--output", str(eval_folder / "benchmark.json")]) == 0
    assert ablation.main(["--candidate", "bundled", str(BUNDLED), str(eval_folder), "--output", str(tmp_path / "table")]) == 0
    [loso] = json.loads((eval_folder / "loso" / "generalization.json").read_text())
    speed = json.loads((eval_folder / "benchmark.json").read_text())
    line = next(l for l in (tmp_path / "table" / "README.md").read_text().splitlines() if l.startswith("| bundled |"))
    assert f"stargan {loso['held_out_roc_auc_vs_test_counterpart']:.2f}" in line
    assert line.rstrip().endswith(f"| {speed['classify_one_face_ms']:.1f} / {speed['predict_ms']:.1f} |")


def test_benchmarks_name_the_processor_and_what_its_kernels_can_use():
    """Milliseconds are attributable only with the CPU: the same code took 18 and 37 ms per face on two machines."""
    from training.benchmark import cpu_description

    amd = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma\n"
    intel = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t: avx avx2 avx512f avx512_vnni amx_tile avx_vnni\n"
    assert cpu_description(amd) == "AMD EPYC (avx2)"
    assert cpu_description(intel) == "Intel(R) Xeon(R) Platinum 8481C (avx2, avx512f, avx512_vnni, avx_vnni, amx_tile)"
    assert cpu_description("model name\t: Old\nflags\t: sse sse2\n") == "Old (no AVX2)"
