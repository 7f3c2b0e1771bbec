"""Grad-CAM wrapper: map shape and range, target layer per architecture, hooks released, no memory growth."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from deepfake_detector.cam import MODEL_LOCK, explain_crop, gradcam_map, target_layer

DATA_CONFIG = {"input_size": (3, 128, 128), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=2).eval()


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return _model("tf_efficientnet_lite0")


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("architecture", "layer", "size"),
    [
        ("tf_efficientnet_lite0", "bn2", 128),
        ("mobilenetv3_large_100", "blocks.6", 128),
        ("resnet18", "layer4.1", 128),
        ("convnext_atto", "stages.3", 128),
        ("vit_tiny_patch16_224", "blocks.11.norm1", 224),
    ],
)
def test_target_layer_and_map(architecture, layer, size):
    model = _model(architecture)
    chosen = target_layer(model)
    assert chosen is dict(model.named_modules())[layer]
    heatmap = gradcam_map(model, torch.randn(3, size, size), class_index=1)
    assert heatmap.shape == (size, size) and heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert _hook_count(model) == 0


def test_unknown_architecture_falls_back_to_last_conv():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    assert target_layer(model) is model[2]
    assert gradcam_map(model, torch.randn(3, 32, 32), 1).shape == (32, 32)


@pytest.mark.parametrize("shape", [(150, 150, 3), (90, 120, 3), (1024, 1024, 3)])
def test_explain_crop_is_at_crop_size(lite0, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    explanation = explain_crop(image, lite0, DATA_CONFIG, class_index=1)
    assert explanation.heatmap.shape == shape[:2]
    assert np.isfinite(explanation.heatmap).all() and 0.0 <= explanation.heatmap.min() and explanation.heatmap.max() <= 1.0
    assert explanation.overlay.shape == shape and explanation.overlay.dtype == np.uint8


def test_constant_image_gives_no_nan(lite0):
    explanation = explain_crop(np.zeros((128, 128, 3), dtype=np.uint8), lite0, DATA_CONFIG, class_index=1)
    assert np.isfinite(explanation.heatmap).all()


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def test_hooks_released_and_memory_flat_over_100_calls(crop):
    # A small timm network keeps 100 forward+backward passes within a few seconds on a busy 2-core machine;
    # what is under test is the wrapper (hooks, retained graph, .grad buffers), not the architecture.
    model = _model("mobilenetv3_small_050")
    config = {"input_size": (3, 64, 64), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    for _ in range(10):  # warm-up: allocator pools and lazy imports
        explain_crop(crop, model, config, 1)
    before = _rss_mb()
    for _ in range(100):
        explain_crop(crop, model, config, 1)
    growth = _rss_mb() - before
    assert growth < 30, f"RSS grew {growth:.1f} MB over 100 Grad-CAM calls"
    assert _hook_count(model) == 0 and not model._forward_hooks and not model._backward_hooks
    assert all(p.grad is None for p in model.parameters())
    assert MODEL_LOCK.acquire(blocking=False)  # not left held
    MODEL_LOCK.release()
