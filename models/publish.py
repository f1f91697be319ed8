"""Publish a Keras model's feature extractor as a TF-Hub module (TF2 reusable SavedModel).

The folder written here is what a user would upload to Kaggle Models / serve
from a bucket: `hub.load` returns an object with

    __call__(inputs, training=False)   the features (training=True runs batch
                                       norm and dropout in training mode)
    variables, trainable_variables     the module's tf.Variables
    regularization_losses              zero-argument functions, one per
                                       regularized weight

plus a `serving_default` signature (so `saved_model_cli` and
`keras.layers.TFSMLayer` also read it), optionally a `source_probabilities`
signature (the source task's classifier over the same inputs, which
transferability scores such as LEEP and NCE need) and tlpipe's metadata in
`assets.extra/tlpipe_module.json`: the input size and dtype, the feature size
and the Keras architecture config, from which the baseline builder rebuilds
the same network randomly initialised.

What the module lists as trainable is what is trainable in the Keras model at
publishing time: freeze layers first to publish them as not fine-tunable.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Sequence

import keras
import tensorflow as tf

from tlpipe.models.plumbing.artifacts import atomic_output_dir
from tlpipe.models._metadata import write_module_metadata
from tlpipe.models.plumbing.errors import ModelError

SERVING_SIGNATURE = "serving_default"
SOURCE_SIGNATURE = "source_probabilities"
SOURCE_OUTPUT = "probabilities"


def _input_spec(model: keras.Model) -> tf.TensorSpec:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"a feature extractor to publish must have one input and one output; model {model.name!r} has "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs"
        )
    tensor = model.inputs[0]
    return tf.TensorSpec(shape=tensor.shape, dtype=tf.as_dtype(tensor.dtype), name="inputs")


def _resolve_input_size(spec: tf.TensorSpec, input_size: Sequence[int] | None) -> list[int] | None:
    """The (H, W, C) the module expects: the model's fixed input shape or the one passed."""
    model_shape = spec.shape.as_list()[1:]
    if spec.dtype == tf.string:
        if input_size is not None:
            raise ModelError(f"input_size={input_size!r} given for a model with string (text) input; leave it unset")
        return None
    if input_size is None:
        return model_shape if len(model_shape) == 3 and None not in model_shape else None
    size = [int(d) for d in input_size]
    if len(size) == 2 and len(model_shape) == 3 and model_shape[-1] is not None:
        size.append(model_shape[-1])
    if len(size) != 3 or min(size) < 1:
        raise ModelError(f"input_size={input_size!r} must be (height, width) or (height, width, channels) of positive integers")
    if any(m is not None and m != s for m, s in zip(model_shape, size)) or len(model_shape) != 3:
        raise ModelError(f"input_size={input_size!r} does not fit the model's input shape {tuple(model_shape)}")
    return size


def _regularization_losses(model: keras.Model) -> list[Callable[[], tf.Tensor]]:
    """One traced zero-argument function per regularized trainable weight."""

    def loss_of(variable: keras.Variable, regularizer: Any) -> Callable[[], tf.Tensor]:
        @tf.function(input_signature=[])
        def loss() -> tf.Tensor:
            return tf.cast(regularizer(variable.value), tf.float32)

        return loss

    return [
        loss_of(variable, variable.regularizer)
        for variable in model.trainable_weights
        if getattr(variable, "regularizer", None) is not None
    ]


def _hub_object(model: keras.Model, spec: tf.TensorSpec) -> tuple[Any, Any]:
    """The trackable root saved as the module, and its serving concrete function."""
    root = tf.__internal__.tracking.AutoTrackable()
    # The underlying tf.Variables, which is what hub.load hands back and what
    # the traced functions capture.
    root.variables = [v.value for v in model.variables]
    root.trainable_variables = [v.value for v in model.trainable_weights]
    root.regularization_losses = _regularization_losses(model)

    @tf.function
    def call(inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        return model(inputs, training=training)

    call.get_concrete_function(spec, training=False)
    call.get_concrete_function(spec, training=True)
    root.__call__ = call

    @tf.function(input_signature=[spec])
    def serve(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"default": model(inputs, training=False)}

    return root, serve.get_concrete_function()


def _source_signature(source_classifier: keras.Model, spec: tf.TensorSpec) -> Any:
    """The `source_probabilities` signature: the source classifier's class probabilities for a batch of inputs."""
    classifier_spec = _input_spec(source_classifier)
    if classifier_spec.dtype != spec.dtype or not classifier_spec.shape.is_compatible_with(spec.shape):
        raise ModelError(
            f"the source classifier's input {classifier_spec.shape} {classifier_spec.dtype.name} differs from the "
            f"feature extractor's {spec.shape} {spec.dtype.name}; both must take the same inputs"
        )

    @tf.function(input_signature=[spec])
    def probabilities(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return {SOURCE_OUTPUT: source_classifier(inputs, training=False)}

    return probabilities.get_concrete_function()


def source_probabilities_function(module: Any) -> Optional[Callable[[tf.Tensor], tf.Tensor]]:
    """A loaded module's source classifier (inputs -> class probabilities), or None when it carries none."""
    signature = getattr(module, "signatures", {}).get(SOURCE_SIGNATURE)
    if signature is None:
        return None
    return lambda inputs: signature(inputs=inputs)[SOURCE_OUTPUT]


def export_hub_module(feature_extractor: keras.Model, export_dir: str, *, input_size: Sequence[int] | None = None,
                      source_classifier: Optional[keras.Model] = None,
                      source_classes: Optional[Sequence[str]] = None) -> str:
    """Publish `feature_extractor` as a TF2 hub module in `export_dir` (atomically); returns the folder.

    `input_size` ((H, W) or (H, W, C)) records the input size when the model's
    input shape leaves it open; it must agree with a fixed input shape.
    `source_classifier` (same inputs, softmax probabilities of the source
    classes `source_classes`) is saved as the `source_probabilities` signature.
    """
    if not isinstance(feature_extractor, keras.Model):
        raise ModelError(f"export_hub_module needs a keras.Model; received {type(feature_extractor).__name__}")
    spec = _input_spec(feature_extractor)
    size = _resolve_input_size(spec, input_size)
    root, serving = _hub_object(feature_extractor, spec)
    signatures = {SERVING_SIGNATURE: serving}
    if source_classifier is not None:
        signatures[SOURCE_SIGNATURE] = _source_signature(source_classifier, spec)
        # The classifier's own weights (its head), so that the saved signature can capture them.
        root.source_variables = [v.value for v in source_classifier.variables]
    metadata = {
        "input_size": size,
        "input_dtype": spec.dtype.name,
        "output_size": feature_extractor.outputs[0].shape[-1],
        "keras_version": keras.__version__,
        "name": feature_extractor.name,
        "architecture": keras.saving.serialize_keras_object(feature_extractor),
    }
    if source_classifier is not None:
        metadata["source_signature"] = SOURCE_SIGNATURE
        metadata["source_classes"] = list(source_classes) if source_classes is not None else None
    export_dir = os.path.abspath(export_dir)
    with atomic_output_dir(export_dir) as tmp_dir:
        tf.saved_model.save(root, tmp_dir, signatures=signatures)
        write_module_metadata(tmp_dir, metadata)
    return export_dir
