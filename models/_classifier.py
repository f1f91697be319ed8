"""What the fit loop and the serving export need to know about a tlpipe classifier.

tlpipe's builders return a `ClassifierTask` (models/task.py: `Classifier`,
`MultiTaskClassifier`), which keeps its base (`base`) and the base's output
tensor (`features`) as attributes and owns its losses; a plain
Keras model written by hand can take part too when it names its base layer
`feature_extractor` and the head's last Dense layer `classifier`. This module
finds the base, tells whether the classifier emits probabilities or logits,
and cuts the head out as a model of its own over the base's outputs (sharing
the head's layers, so training one trains the other).
"""

from __future__ import annotations

from typing import Any

import keras

from tlpipe.models.builders import BASE_LAYER_NAME as BASE_LAYER
from tlpipe.models.builders import CLASSIFIER_NAME as CLASSIFIER_LAYER
from tlpipe.models.plumbing.errors import ModelError
from tlpipe.models.task import ACCURACY, ClassifierTask


def base_layer(model: keras.Model) -> keras.layers.Layer:
    """The model's base network (the pre-trained or from-scratch feature extractor)."""
    if isinstance(model, ClassifierTask):
        return model.base
    return _named_layer(model, BASE_LAYER, "the base network (a HubFeatureVector or a from-scratch network)")


def outputs_logits(model: keras.Model) -> bool:
    """True when the `classifier` layer has no activation (logits), False for softmax probabilities."""
    if isinstance(model, ClassifierTask):
        return False  # its heads end in softmax
    classifier = _named_layer(model, CLASSIFIER_LAYER, "the head's last Dense layer")
    activation = keras.activations.serialize(classifier.activation)
    if activation not in ("softmax", "linear"):
        raise ModelError(
            f"the '{CLASSIFIER_LAYER}' layer's activation is {activation!r}; "
            "a tlpipe classifier ends in 'softmax' (probabilities) or 'linear' (logits)"
        )
    return activation == "linear"


def compile_objective(model: keras.Model) -> dict[str, Any]:
    """`compile` arguments: the model's own (models/task.py), else one sparse cross-entropy and its accuracy."""
    if isinstance(model, ClassifierTask):
        return model.compile_objective()
    return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model)),
            "metrics": [keras.metrics.SparseCategoricalAccuracy(name=ACCURACY)]}


def caches_features(model: keras.Model) -> bool:
    """Whether a head-only model over base features computed once can train `model`'s head."""
    return model.caches_features if isinstance(model, ClassifierTask) else True


def history_extras(model: keras.Model, logs: dict[str, Any]) -> dict[str, Any]:
    """What one epoch's history entry of `model` records beyond loss and accuracy."""
    return model.history_extras(logs) if isinstance(model, ClassifierTask) else {}


def head_model(model: keras.Model) -> keras.Model:
    """A model from the base's output to the classifier's output, sharing the head's layers.

    Training it on pre-computed base outputs trains the head of `model` itself;
    this is what makes cached frozen features possible.
    """
    return keras.Model(_base_output(model), model.outputs, name=f"{model.name}_head")


def feature_model(model: keras.Model) -> keras.Model:
    """A model from the inputs to the base's output, for computing features once."""
    return keras.Model(model.inputs, _base_output(model), name=f"{model.name}_features")


def _base_output(model: keras.Model) -> keras.KerasTensor:
    """The base's output tensor in `model`'s graph.

    A `Classifier` keeps it. For a hand-written model, `base.output` of a nested
    model is the nested model's own output tensor, not the one in this graph,
    hence the look at the base's call nodes.
    """
    if isinstance(model, ClassifierTask):
        return model.features
    base = base_layer(model)
    nodes = [node for node in base._inbound_nodes if node.operation is base]
    if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
        raise ModelError(
            f"cannot separate the head from model {model.name!r}: its '{BASE_LAYER}' layer must be called "
            f"exactly once and return one tensor (it is called {len(nodes)} time(s))"
        )
    return nodes[0].output_tensors[0]


def _named_layer(model: keras.Model, name: str, what: str) -> keras.layers.Layer:
    try:
        return model.get_layer(name)
    except ValueError:
        raise ModelError(
            f"model {model.name!r} has no layer named '{name}' ({what}); build it with "
            "tlpipe.models.build_transfer_model / build_baseline_model or name its layers so"
        ) from None
