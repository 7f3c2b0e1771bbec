"""The model and dataset cards are Jinja templates (training/templates/) rendered through huggingface_hub's
`ModelCard.from_template` / `DatasetCard.from_template`: the YAML header is the Hub's card data and holds the
numbers of metrics.json, the body is the template filled from the files, and a name the template needs but the
feeder did not give is an error, not an empty string."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import BUNDLED_MODEL, REPO_ROOT, build_small_dataset, corpus_present
from huggingface_hub import DatasetCard, ModelCard

from training.model_card import render_model_card, write_model_card
from training.templates import TEMPLATES, TemplateVariableError, render

FUSED_MODEL = REPO_ROOT / "models" / "deepfake-detector-clip-cnn-fused"
SECTIONS = ("Intended use", "Out-of-scope use", "Training data", "Evaluation", "What a visitor is told", "Per source",
            "Per perturbation", "Targets", "Calibration", "Bias, risks and limitations", "Model examination", "How to use", "How to retrain")


def _header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---")[1])


@pytest.mark.parametrize("folder", [BUNDLED_MODEL, FUSED_MODEL], ids=["cnn", "clip-cnn-fused"])
def test_a_shipped_folder_s_card_renders_from_the_template_with_its_metrics(folder, tmp_path):
    copy = tmp_path / folder.name
    copy.mkdir()
    for name in ("metrics.json", "config.json", "training_config.json"):
        shutil.copyfile(folder / name, copy / name)
    card = write_model_card(copy)
    assert (copy / "README.md").read_text() == card
    metrics = json.loads((folder / "metrics.json").read_text())
    loaded = ModelCard.load(copy / "README.md")
    assert loaded.data.license == "cc-by-nc-4.0" and loaded.data.library_name == "timm" and "deepfake-detection" in loaded.data.tags
    [index] = _header(card)["model-index"]
    assert index["name"] == json.loads((folder / "config.json").read_text()).get("model_name", copy.name)
    [result] = index["results"]
    assert result["dataset"] == {"name": "Real and GAN-generated faces", "type": "faces-dataset", "split": "test"}
    values = {row["name"]: row["value"] for row in result["metrics"]}
    assert values == {"Accuracy": metrics["accuracy"], "Balanced accuracy": metrics["balanced_accuracy"], "ROC AUC": metrics["roc_auc"],
                      "F1 (real)": metrics["per_class"]["real"]["f1"], "F1 (fake)": metrics["per_class"]["fake"]["f1"]}
    for section in SECTIONS:
        assert f"## {section}" in card or f"### {section}" in card, section
    assert "{{" not in card and "{%" not in card and "None" not in card.split("## How to retrain")[0]
    assert f"balanced accuracy **{metrics['balanced_accuracy']:.3f}**" in card and f"**{metrics['roc_auc']:.4f}**" in card
    for label, values in metrics["per_class"].items():
        assert f"| {label} | {values['precision']:.3f} | {values['recall']:.3f} | {values['f1']:.3f} | {values['support']} |" in card


def test_the_shipped_model_card_is_what_the_template_renders():
    """model_card.md at the root is the default model's card as the template renders it (sections from card_sections.md)."""
    metrics, model_config, config = (json.loads((FUSED_MODEL / name).read_text()) for name in ("metrics.json", "config.json", "training_config.json"))
    deployment = json.loads((FUSED_MODEL / "card_targets.json").read_text())
    card = render_model_card(metrics, config, model_config, extra_sections=(FUSED_MODEL / "card_sections.md").read_text(),
                             asset_prefix=f"models/{FUSED_MODEL.name}/", deployment=deployment)
    shipped = (REPO_ROOT / "model_card.md").read_text()
    assert _header(card) == _header(shipped)
    assert [line for line in card.splitlines() if line.startswith("#")] == [line for line in shipped.splitlines() if line.startswith("#")]


def test_an_asymmetric_folder_s_card_states_both_cuts():
    """A raised Fake cut (config.json `fake_band`, training.calibration --asymmetric): the card's operating point says
    the Fake cut sits above the Real cut's mirror, with the validation rates at it; a symmetric folder's card does not."""
    metrics, model_config, config = (json.loads((FUSED_MODEL / name).read_text()) for name in ("metrics.json", "config.json", "training_config.json"))
    # the folder as a symmetric calibration leaves it (the shipped default is asymmetric: strip what --asymmetric adds)
    model_config.pop("fake_band", None)
    metrics = {key: value for key, value in metrics.items() if key != "fake_band"}
    model_config["calibration"] = {key: value for key, value in model_config["calibration"].items() if "fake_band" not in key}
    symmetric = render_model_card(metrics, config, model_config)
    assert "Real cut's mirror" not in symmetric and "-0.450 / +" not in symmetric and "The Uncertain band is ±0.450" in symmetric
    block = model_config["calibration"] | {
        "uncertain_band": 0.45, "max_photo_false_fake_rate": 0.03, "fake_band": 0.48, "fake_band_photo_target_met_on_validation": True,
        "validation_photo_false_fake_rate_at_fake_band": 0.0254, "validation_false_fake_rate_at_fake_band": 0.0031,
        "validation_real_uncertain_rate_at_fake_band": 0.65, "validation_fake_uncertain_rate_at_fake_band": 0.72,
    }
    card = render_model_card(metrics | {"uncertain_band": 0.45, "fake_band": 0.48}, config, model_config | {"uncertain_band": 0.45, "fake_band": 0.48, "calibration": block})
    operating = card.split("**Operating point for the public.**")[1].split("## Bias")[0]
    assert "The Uncertain band starts as ±0.450" in operating and "The Fake cut sits above the Real cut's mirror" in operating
    assert "Real below 0.050 as above, but Fake from\n**0.980** up (threshold + 0.480" in operating
    assert "everyday-photo faces called Fake 0.025" in operating and "all real faces called Fake\n0.003" in operating
    assert "not met" not in operating and "{{" not in card
    assert "with Uncertain band -0.450 / +0.480 (Fake from 0.980 up, Real below 0.050)" in card  # evaluate's operating point lines


def test_a_hub_dataset_id_goes_into_the_yaml_datasets_list():
    metrics, model_config, config = (json.loads((BUNDLED_MODEL / name).read_text()) for name in ("metrics.json", "config.json", "training_config.json"))
    header = _header(render_model_card(metrics, config | {"hub_dataset_id": "org/faces"}, model_config))
    assert header["datasets"] == ["org/faces"] and header["model-index"][0]["results"][0]["dataset"]["type"] == "org/faces"


def test_a_name_the_template_needs_but_was_not_given_is_an_error():
    with pytest.raises(TemplateVariableError, match=r"sections/speed.md.j2: 'train_rate' is undefined"):
        render("sections/speed.md.j2", benchmark={}, flip=False)
    # a key missing from a dict the feeder passed: a CLIP recipe's training_config.json without its depth
    metrics, model_config = (json.loads((FUSED_MODEL / name).read_text()) for name in ("metrics.json", "config.json"))
    config = {key: value for key, value in json.loads((FUSED_MODEL / "training_config.json").read_text()).items() if key != "depth"}
    with pytest.raises(TemplateVariableError, match=r"model_card.md.j2: 'dict object' has no attribute 'depth'"):
        render_model_card(metrics, config, model_config)


def test_the_hub_s_renderer_would_have_printed_the_missing_name_as_nothing():
    """Why the strict check exists: from_template's own jinja2.Template renders an undefined name as ''."""
    from huggingface_hub import ModelCardData

    card = ModelCard.from_template(ModelCardData(license="mit"), template_str="---\n{{ card_data }}\n---\n\nspeed: {{ train_rate }} images/s\n")
    assert "speed:  images/s" in card.text


def test_every_template_parses():
    import jinja2

    from training.templates import ENVIRONMENT

    names = [path.relative_to(TEMPLATES).as_posix() for path in TEMPLATES.rglob("*.j2")]
    assert {"model_card.md.j2", "dataset_card.md.j2"} <= set(names)
    for name in names:
        try:
            ENVIRONMENT.get_template(name)
        except jinja2.TemplateSyntaxError as error:  # pragma: no cover - the message is the point
            pytest.fail(f"{name}: {error}")


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    if not corpus_present():
        pytest.skip("needs the dev corpus (DFD_CORPUS, default ../shared/data/faces)")
    sources = (("real", "ffhq"), ("fake", "stargan"), ("fake", "sd21"), ("real", "photo_gfpgan_old"))
    return build_small_dataset(tmp_path_factory, sources, 3, "--seed", "1")


def test_the_dataset_card_renders_from_the_template_with_the_build_report(small_build):
    from training.build_dataset import BuildReport
    from training.dataset_card import render_dataset_card

    report = json.loads((small_build / "report.json").read_text())
    card = (small_build / "README.md").read_text()
    header = _header(card)
    assert header["license"] == "other" and header["size_categories"] == ["n<1K"] and header["task_categories"] == ["image-classification"]
    assert [entry["split"] for entry in header["configs"][0]["data_files"]] == ["train", "validation", "test"]
    assert DatasetCard.load(small_build / "README.md").data.pretty_name.startswith("Real and GAN-generated faces")
    counts = report["counts"]
    total = sum(n for split in counts.values() for label in split.values() for n in label.values())
    assert f"A labelled set of **{total}** face images" in card and "seed 1," in card
    for source in ("ffhq", "stargan", "sd21"):
        label = "real" if source == "ffhq" else "fake"
        row = next(line for line in card.splitlines() if line.startswith(f"| {label} | {source} |"))
        assert " / ".join(str(counts.get(s, {}).get(label, {}).get(source, 0)) for s in ("train", "validation", "test")) in row
    assert "**Diffusion (sd21):**" in card and "## Everyday photos" in card and "| photo_gfpgan_old | 3 |" in card
    assert "{{" not in card and "{%" not in card
    # the builder's card is the template rendered from its own report
    assert render_dataset_card(BuildReport(**report), seed=1, sources=[line for line in card.splitlines() if line.startswith("Built from")][0].split("`")[1::2]) == card
