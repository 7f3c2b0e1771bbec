"""research.clip_features: the layer outputs really come out of the exported graph, and the features are the class
token and the mean patch token of each layer (onnx and onnxruntime run here, on a small graph of the same shape)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from research import clip_features


def tower(path, layers: int = 3, pattern: str = clip_features.LAYER_NODE):
    """A stand-in image tower with CLIP's interface: pixels (batch, 3, 224, 224) -> tokens (batch, 3 * 224, 224)
    -> `layers` residual adds (+1 each, named like CLIP's) -> the last layer's tokens as the only output."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 3 * 224, 224])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [helper.make_node("Reshape", ["pixel_values", "shape"], ["tokens0"], name="patchify")]
    for index in range(layers):
        nodes.append(helper.make_node("Add", [f"tokens{index}", "one"], [f"tokens{index + 1}"], name=pattern.format(index=index)))
    graph = helper.make_graph(
        nodes, "tower",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(f"tokens{layers}", TensorProto.FLOAT, ["batch", 3 * 224, 224])],
        initializer=[shape, one],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_every_layer_becomes_an_output_in_order(tmp_path):
    import onnxruntime

    names = clip_features.with_layer_outputs(tower(tmp_path / "tower.onnx"), tmp_path / "layers.onnx")
    assert names == ["tokens1", "tokens2", "tokens3"]
    session = onnxruntime.InferenceSession(str(tmp_path / "layers.onnx"), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(0).normal(size=(2, 3, 224, 224)).astype(np.float32)
    outputs = session.run(names, {"pixel_values": pixels})
    for depth, output in enumerate(outputs, start=1):
        np.testing.assert_allclose(output, pixels.reshape(2, 3 * 224, 224) + depth, rtol=1e-6)


def test_a_graph_without_clip_layers_is_refused(tmp_path):
    source = tower(tmp_path / "other.onnx", pattern="block{index}")
    with pytest.raises(ValueError, match="not a CLIP image tower"):
        clip_features.with_layer_outputs(source, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_clip_input_is_resized_and_normalised_with_clip_statistics():
    faces = np.full((2, 128, 128, 3), 200, dtype=np.uint8)
    faces[1] = 10
    pixels = clip_features.to_clip_input(faces)
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == np.float32
    for row, value in enumerate((200, 10)):
        expected = (value / 255.0 - clip_features.CLIP_MEAN) / clip_features.CLIP_STD
        np.testing.assert_allclose(pixels[row].mean((1, 2)), expected, atol=1e-4)


def test_layer_features_are_class_token_and_mean_patch_token(tmp_path):
    faces = np.random.default_rng(1).integers(0, 256, size=(3, 128, 128, 3), dtype=np.uint8)
    features = clip_features.layer_features(tower(tmp_path / "tower.onnx"), faces, tmp_path, batch_size=2)
    assert sorted(features) == ["cls_all", "layer0", "layer1", "layer2"]
    tokens = clip_features.to_clip_input(faces).reshape(3, 3 * 224, 224)
    for depth in range(3):
        layer = tokens + depth + 1
        expected = np.concatenate([layer[:, 0], layer[:, 1:].mean(1)], 1)
        np.testing.assert_allclose(features[f"layer{depth}"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(features["cls_all"], np.concatenate([tokens[:, 0] + d for d in (1, 2, 3)], 1), rtol=1e-5, atol=1e-5)


def _integer_matmul(a_zero_point: int, b: np.ndarray, b_zero_point: np.ndarray):
    """a (uint8, runtime input) x b (int8 weights) as ONNX MatMulInteger with zero points, like the quantised tower."""
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b", "a_zp", "b_zp"], ["y"], name="mm")], "mm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["rows", b.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["rows", b.shape[1]])],
        initializer=[
            helper.make_tensor("b", TensorProto.INT8, b.shape, b.ravel().tolist()),
            helper.make_tensor("a_zp", TensorProto.UINT8, [], [a_zero_point]),
            helper.make_tensor("b_zp", TensorProto.INT8, [b.shape[1]], b_zero_point.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model


def test_integer_matmuls_are_computed_without_saturation_on_any_cpu(tmp_path):
    # extreme u8 x s8 pairs: AVX2 kernels without VNNI add two 255 x 127 products into 16 bits and saturate them
    import onnxruntime

    rng = np.random.default_rng(0)
    a = np.where(rng.random((3, 768)) < 0.5, 255, rng.integers(0, 256, (3, 768))).astype(np.uint8)
    b = np.where(rng.random((768, 5)) < 0.5, 127, rng.integers(-128, 128, (768, 5))).astype(np.int8)
    b_zero_point = np.array([0, 1, -2, 3, -128], dtype=np.int8)
    model = _integer_matmul(7, b, b_zero_point)
    assert clip_features.exact_integer_matmuls(model) == 1
    assert "MatMulInteger" not in {node.op_type for node in model.graph.node}
    onnx.save(model, str(tmp_path / "exact.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "exact.onnx"), providers=["CPUExecutionProvider"])
    [result] = session.run(["y"], {"a": a})
    expected = (a.astype(np.int64) - 7) @ (b.astype(np.int64) - b_zero_point.astype(np.int64))
    assert result.dtype == np.int32
    # sums above 2**24 round as float32 does, as the graph's next Cast (int32 -> float) rounds them anyway; a
    # saturated pair is off by thousands
    np.testing.assert_allclose(result, expected, rtol=1e-7, atol=0)
