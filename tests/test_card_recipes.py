"""The model card says what the model is, how to load it and how to retrain it, for each recipe: a fine-tuned CNN, or
a frozen CLIP tower with a linear head whose int8 weights only load_detector reads."""

from __future__ import annotations

import json

import yaml
from conftest import BUNDLED_MODEL

from training.model_card import render_model_card

CLIP_RECIPE = {
    "recipe": "clip_probe", "dataset": "data/faces-dataset-v2", "model": "vit_base_patch16_clip_quickgelu_224",
    "clip_weights": "weights/clip.safetensors", "depth": 5, "input_size": 224, "pool": "mean",
    "features": "mean patch token of the last kept layer", "framing": "app", "augmented_views": 1,
    "quantize": "dynamic-int8", "train_images": 100, "train_rows_fitted": 200, "output_dir": "runs/clip-app",
}


def _render(config: dict, model_config_update: dict) -> str:
    metrics = json.loads((BUNDLED_MODEL / "metrics.json").read_text())
    model_config = json.loads((BUNDLED_MODEL / "config.json").read_text()) | model_config_update
    return render_model_card(metrics, config, model_config)


def test_a_clip_probe_card_describes_the_frozen_tower_and_loads_it_with_load_detector():
    card = _render(CLIP_RECIPE, {"architecture": "vit_base_patch16_clip_quickgelu_224", "quantization": "dynamic-int8"})
    header = yaml.safe_load(card.split("---")[1])
    assert header["base_model"] == "timm/vit_base_patch16_clip_quickgelu_224.openai"
    assert "The first 5 of the 12 layers of CLIP ViT-B/16" in card and "fine-tuned to tell" not in card
    assert "200 rows" in card and "randomly processed" in card and "weighted sampler" not in card
    assert "python -m research.clip_probe --dataset data/faces-dataset-v2 --app_faces data/app-faces --augmented_views 1" in card
    assert "--depth 5 --input_size 224 --pool mean" in card and "accelerate launch" not in card
    assert "timm.create_model" not in card and "int8 integers" in card and 'load_detector("hf-hub:ORG/' in card
    assert "last kept layer's patch tokens" in card


def test_a_card_says_how_widely_its_model_frames_faces():
    """A head fitted on faces framed wider than the app's default: the card's evaluation, training and retraining
    lines all say the model's own framing."""
    card = _render(CLIP_RECIPE | {"crop_scale": 1.75}, {"architecture": "vit_base_patch16_clip_quickgelu_224",
                                                       "quantization": "dynamic-int8", "face_crop_scale": 1.75})
    assert "--app_faces data/app-faces --crop_scale 1.75 --augmented_views 1" in card
    assert "face detection and 1.75x square" in card and "face detection, 1.75x crop" in card and "1.45x" not in card
    default = _render(CLIP_RECIPE, {"architecture": "vit_base_patch16_clip_quickgelu_224", "quantization": "dynamic-int8"})
    assert "--crop_scale" not in default and "face detection, 1.45x crop" in default


def test_the_cnn_card_keeps_its_fine_tuning_recipe_and_timm_loading():
    config = json.loads((BUNDLED_MODEL / "training_config.json").read_text())
    card = _render(config, {})
    assert "fine-tuned to tell" in card and "weighted sampler" in card and "accelerate launch -m training.train" in card
    assert 'timm.create_model("hf-hub:ORG/' in card and "last convolutional stage" in card and "CLIP" not in card.split("## Training data")[0]


def test_comparison_rows_describe_either_recipe():
    from training.model_card import comparison_recipe

    recipe, note = comparison_recipe(CLIP_RECIPE)
    assert recipe.startswith("vit_base_patch16_clip_quickgelu_224 frozen, first 5 layers at 224 px, dynamic-int8") and "200 train faces (1 processed copy)" in recipe
    cnn = json.loads((BUNDLED_MODEL / "training_config.json").read_text())
    recipe, note = comparison_recipe(cnn)
    assert f"preset `{cnn['preset']}`" in recipe and "ImageNet-pretrained" in recipe


def test_a_penalised_head_says_what_taught_the_penalty_and_how_to_retrain_it():
    from research.ablation import recipe_line

    config = CLIP_RECIPE | {"augmented_views": 0, "resaved_views": 1, "invariance_penalty": 10.0, "train_rows_fitted": 100, "head": "logistic regression"}
    card = _render(config, {"architecture": "vit_base_patch16_clip_quickgelu_224", "quantization": "dynamic-int8"})
    assert "--augmented_views 0 --resaved_views 1 --invariance_penalty 10" in card
    assert "1 re-saved (JPEG 80-98 / WEBP 80-95) copies of each were not rows" in card and "pays 10x more" in card
    assert "re-saved, as an invariance penalty of 10" in recipe_line(config)


def _resave_row(**changes) -> dict:
    row = {"JPEG q90: mean |change of P(fake)| (test limit 0.05)": 0.0108, "WEBP q90: mean |change of P(fake)| (test limit 0.05)": 0.0289,
           "1024-px PNG <-> JPEG 95 swap: max |change of P(fake)| (test limit 0.10)": 0.0591,
           "test split, re-saved once: mean |change of P(fake)|": 0.038, "test split, re-saved once: 99th percentile |change|": 0.2842,
           "test split, re-saved once: max |change|": 0.5314, "test split, re-saved once: verdicts flipped": 0.04,
           "test split, re-saved once: shown Real <-> Fake": 0.012}
    return {key: value for key, value in (row | changes).items() if value is not None}


def test_the_resave_section_reports_the_rows_numbers_and_refuses_an_old_row():
    import pytest

    from training.model_card import resave_section

    text = resave_section(_resave_row(), "r1-flip")
    assert "## Re-saving a photo" in text and "**0.038**" in text and "more than 0.28" in text and "at most 0.53" in text
    assert "**4.0%**" in text and "**1.2%**" in text and "WEBP q90 0.029" in text and "JPEG 95 at most 0.059" in text
    steady = resave_section(_resave_row(**{"test split, re-saved once: shown Real <-> Fake": 0.0}), "r1-flip")
    assert "**none** goes from Real to Fake" in steady and "0.0%" not in steady
    with pytest.raises(ValueError, match="rerun python -m research.resave_sensitivity"):
        resave_section(_resave_row(**{"test split, re-saved once: shown Real <-> Fake": None}), "old")
