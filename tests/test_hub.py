"""Hub code paths through the folder layout the Hub holds (the Hub itself is unreachable here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    import timm

    from training.hub import save_model_folder

    folder = tmp_path_factory.mktemp("model") / "tiny"
    net = timm.create_model("mobilenetv3_small_050", num_classes=2).eval()
    save_model_folder(net, folder, threshold=0.42, temperature=1.7, input_size=64)
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# tiny\n")
    return folder


def _populate_hub_cache(cache: Path, repo_id: str, folder: Path, revision: str = "0123456789abcdef0123456789abcdef01234567") -> None:
    """The layout `snapshot_download` leaves behind: models--ORG--NAME/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(folder, repo / "snapshots" / revision)


def test_hf_hub_id_loads_through_the_real_snapshot_code(model_folder, tmp_path):
    """`hf-hub:ORG/NAME` goes through huggingface_hub.snapshot_download (offline: from its cache layout) and gives
    the same model, threshold and temperature as the local folder."""
    _populate_hub_cache(tmp_path / "hub", "someorg/tiny-detector", model_folder)
    code = (
        "import torch; from deepfake_detector.model import load_detector;"
        "a = load_detector('hf-hub:someorg/tiny-detector'); b = load_detector(r'%s'); x = torch.randn(2, 3, 64, 64);"
        "print(torch.allclose(a.net(x), b.net(x)), a.threshold, a.temperature, a.name)" % model_folder
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "0.42", "1.7", "hf-hub:someorg/tiny-detector"]


def test_missing_model_folder_is_a_clear_error(tmp_path):
    from deepfake_detector.model import load_detector

    with pytest.raises(FileNotFoundError, match="not a model folder"):
        load_detector(tmp_path)


def test_only_safetensors_are_loaded(model_folder, tmp_path):
    from deepfake_detector.model import load_detector

    copy = tmp_path / "copy"
    shutil.copytree(model_folder, copy)
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="only safetensors"):
        load_detector(copy)


def test_push_uploads_exactly_the_folder(model_folder, monkeypatch):
    """push_folder = create_repo(exist_ok) + upload_folder of that folder; checkpoints and logs stay home.
    (The Hub is unreachable: its two client calls are recorded instead of sent.)"""
    import huggingface_hub

    from training.hub import push_folder

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, **kw: calls.append(("create_repo", repo_id, kw)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.append(("upload_folder", kw)) or "commit-url")
    assert push_folder(model_folder, "someorg/tiny-detector") == "commit-url"
    assert calls[0] == ("create_repo", "someorg/tiny-detector", {"exist_ok": True, "private": False})
    upload = calls[1][1]
    assert upload["repo_id"] == "someorg/tiny-detector" and Path(upload["folder_path"]) == model_folder
    assert "checkpoints/*" in upload["ignore_patterns"] and "logs/*" in upload["ignore_patterns"]


def test_push_flags_need_an_id():
    from training import build_dataset, train

    with pytest.raises(SystemExit):
        build_dataset.parse_args(["--source", "x", "--output", "y", "--push_to_hub"])
    with pytest.raises(SystemExit):
        train.parse_args(["--dataset", "x", "--model", "resnet18", "--output_dir", "y", "--push_to_hub"])


def test_card_lists_a_hub_dataset_only_when_training_read_it_from_the_hub():
    import yaml

    from training.model_card import render_model_card

    import json

    shipped = REPO_ROOT / "models" / "deepfake-detector-effnet-lite0"
    metrics, model_config = (json.loads((shipped / name).read_text()) for name in ("metrics.json", "config.json"))

    def header(config: dict) -> dict:
        card = render_model_card(metrics, config, model_config)
        return yaml.safe_load(card.split("---")[1])

    # a local build that is missing where the card is rendered (a fresh clone) still has the shape of ORG/NAME
    local = header({"dataset": "data/faces-dataset-v2", "hub_dataset_id": ""})
    assert "datasets" not in local and local["model-index"][0]["results"][0]["dataset"]["type"] == "faces-dataset"
    pushed = header({"dataset": "data/faces-dataset-v2", "hub_dataset_id": "org/faces"})
    assert pushed["datasets"] == ["org/faces"]
