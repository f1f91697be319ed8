"""The preset table: integrity, errors, and resolution through tensorflow_hub's cache."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil

import pytest

from tlpipe.models import PRESETS, Preset, from_preset
from tlpipe.models.presets import import_required_packages
from tlpipe.models.plumbing.errors import ModelError

pytestmark = pytest.mark.quick

EXPECTED_FAMILIES = {
    "efficientnet_lite0": "/tensorflow/efficientnet/lite0/feature-vector/",
    "efficientnet_lite1": "/tensorflow/efficientnet/lite1/feature-vector/",
    "efficientnet_lite2": "/tensorflow/efficientnet/lite2/feature-vector/",
    "mobilenet_v2_100_224": "/google/imagenet/mobilenet_v2_100_224/feature_vector/",
    "mobilenet_v3_small_100_224": "/google/imagenet/mobilenet_v3_small_100_224/feature_vector/",
    "mobilenet_v3_large_100_224": "/google/imagenet/mobilenet_v3_large_100_224/feature_vector/",
    "efficientnet_b0": "/tensorflow/efficientnet/b0/feature-vector/",
    "efficientnet_v2_b0": "/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/",
    "resnet_v2_50": "/google/imagenet/resnet_v2_50/feature_vector/",
    "inception_v3": "/google/imagenet/inception_v3/feature_vector/",
    "bit_s_r50x1": "/google/bit/s-r50x1/",
    "bit_m_r50x1": "/google/bit/m-r50x1/",
    "nnlm_en_dim50": "/google/nnlm-en-dim50/",
    "nnlm_en_dim128": "/google/nnlm-en-dim128/",
    "universal_sentence_encoder": "/google/universal-sentence-encoder/",
    "bert_en_uncased_L12_H768_A12": "/tensorflow/bert_en_uncased_L-12_H-768_A-12/",
}


def test_table_holds_the_well_known_feature_vectors():
    for name, fragment in EXPECTED_FAMILIES.items():
        assert fragment in PRESETS[name].handle, name
    assert PRESETS["inception_v3"].input_size == (299, 299)
    assert PRESETS["mobilenet_v2_100_224"].input_size == (224, 224)
    # The offline builds: the variant of the same name, at tfhub.dev's input size for it.
    assert [(p.offline, p.input_size) for p in (PRESETS[f"efficientnet_lite{i}"] for i in range(3))] == [
        ("efficientnet_lite0", (224, 224)), ("efficientnet_lite1", (240, 240)), ("efficientnet_lite2", (260, 260))]
    assert sum(preset.offline is not None for preset in PRESETS.values()) == 3


def test_every_preset_is_consistent():
    handles = [preset.handle for preset in PRESETS.values()]
    assert len(set(handles)) == len(handles)
    for name, preset in PRESETS.items():
        assert preset.name == name
        assert preset.handle.startswith(("https://tfhub.dev/", "https://www.kaggle.com/models/"))
        assert preset.handle.rstrip("/").rsplit("/", 1)[1].isdigit(), f"{name}: handle must pin a version"
        assert preset.description
        if preset.modality == "image":
            height, width = preset.input_size
            assert height == width and height >= 96
            assert preset.preprocessor is None
        else:
            assert preset.modality == "text" and preset.input_size is None


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["inception_v3"].handle = "elsewhere"  # type: ignore[misc]


def test_layer_kwargs_follow_the_modality():
    assert PRESETS["inception_v3"].layer_kwargs() == {"input_shape": (299, 299, 3)}
    assert PRESETS["nnlm_en_dim50"].layer_kwargs() == {"input_dtype": "string"}
    bert = PRESETS["bert_en_uncased_L12_H768_A12"]
    assert bert.layer_kwargs() == {
        "input_dtype": "string",
        "preprocessor": "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3",
        "output_key": "pooled_output",
    }


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(ModelError) as raised:
        from_preset("mobilenet_v9")
    message = str(raised.value)
    assert "unknown preset 'mobilenet_v9'" in message
    assert all(name in message for name in PRESETS)


def test_missing_python_package_is_named():
    preset = Preset("custom", "https://tfhub.dev/x/y/1", None, "text", "needs ops", python_packages=("tlpipe_no_such_ops",))
    with pytest.raises(ModelError, match="needs the Python package 'tlpipe_no_such_ops'.*pip install tlpipe-no-such-ops"):
        import_required_packages(preset)


def test_from_preset_resolves_through_the_tfhub_cache(monkeypatch, tmp_path, keras_hub_module, tiny_images):
    # tensorflow_hub caches a handle under sha1(handle) in TFHUB_CACHE_DIR and then loads it without network.
    preset = PRESETS["mobilenet_v2_100_224"]
    cached = tmp_path / hashlib.sha1(preset.handle.encode("utf8")).hexdigest()
    shutil.copytree(keras_hub_module, cached)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    layer = from_preset("mobilenet_v2_100_224", input_shape=(16, 16, 3), name="base")
    assert layer.handle == preset.handle and layer.module_dir == str(cached) and layer.name == "base"
    assert layer(tiny_images[0][:2]).shape == (2, 8)
    assert from_preset("mobilenet_v2_100_224").input_size == (224, 224, 3)


def test_unreachable_preset_names_the_handle(monkeypatch, tmp_path):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # nothing listens there: fails at once, online or not
    with pytest.raises(ModelError, match="cannot load hub module 'https://tfhub.dev/google/nnlm-en-dim50/2'"):
        from_preset("nnlm_en_dim50")
