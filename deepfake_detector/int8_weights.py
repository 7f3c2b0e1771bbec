"""int8 weights in a safetensors file: the exact weights of a dynamic-int8 net, four times smaller than float32.

A model folder whose config.json says `"quantization": "dynamic-int8"` stores every quantized Linear layer's weight as
`<name>.weight.int8` (int8, the layer's own integers) and `<name>.weight.scale` (float32, one scale per output
channel; symmetric, zero point 0); every other tensor as it is. Loading gives back

- the float net (weights = integers x scales), which Grad-CAM differentiates, and
- the int8 net that classifies, whose layers get *the stored integers* rather than a re-quantization of the float net,
  so it is bit for bit the net the head was fitted on (`research.clip_probe`), however torch rounds.
"""

from __future__ import annotations

import torch

INT8, SCALE = ".weight.int8", ".weight.scale"


def _dynamic_linears(net: torch.nn.Module) -> dict[str, torch.nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear

    return {name: module for name, module in net.named_modules() if isinstance(module, Linear)}


def pack(float_net: torch.nn.Module, int8_net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors to save: `float_net`'s state dict with each layer that is dynamic int8 in `int8_net` (a
    `quantize_dynamic` copy of it, per-channel symmetric) replaced by its integers and scales."""
    tensors = {name: value.detach().contiguous() for name, value in float_net.state_dict().items()}
    for name, module in _dynamic_linears(int8_net).items():
        weight = module.weight()
        # torch packs per-channel symmetric weights as "affine" with zero points 0: what matters is the zeros
        if weight.qscheme() not in (torch.per_channel_symmetric, torch.per_channel_affine) or weight.q_per_channel_zero_points().abs().max() != 0:
            raise ValueError(f"{name}: only per-channel int8 weights with zero point 0 are stored, got {weight.qscheme()}")
        del tensors[f"{name}.weight"]
        tensors[name + INT8] = weight.int_repr().contiguous()
        tensors[name + SCALE] = weight.q_per_channel_scales().float().contiguous()
    return tensors


def float_state_dict(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """(state dict for the float net with int8 weights dequantized, {layer name: (integers, scales)})."""
    state, stored = {}, {}
    for name, value in tensors.items():
        if name.endswith(SCALE):
            continue
        if name.endswith(INT8):
            layer = name[: -len(INT8)]
            scales = tensors.get(layer + SCALE)
            if scales is None or value.dtype != torch.int8 or scales.shape != value.shape[:1]:
                raise ValueError(f"{layer}: int8 weight without a matching per-channel scale")
            stored[layer] = (value, scales)
            state[f"{layer}.weight"] = value.float() * scales.float()[:, None]
        else:
            state[name] = value
    return state, stored


def set_stored_weights(int8_net: torch.nn.Module, stored: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Give every dynamic int8 layer of `int8_net` its stored integers (all of them, and no others)."""
    layers = _dynamic_linears(int8_net)
    if set(layers) != set(stored):
        raise ValueError(f"stored int8 layers {sorted(set(stored) ^ set(layers))[:4]} do not match the net's")
    for name, module in layers.items():
        integers, scales = stored[name]
        weight = torch._make_per_channel_quantized_tensor(integers, scales.double(), torch.zeros(len(scales), dtype=torch.long), 0)
        module.set_weight_bias(weight, module.bias())
