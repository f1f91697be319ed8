"""Model builders: the transferred model, its from-scratch baseline, and the small CNN.

Both classifiers share one head (dropout, optional dense layers, a softmax
`classifier`) on a base layer named `feature_extractor`, so that they differ
only in where the base's weights come from:

- `build_transfer_model`: the base is a frozen `HubFeatureVector` over a hub
  handle or preset;
- `build_baseline_model`: the base is randomly initialised: the module's own
  architecture when it is known (tlpipe-published modules record it), else a
  small CNN for images or a hashed embedding bag for text. Which one was used
  and why is logged and kept on the model as `baseline_architecture` and
  `baseline_reason`.

Images come in as float32 in [0, 1] with shape (H, W, C); text as one string
per example.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Sequence

import keras

from tlpipe.models.plumbing.progress import log
from tlpipe.models._metadata import read_module_metadata
from tlpipe.models.hub_layer import HubFeatureVector, describe_inputs, load_module
from tlpipe.models.presets import get_preset, import_required_packages, loadable_handle
from tlpipe.models.text_layers import HashedEmbeddingBag
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.task import ClassifierTask

BASE_LAYER_NAME = "feature_extractor"
CLASSIFIER_NAME = "classifier"
BASELINE_ARCHITECTURES = ("same", "small_cnn")
TEXT_BAG_BUCKETS = 4096
TEXT_BAG_DIM = 64


def build_small_cnn(
    input_shape: Sequence[int], filters: Sequence[int] = (32, 64, 128), *, convs_per_block: int = 1,
    name: str = "small_cnn",
) -> keras.Model:
    """A feature extractor: blocks of `convs_per_block` conv-BN-ReLU layers (2x2 max pooling between blocks),
    then global average pooling.

    Layers are named `block{i}_conv|bn|relu` (with a `_{j}` suffix for the
    j-th conv of a block when there are several) and `block{i}_pool`, so a
    module published from it has one fine-tuning block per layer with
    readable paths.
    """
    if len(tuple(input_shape)) != 3:
        raise ModelError(f"build_small_cnn needs input_shape (height, width, channels); received {tuple(input_shape)!r}")
    if not filters or any(int(f) < 1 for f in filters):
        raise ModelError(f"filters must be a non-empty list of positive integers; received {list(filters)!r}")
    if isinstance(convs_per_block, bool) or not isinstance(convs_per_block, int) or convs_per_block < 1:
        raise ModelError(f"convs_per_block must be an integer >= 1; received {convs_per_block!r}")
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = inputs
    for i, width in enumerate(filters, start=1):
        for j in range(1, convs_per_block + 1):
            suffix = f"_{j}" if convs_per_block > 1 else ""
            x = keras.layers.Conv2D(int(width), 3, padding="same", use_bias=False, name=f"block{i}_conv{suffix}")(x)
            x = keras.layers.BatchNormalization(name=f"block{i}_bn{suffix}")(x)
            x = keras.layers.ReLU(name=f"block{i}_relu{suffix}")(x)
        if i < len(filters):
            x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    outputs = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, outputs, name=name)


def _check_head(num_classes: int, dropout: float, hidden_units: Sequence[int]) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ModelError(f"num_classes must be an integer >= 2; received {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"dropout must be in [0, 1); received {dropout!r}")
    if any(int(units) < 1 for units in hidden_units):
        raise ModelError(f"hidden_units must be positive integers; received {list(hidden_units)!r}")


def _head(features: Any, num_classes: int, dropout: float, hidden_units: Sequence[int]) -> Any:
    x = features
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(int(units), activation="relu", name=f"head_dense_{i}")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name=CLASSIFIER_NAME)(x)


def _require_size(input_size: Sequence[int] | None, source: str) -> tuple[int, ...]:
    if input_size is None:
        raise ModelError(
            f"the input size of {source!r} is unknown (the module does not state it); pass input_shape=(height, width, channels)"
        )
    return tuple(input_size)


def _model_input(input_dtype: str, input_size: Sequence[int] | None, source: str) -> Any:
    if input_dtype == "string":
        return keras.Input(shape=(), dtype="string", name="text")
    return keras.Input(shape=_require_size(input_size, source), dtype="float32", name="image")


def base_on_input(base: keras.layers.Layer, input_dtype: str, input_shape: Sequence[int] | None,
                  source: str) -> tuple[Any, Any]:
    """(model input, the base's features on it) for a model built over `base`; ModelError naming `source`
    when the base does not accept that input."""
    inputs = _model_input(input_dtype, input_shape, source)
    try:
        return inputs, base(inputs)
    except (ValueError, TypeError) as error:
        raise ModelError(
            f"the base of {source!r} does not accept {inputs.dtype} inputs of shape {tuple(inputs.shape)}: {error}"
        ) from error


@keras.saving.register_keras_serializable(package="tlpipe")
class Classifier(ClassifierTask):
    """A base network and a new classification head on its features.

    As keras-hub's Task over a Backbone: the model owns its head, keeps its
    base as `base` and the base's output in its graph as `features`, so the
    fit loop, the feature cache and the regularisers find both without
    looking layers up by name (models/task.py). `get_config` mirrors `__init__`.
    """

    def __init__(self, base: keras.layers.Layer, num_classes: int, *, input_dtype: str = "float32",
                 input_shape: Sequence[int] | None = None, dropout: float = 0.2,
                 hidden_units: Sequence[int] = (), **kwargs: Any):
        _check_head(num_classes, dropout, hidden_units)
        inputs, features = base_on_input(base, input_dtype, input_shape, kwargs.get("name") or base.name)
        outputs = _head(features, num_classes, dropout, hidden_units)
        super().__init__(inputs, outputs, base=base, features=features, input_dtype=input_dtype,
                         input_shape=input_shape, **kwargs)
        self.num_classes = num_classes
        self.dropout = dropout
        self.hidden_units = tuple(int(units) for units in hidden_units)

    def get_config(self) -> dict[str, Any]:
        return {
            "base": keras.saving.serialize_keras_object(self.base), "num_classes": self.num_classes,
            "input_dtype": self.base_input_dtype, "input_shape": self.base_input_shape, "dropout": self.dropout,
            "hidden_units": list(self.hidden_units), "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Classifier":
        config = copy.deepcopy(config)  # deserializing consumes the nested config
        base = keras.saving.deserialize_keras_object(config.pop("base"))
        return cls(base, **config)


def build_transfer_model(
    handle_or_preset: str,
    num_classes: int,
    *,
    dropout: float = 0.2,
    hidden_units: Sequence[int] = (),
    input_shape: Sequence[int] | None = None,
    training_policy: str = "inference",
    name: str | None = None,
    **layer_kwargs: Any,
) -> keras.Model:
    """A classifier: frozen hub feature vector `feature_extractor` + head ending in softmax `classifier`.

    `handle_or_preset` is a preset name (see `PRESETS`) or a hub handle;
    `layer_kwargs` go to `HubFeatureVector` (e.g. `output_key`, `arguments`).
    """
    _check_head(num_classes, dropout, hidden_units)
    base = hub_base(handle_or_preset, input_shape=input_shape, training_policy=training_policy, **layer_kwargs)
    return Classifier(base, num_classes, input_dtype=base.module_input_dtype, input_shape=base.input_size,
                      dropout=dropout, hidden_units=hidden_units, name=name or "transfer")


def hub_base(handle_or_preset: str, *, input_shape: Sequence[int] | None = None, training_policy: str = "inference",
             **layer_kwargs: Any) -> HubFeatureVector:
    """The frozen `feature_extractor` of a transfer model: a `HubFeatureVector` over a handle or preset."""
    preset = get_preset(handle_or_preset)
    kwargs = dict(layer_kwargs)
    handle = handle_or_preset
    if preset is not None:
        import_required_packages(preset)
        kwargs = {**preset.layer_kwargs(), **kwargs}
        handle = loadable_handle(preset)
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    base = HubFeatureVector(handle, trainable=False, training_policy=training_policy, name=BASE_LAYER_NAME, **kwargs)
    if base.module_input_dtype != "string":
        _require_size(base.input_size, handle_or_preset)
    return base


def _describe_base(handle_or_preset: str, input_shape: Sequence[int] | None) -> tuple[str, tuple | None, dict | None]:
    """(input dtype, image size, tlpipe metadata or None) of the base, without downloading presets."""
    preset = get_preset(handle_or_preset)
    if preset is not None:
        if preset.modality == "text":
            return "string", None, None
        size = tuple(input_shape) if input_shape is not None else (*preset.input_size, 3) if preset.input_size else None
        return "float32", size, None
    module, module_dir = load_module(handle_or_preset)
    metadata = read_module_metadata(module_dir)
    dtype, size = describe_inputs(
        module, metadata=metadata, input_shape=tuple(input_shape) if input_shape is not None else None
    )
    return dtype, size, metadata


def _same_architecture(metadata: dict, input_shape: Sequence[int] | None) -> keras.Model:
    """The published module's network, rebuilt from its config with fresh random weights."""
    architecture = copy.deepcopy(metadata["architecture"])
    architecture["config"]["name"] = BASE_LAYER_NAME
    network = keras.saving.deserialize_keras_object(architecture)
    own_shape = tuple(network.inputs[0].shape[1:])
    if input_shape is not None and tuple(input_shape) != own_shape:
        raise ModelError(
            f"input_shape={tuple(input_shape)!r} differs from the recorded architecture's input shape {own_shape!r}; "
            "leave input_shape unset or use architecture='small_cnn'"
        )
    return network


def _configured_network(
    input_dtype: str, input_size: Sequence[int] | None, cnn_filters: Sequence[int], source: str,
    resize_to: Sequence[int] | None = None,
) -> tuple[keras.Model, str, str]:
    """The configured from-scratch network: (network, its kind, a description).

    `resize_to` (height, width) makes the small CNN see the images resized
    (area-averaged) to that size inside the model, which still takes the data's size.
    """
    if input_dtype == "string":
        network = keras.Sequential(
            [keras.Input(shape=(), dtype="string"), HashedEmbeddingBag(TEXT_BAG_BUCKETS, TEXT_BAG_DIM)],
            name=BASE_LAYER_NAME,
        )
        return network, "embedding_bag", f"a hashed embedding bag ({TEXT_BAG_BUCKETS} buckets, {TEXT_BAG_DIM}-d)"
    shape = _require_size(input_size, source)
    description = f"a small CNN with filters {list(cnn_filters)}"
    if resize_to is None or tuple(resize_to) == tuple(shape[:2]):
        return build_small_cnn(shape, cnn_filters, name=BASE_LAYER_NAME), "small_cnn", description
    inputs = keras.Input(shape=shape, name="image")
    resized = keras.layers.Resizing(*resize_to, interpolation="area", name="resize")(inputs)
    cnn = build_small_cnn((*resize_to, shape[-1]), cnn_filters, name="small_cnn")
    network = keras.Model(inputs, cnn(resized), name=BASE_LAYER_NAME)
    return network, "small_cnn", f"{description} on the images resized to {list(resize_to)}"


def build_baseline_model(
    handle_or_preset: str,
    num_classes: int,
    *,
    architecture: Literal["same", "small_cnn"] = "same",
    cnn_filters: Sequence[int] = (32, 64, 128),
    dropout: float = 0.2,
    hidden_units: Sequence[int] = (),
    input_shape: Sequence[int] | None = None,
    name: str | None = None,
    resize_to: Sequence[int] | None = None,
) -> keras.Model:
    """The from-scratch competitor of `build_transfer_model(handle_or_preset, ...)`: same head, random base.

    architecture "same" rebuilds the module's own network when its config is
    recorded (modules published by `export_hub_module`) and rebuildable here;
    otherwise, and for "small_cnn", images get `build_small_cnn(cnn_filters)`
    and text a hashed embedding bag; `resize_to` (height, width) has the small
    CNN see the images resized to that size inside the model.
    """
    _check_head(num_classes, dropout, hidden_units)
    network, input_dtype, used, reason = baseline_network(handle_or_preset, architecture=architecture,
                                                          cnn_filters=cnn_filters, input_shape=input_shape,
                                                          resize_to=resize_to)
    model = Classifier(network, num_classes, input_dtype=input_dtype, input_shape=tuple(network.inputs[0].shape[1:]),
                       dropout=dropout, hidden_units=hidden_units, name=name or "baseline")
    model.baseline_architecture = used
    model.baseline_reason = reason
    log(f"baseline for {handle_or_preset!r}: {used} ({reason})")
    return model


def baseline_network(
    handle_or_preset: str, *, architecture: Literal["same", "small_cnn"] = "same",
    cnn_filters: Sequence[int] = (32, 64, 128), input_shape: Sequence[int] | None = None,
    resize_to: Sequence[int] | None = None,
) -> tuple[keras.Model, str, str, str]:
    """The randomly initialised `feature_extractor` of a baseline: (network, input dtype, kind used, why)."""
    if architecture not in BASELINE_ARCHITECTURES:
        raise ModelError(f"architecture {architecture!r} is not one of {', '.join(BASELINE_ARCHITECTURES)}")
    input_dtype, input_size, metadata = _describe_base(handle_or_preset, input_shape)
    network = None
    if architecture == "small_cnn":
        reason = "architecture 'small_cnn' requested"
    elif not (metadata and metadata.get("architecture")):
        reason = f"the architecture of {handle_or_preset!r} is not recorded (only modules published by tlpipe carry it)"
    else:
        try:
            network = _same_architecture(metadata, input_shape)
            used, reason = "same", f"rebuilt the architecture recorded in {handle_or_preset!r} with random weights"
        except (TypeError, ValueError) as error:  # e.g. a custom layer not importable here
            reason = f"the architecture recorded in {handle_or_preset!r} cannot be rebuilt here ({error})"
    if network is None:
        network, used, description = _configured_network(input_dtype, input_size, cnn_filters, handle_or_preset,
                                                         resize_to)
        reason = f"{reason}: using {description}"
    return network, input_dtype, used, reason
