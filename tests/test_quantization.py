"""config.json "quantization": "dynamic-int8": int8 weights on disk, the int8 net classifies (one face per call) and is
bit for bit the one the folder was saved from; the float net made from the same integers explains."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import needs_corpus

from deepfake_detector.model import load_detector, quantize_dynamic_int8


MODEL_ARGS = {"depth": 2, "img_size": 128, "global_pool": "avg", "final_norm": False, "fc_norm": False}


@pytest.fixture(scope="module")
def saved_nets(tmp_path_factory, clip_weights):
    """(folder, the float tower it was saved from, that tower's int8 copy): a 2-layer CLIP tower saved as int8."""
    from research.clip_probe import build_tower
    from training.hub import save_model_folder

    model = build_tower(clip_weights, 2, 128)
    int8_net = quantize_dynamic_int8(model)
    folder = tmp_path_factory.mktemp("int8")
    save_model_folder(model, folder, input_size=128, model_args=MODEL_ARGS, int8_net=int8_net)
    save_model_folder(model, folder / "float32", input_size=128, model_args=MODEL_ARGS)
    return folder, model, int8_net


@pytest.fixture(scope="module")
def int8_folder(saved_nets):
    return saved_nets[0]


@pytest.fixture(scope="module")
def corpus_faces(faces_dir):
    from deepfake_detector.images import load_rgb_array
    from deepfake_detector.preprocess import eval_tensor

    files = sorted((faces_dir / "real" / "ffhq").iterdir())[:4] + sorted((faces_dir / "fake" / "stargan").iterdir())[:4]
    return [load_rgb_array(path.read_bytes()) for path in files], eval_tensor


@needs_corpus
def test_int8_copy_classifies_and_tracks_the_float_net(int8_folder, corpus_faces):
    detector = load_detector(int8_folder)
    images, eval_tensor = corpus_faces
    batch = torch.stack([eval_tensor(image, detector.data_config) for image in images])
    assert isinstance(detector.fast_net.blocks[0].mlp.fc1, torch.ao.nn.quantized.dynamic.Linear)
    assert isinstance(detector.net.blocks[0].mlp.fc1, torch.nn.Linear)  # the float net Grad-CAM differentiates
    assert isinstance(detector.fast_net.get_classifier(), torch.nn.Linear)  # the head stays float
    with torch.inference_mode():
        floats = detector.net.forward_head(detector.net.forward_features(batch), pre_logits=True).numpy()
        ints = np.concatenate([detector.fast_net.forward_head(detector.fast_net.forward_features(face[None]), pre_logits=True).numpy() for face in batch])
        expected = detector.fast_net(batch[:1]).numpy()
    assert all(np.corrcoef(a, b)[0, 1] > 0.97 for a, b in zip(floats, ints))
    np.testing.assert_array_equal(detector.logits(batch[:1]), expected)  # logits() is the int8 copy


@needs_corpus
def test_a_faces_score_does_not_depend_on_its_batch(int8_folder, corpus_faces):
    detector = load_detector(int8_folder)
    images, eval_tensor = corpus_faces
    face = eval_tensor(images[0], detector.data_config)
    loud = face * 6.0  # a face whose activations set a very different int8 scale
    alone = detector.logits(face[None])
    np.testing.assert_array_equal(detector.logits(torch.stack([face, loud]))[0], alone[0])
    with torch.inference_mode():  # why logits() goes one face at a time: batched, the int8 net's answer would move
        assert not np.array_equal(detector.fast_net(torch.stack([face, loud]))[0].numpy(), alone[0])
    assert detector.logits(face[:0].reshape(0, *face.shape)).shape == (0, 2)


@needs_corpus
def test_the_folder_stores_the_integers_and_reloads_the_very_same_int8_net(saved_nets, corpus_faces):
    from safetensors import safe_open

    folder, model, int8_net = saved_nets
    with safe_open(str(folder / "model.safetensors"), "pt") as file:
        assert file.get_tensor("blocks.0.attn.qkv.weight.int8").dtype == torch.int8 and "blocks.0.attn.qkv.weight" not in file.keys()
        assert file.get_tensor("head.weight").dtype == torch.float32  # the head is not quantized
    assert (folder / "model.safetensors").stat().st_size < 0.35 * (folder / "float32" / "model.safetensors").stat().st_size
    detector = load_detector(folder)
    assert json.loads((folder / "config.json").read_text())["quantization"] == "dynamic-int8"
    saved, loaded = int8_net.blocks[1].mlp.fc2.weight(), detector.fast_net.blocks[1].mlp.fc2.weight()
    assert torch.equal(saved.int_repr(), loaded.int_repr()) and torch.equal(saved.q_per_channel_scales(), loaded.q_per_channel_scales())
    images, eval_tensor = corpus_faces
    face = eval_tensor(images[5], detector.data_config)[None]
    with torch.inference_mode():
        np.testing.assert_array_equal(detector.logits(face), int8_net(face).numpy())  # bit for bit
        assert torch.allclose(detector.net(face), model(face), atol=0.05)  # the float net from the integers: close


def test_unknown_quantization_and_nets_without_linear_layers_are_refused(int8_folder, tmp_path):
    import shutil

    shutil.copytree(int8_folder, tmp_path / "folder", ignore=shutil.ignore_patterns("float32"))
    config = json.loads((tmp_path / "folder" / "config.json").read_text())
    (tmp_path / "folder" / "config.json").write_text(json.dumps(config | {"quantization": "int4"}))
    with pytest.raises(ValueError, match="Unknown quantization 'int4'"):
        load_detector(tmp_path / "folder")
    with pytest.raises(ValueError, match="no Linear layer"):
        quantize_dynamic_int8(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))
    float_folder = tmp_path / "float-marked-int8"
    shutil.copytree(int8_folder / "float32", float_folder)
    config = json.loads((float_folder / "config.json").read_text())
    (float_folder / "config.json").write_text(json.dumps(config | {"quantization": "dynamic-int8"}))
    with pytest.raises(ValueError, match="do not match"):  # float weights where int8 ones should be
        load_detector(float_folder)
    from deepfake_detector.int8_weights import float_state_dict

    with pytest.raises(ValueError, match="without a matching per-channel scale"):
        float_state_dict({"fc.weight.int8": torch.zeros(4, 3, dtype=torch.int8)})


def test_a_large_folder_is_written_in_shards_and_reloads_the_same_net(saved_nets, tmp_path):
    import shutil

    from deepfake_detector.int8_weights import pack
    from deepfake_detector.model import SHARD_INDEX, read_safetensors
    from training.hub import save_sharded

    folder, model, int8_net = saved_nets
    sharded = tmp_path / "sharded"
    shutil.copytree(folder, sharded, ignore=shutil.ignore_patterns("float32"))
    files = save_sharded(pack(model, int8_net), sharded, max_shard_bytes=4 * 1024 * 1024)
    assert len(files) > 1 and not (sharded / "model.safetensors").exists() and (sharded / SHARD_INDEX).is_file()
    assert all(file.stat().st_size < 4 * 1024 * 1024 + 3 * 1024 * 1024 for file in files)  # a shard: 4 MB, or one larger tensor
    whole, parts = read_safetensors(folder), read_safetensors(sharded)
    assert whole.keys() == parts.keys() and all(torch.equal(whole[name], parts[name]) for name in whole)
    face = torch.randn(1, 3, 128, 128)
    np.testing.assert_array_equal(load_detector(sharded).logits(face), load_detector(folder).logits(face))
    index = json.loads((sharded / SHARD_INDEX).read_text())
    index["weight_map"]["head.weight"] = "../model.safetensors"  # an index may name only files of its own folder
    (sharded / SHARD_INDEX).write_text(json.dumps(index))
    with pytest.raises(ValueError, match="inside the folder"):
        load_detector(sharded)


def _fused_copy(int8_folder, tmp_path, fusion: dict):
    """A copy of the tiny int8 CLIP folder fused with the bundled CNN as its member (config.json "fusion": `fusion`)."""
    import shutil

    from conftest import BUNDLED_MODEL
    from deepfake_detector.model import MEMBER_DIR
    from research.clip_probe import copy_member

    folder = tmp_path / "fused"
    shutil.copytree(int8_folder, folder, ignore=shutil.ignore_patterns("float32"))
    copy_member(BUNDLED_MODEL, folder / MEMBER_DIR)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"fusion": fusion}))
    return folder


@needs_corpus
def test_a_fused_folder_adds_its_members_weighted_margin(int8_folder, corpus_faces, tmp_path):
    from deepfake_detector.model import MEMBER_DIR, fake_margin
    from deepfake_detector.predict import crop_logits

    images, eval_tensor = corpus_faces
    fused = load_detector(_fused_copy(int8_folder, tmp_path, {"member": MEMBER_DIR, "weight": 0.7}))
    alone, member = load_detector(int8_folder), fused.member
    assert member is not None and member.test_time_flip and fused.member_weight == 0.7
    own = alone.logits(torch.stack([eval_tensor(image, alone.data_config) for image in images]))
    cnn = fake_margin(member.logits(torch.stack([eval_tensor(image, member.data_config) for image in images])))
    got = crop_logits(images, fused)
    np.testing.assert_allclose(fake_margin(got), fake_margin(own) + 0.7 * cnn, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), own.sum(1), rtol=1e-5, atol=1e-5)  # only the margin moves


@pytest.mark.parametrize("fusion", [{"member": "../elsewhere", "weight": 1.0}, {"member": "member", "weight": "high"},
                                    {"member": "member", "weight": float("nan")}, {"member": "member"}, ["member", 1.0]])
def test_a_bad_fusion_block_is_refused(int8_folder, tmp_path, fusion):
    with pytest.raises(ValueError, match="fusion"):
        load_detector(_fused_copy(int8_folder, tmp_path, fusion))


def test_an_int8_weights_folder_classifies_with_the_float_net_of_its_integers(saved_nets, tmp_path):
    """"quantization": "int8-weights": the same file as dynamic-int8, but no int8 copy: the float net rebuilt from the
    stored integers classifies (no per-call activation rounding), so a face's score does not depend on activation scales."""
    import shutil

    folder, model, int8_net = saved_nets
    copy = tmp_path / "int8-weights"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("float32"))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config | {"quantization": "int8-weights"}))
    detector, dynamic = load_detector(copy), load_detector(folder)
    assert detector.fast_net is None and dynamic.fast_net is not None
    face = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        np.testing.assert_array_equal(detector.logits(face), dynamic.net(face).numpy())  # the float net of the same integers
        loud = torch.cat([face, face * 6.0])
        np.testing.assert_allclose(detector.logits(loud)[0], detector.logits(face)[0], rtol=1e-4, atol=1e-4)  # batch-independent
