"""Grad-CAM for the detector: where in the face the "fake" evidence is, as a heatmap over the crop.

One wrapper over pytorch-grad-cam. The target layer is the last stage of timm's `feature_info`, except for
the few families in a small table (EfficientNet's bn2, token models); a model outside timm falls back to its
last Conv2d. The CAM is computed on the canonical tensor the model actually sees (`preprocess.eval_tensor`),
so the heatmap explains the same forward pass that produced the probability.

The network is shared by every request; Grad-CAM temporarily hooks it and runs a backward pass, so every
forward pass on a shared model (plain inference included) takes `MODEL_LOCK`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .preprocess import center_square, eval_tensor

# Re-entrant so that a caller already holding it (predict with explain=True) can call into here.
MODEL_LOCK = threading.RLock()


def _path(model: torch.nn.Module, dotted: str) -> torch.nn.Module | None:
    """model.<dotted> where numeric parts index sequences (e.g. "blocks.-1.norm1"), or None if absent."""
    module = model
    for part in dotted.split("."):
        try:
            module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
        except (AttributeError, IndexError, TypeError, KeyError):
            return None
    return module if isinstance(module, torch.nn.Module) else None


# Where timm's `feature_info` (the last stage of the feature pyramid) is not the layer to explain: (class-name prefix,
# candidate layers in order of preference). Every other CNN uses `feature_info[-1]["module"]`, e.g. MobileNetV3's
# blocks.-1 (its conv_head runs after global pooling), ConvNeXt's stages.-1, DenseNet's features.norm5.
TARGET_LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # timm EfficientNet (also tf_efficientnet_lite*, mobilenetv2_*, mnasnet, fbnet): bn2, the BN + act after conv_head,
    # is still a spatial map and later than feature_info's blocks.-1; the shipped model's heatmaps are computed there.
    ("EfficientNet", ("bn2", "conv_head")),
    ("ResNet", ("layer4.-1",)),  # pytorch-grad-cam's documented layer: the same output as feature_info's layer4
    # Token models: the last block's norm1, made a map by `reshape_transform`.
    ("VisionTransformer", ("blocks.-1.norm1",)),
    ("Deit", ("blocks.-1.norm1",)),
    ("VOLO", ("post_network.-1.norm1", "network.-1.-1.norm1")),
)


def _is_transformer(model: torch.nn.Module) -> bool:
    return any(type(model).__name__.startswith(name) for name in ("VisionTransformer", "Deit", "VOLO"))


def target_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The layer whose activations and gradients Grad-CAM uses for `model`: the table above, else timm's last
    feature stage, else the last Conv2d (a model outside timm)."""
    name = type(model).__name__
    for prefix, candidates in TARGET_LAYERS:
        if name.startswith(prefix):
            for dotted in candidates:
                layer = _path(model, dotted)
                if layer is not None:
                    return layer
    feature_info = getattr(model, "feature_info", None)
    if feature_info and getattr(model, "output_fmt", "NCHW") == "NCHW":  # Swin/MaxViT stages are (b, h, w, c)
        return model.get_submodule(feature_info[-1]["module"])
    convs = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    if not convs:
        raise ValueError(f"No Grad-CAM target layer for {name}: add it to cam.TARGET_LAYERS.")
    return convs[-1]


def reshape_transform(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For token models: (b, n, c) tokens -> (b, c, h, w) map without the class/register tokens; else None."""
    if not _is_transformer(model):
        return None
    prefix = int(getattr(model, "num_prefix_tokens", 1 if getattr(model, "cls_token", None) is not None else 0))
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)

    def transform(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim == 4:  # VOLO outlooker stages keep (b, h, w, c)
            return tokens.permute(0, 3, 1, 2)
        patches = tokens[:, prefix:, :]
        count = patches.shape[1]
        if grid is not None and grid[0] * grid[1] == count:
            height, width = int(grid[0]), int(grid[1])
        else:  # dynamic image size: a square grid
            height = width = int(math.isqrt(count))
            if height * width != count:
                raise ValueError(f"Cannot arrange {count} patch tokens in a grid; pass a square input.")
        return patches.reshape(patches.shape[0], height, width, patches.shape[2]).permute(0, 3, 1, 2)

    return transform


def gradcam_map(model: torch.nn.Module, tensor: torch.Tensor, class_index: int) -> np.ndarray:
    """Grad-CAM of `class_index` for one model-ready tensor (3, H, W) or (1, 3, H, W): float32 (H, W) in [0, 1]."""
    from pytorch_grad_cam import GradCAM  # lazily: only the app's explain path needs it
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    batch = tensor.unsqueeze(0) if tensor.ndim == 3 else tensor
    heatmap = None
    with MODEL_LOCK, torch.enable_grad():
        try:
            # Context manager: the forward hooks it registers are removed on exit, even after an error.
            with GradCAM(model=model, target_layers=[target_layer(model)], reshape_transform=reshape_transform(model)) as cam:
                heatmap = cam(input_tensor=batch, targets=[ClassifierOutputTarget(int(class_index))])[0]
                cam.outputs = None  # drop the retained graph now rather than when the object is collected
        finally:
            model.zero_grad(set_to_none=True)  # parameter .grad buffers would otherwise stay allocated
    if heatmap is None:  # pytorch-grad-cam's __exit__ swallows IndexError
        raise RuntimeError(f"Grad-CAM failed for {type(model).__name__}.")
    return np.clip(np.nan_to_num(heatmap.astype(np.float32), nan=0.0), 0.0, 1.0)


@dataclass
class Explanation:
    heatmap: np.ndarray  # float32 (h, w) in [0, 1] at the crop's size; 0 outside the centre square the model saw
    overlay: np.ndarray  # uint8 (h, w, 3) RGB: the crop with the heatmap blended in


def explain_crop(crop: np.ndarray, net: torch.nn.Module, data_config: dict, class_index: int) -> Explanation:
    """Grad-CAM of `class_index` for an (h, w, 3) uint8 crop, mapped back onto the crop."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    height, width = crop.shape[:2]
    square = center_square(crop)  # eval_tensor sees only the centred square
    side = square.shape[0]
    small = gradcam_map(net, eval_tensor(crop, data_config), class_index)
    heatmap = np.zeros((height, width), dtype=np.float32)
    top, left = (height - side) // 2, (width - side) // 2
    heatmap[top : top + side, left : left + side] = np.clip(cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    overlay = show_cam_on_image(crop.astype(np.float32) / 255.0, heatmap, use_rgb=True)
    return Explanation(heatmap=heatmap, overlay=overlay)
