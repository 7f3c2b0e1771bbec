"""research.finetune under `accelerate launch` on a few real faces: it starts from the bundled model's weights, the
frozen layers do not move, the rest does, the source boost shifts the sampler, and the recipe lands in the config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from research.finetune import boosted_sample_weights, parse_args
from training.train import frozen_parameter_names

from conftest import BUNDLED_MODEL, build_small_dataset, corpus_dir, needs_corpus  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FACES = corpus_dir()  # DFD_CORPUS, default ../shared/data/faces
BUNDLED = BUNDLED_MODEL
pytestmark = needs_corpus


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory) -> Path:
    """Two steps of 8 faces from the bundled model, stem + 2 blocks frozen, sd21 boosted."""
    dataset = build_small_dataset(tmp_path_factory, (("real", "ffhq"), ("fake", "sd21"), ("fake", "stargan")), 10, "--no_detect_faces")
    output = tmp_path_factory.mktemp("run") / "ft"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_cpu_threads_per_process", "1",
        "-m", "research.finetune", "--init_from", str(BUNDLED), "--freeze_blocks", "2", "--source_boost", "sd21=3", "--",
        "--dataset", str(dataset), "--model", "tf_efficientnet_lite0", "--output_dir", str(output), "--epochs", "1",
        "--batch_size", "8", "--samples_per_epoch", "16", "--num_workers", "0", "--learning_rate", "1e-3",
        "--perturbations", "", "--report_to", "none", "--max_eval_samples", "6",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output


def test_frozen_layers_keep_the_bundled_weights_and_the_rest_moves(finetuned):
    before, after = load_file(str(BUNDLED / "model.safetensors")), load_file(str(finetuned / "model.safetensors"))
    assert set(before) == set(after)
    frozen = [k for k in before if k.startswith(("conv_stem.", "bn1.weight", "bn1.bias", "blocks.0.", "blocks.1.")) and "running" not in k and "num_batches" not in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    trained = ["blocks.5.0.conv_pw.weight", "conv_head.weight", "classifier.weight"]
    assert all(not torch.equal(before[k], after[k]) for k in trained)
    # the head was loaded, not re-initialised near zero: it is still close to the bundled head
    assert torch.allclose(before["classifier.weight"], after["classifier.weight"], atol=0.05)


def test_recipe_is_in_training_config(finetuned):
    config = json.loads((finetuned / "training_config.json").read_text())
    assert config["finetune"]["init_from"] == str(BUNDLED)
    assert config["finetune"]["freeze_blocks"] == 2 and config["finetune"]["source_boost"] == {"sd21": 3.0}
    assert config["model"] == "tf_efficientnet_lite0" and config["pretrained_file"] == ""


def test_frozen_names_cover_stem_and_first_blocks_only():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", num_classes=2)
    names = frozen_parameter_names(model, 2)
    assert "conv_stem.weight" in names and any(n.startswith("blocks.1.") for n in names)
    assert not any(n.startswith(("blocks.2.", "conv_head", "classifier")) for n in names)
    assert frozen_parameter_names(model, -1) == []
    with pytest.raises(ValueError, match="only 7 blocks"):
        frozen_parameter_names(model, 8)


def test_boost_multiplies_a_source_share_and_keeps_labels_balanced():
    labels = [0] * 4 + [1] * 6
    sources = ["ffhq"] * 2 + ["photo_facerec"] * 2 + ["stargan"] * 4 + ["sd21"] * 2
    weights = boosted_sample_weights({"sd21": 3, "photo_*": 2})(labels, sources)
    share = lambda source: float(sum(w for w, s in zip(weights, sources) if s == source))  # noqa: E731
    assert share("ffhq") + share("photo_facerec") == pytest.approx(0.5)
    assert share("stargan") + share("sd21") == pytest.approx(0.5)
    # sqrt weighting gives stargan:sd21 = 2:sqrt(2); the boost makes it 2:3*sqrt(2)
    assert share("sd21") / share("stargan") == pytest.approx(3 * 2**0.5 / 2)
    assert share("photo_facerec") / share("ffhq") == pytest.approx(2)


def test_bad_wrapper_arguments_are_named():
    with pytest.raises(ValueError, match="after `--`"):
        parse_args(["--init_from", "x"])
    with pytest.raises(ValueError, match="SOURCE=FACTOR"):
        parse_args(["--init_from", "x", "--source_boost", "sd21", "--"])
