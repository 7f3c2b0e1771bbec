"""Flag convention (README, "Flag convention"): an older spelling and the conventional one parse to the same config."""

from __future__ import annotations


def test_train_aliases():
    """finetune passes its training flags to the same parser."""
    from training.train import parse_args

    older = ["--dataset", "D", "--model", "tf_efficientnet_lite0", "--output_dir", "O", "--epochs", "2"]
    conventional = ["--data", "D", "--architecture", "tf_efficientnet_lite0", "--output", "O", "--epochs", "2"]
    assert parse_args(older) == parse_args(conventional)


def test_evaluate_aliases():
    from training.evaluate import build_parser

    older = ["--model", "M", "--data", "D", "--split", "test", "--output", "O", "--perturbations", "icip"]
    conventional = ["--model_dir", "M", "--dataset", "D", "--split", "test", "--output_dir", "O", "--perturbations", "icip"]
    assert build_parser().parse_args(older) == build_parser().parse_args(conventional)


def test_build_dataset_aliases():
    from training.build_dataset import parse_args

    assert parse_args(["--source", "S", "--output", "DIR"]) == parse_args(["--source", "S", "--output_dir", "DIR"])


def test_generalization_aliases():
    from research.generalization import build_parser

    older = ["--dataset", "D", "--model", "tf_efficientnet_lite0", "--output_dir", "O", "--holdout", "sd21"]
    conventional = ["--data", "D", "--architecture", "tf_efficientnet_lite0", "--output", "O", "--holdout", "sd21"]
    assert build_parser().parse_args(older) == build_parser().parse_args(conventional)


def test_scan_aliases():
    from deepfake_detector.cli import build_parser

    assert build_parser().parse_args(["scan", "P", "--output", "r.csv", "--model", "M"]) == build_parser().parse_args(
        ["scan", "P", "--output", "r.csv", "--model_dir", "M"]
    )
