"""`HubFeatureVector`: a Keras 3 layer over a TF-Hub module that fine-tunes the module itself.

Why not the stock options: `hub.KerasLayer` is a Keras 2 (tf_keras) layer and
cannot live in a Keras 3 model; `keras.layers.TFSMLayer` copies the variables,
so training it never changes what the module computes. This layer loads the
module with `hub.load` (local folder, or a tfhub.dev / Kaggle handle through
tensorflow_hub's resolver and cache) and *adopts* the module's own
`tf.Variable`s: each becomes the storage of a Keras variable (the TensorFlow
backend keeps a `tf.Variable` it is given), so an optimizer step on the layer
moves exactly the values the module's restored functions read.

Trainability. Keras 3 files a variable as trainable or non-trainable once,
when the layer tracks it; only the variables filed as trainable follow the
layer's `trainable` flag later. The layer therefore files every variable that
the module lists in `trainable_variables` as trainable (batch-norm moving
statistics and other state stay non-trainable for ever) and then applies the
requested state per variable. `layer.trainable = True/False` unfreezes or
freezes the whole module (plain Keras semantics); `set_trainable` also
unfreezes only the top N blocks or the variables whose path matches a regular
expression. As with any Keras layer, re-compile the model after changing what
is trainable.

Blocks. A variable's path is its name in the module without the `:0` suffix,
e.g. `block3_conv/kernel`. A block is the group of trainable variables that
share the path without its last component (`block3_conv`), which for modules
made with Keras (either version) or TF-Slim is one layer; blocks are ordered
by their first variable in the module's `variables` list, which is the
network's order, so "the top N blocks" are the N blocks nearest the output.

Training policy (what the module's `training` argument receives):
- "inference" (default): always False, so batch norm uses its moving
  statistics and leaves them alone and dropout is off, also while
  fine-tuning; this is what the Keras transfer-learning guide recommends, and
  what keeps a small target set from wrecking the statistics learnt on the
  source data.
- "training": Keras' own `training` flag, but only while the layer is
  trainable (a frozen base always runs in inference mode, like Keras'
  BatchNormalization), the behaviour of `hub.KerasLayer`.

Modules in the legacy TF1 hub format are called through their "default"
signature, and plain SavedModels without a reusable `__call__` (e.g. from
`keras.Model.export`) through "serving_default"; both are for frozen use
only. Text modules take a batch of strings (`input_dtype="string"`),
optionally through a `preprocessor` module (BERT style) that turns strings
into the encoder's input dict.

The layer needs the TensorFlow backend of Keras 3.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import keras
import tensorflow as tf

from tlpipe.models._metadata import read_module_metadata
from tlpipe.models._tfhub import hub
from tlpipe.models.plumbing.errors import ModelError

TRAINING_POLICIES = ("inference", "training")
TF1_SIGNATURE = "default"
SERVING_SIGNATURE = "serving_default"
_SUFFIX = re.compile(r":\d+$")


def load_module(handle: str) -> tuple[Any, str]:
    """Resolve and load a hub module; returns (loaded object, resolved local folder).

    Any failure (unknown path, no network, not a SavedModel, corrupt files)
    becomes a ModelError that names the handle and the reason.
    """
    if not isinstance(handle, str) or not handle.strip():
        raise ModelError(
            f"hub handle must be a non-empty string (a local folder or a tfhub.dev / Kaggle URL); received {handle!r}"
        )
    try:
        module_dir = hub.resolve(handle)
        module = hub.load(module_dir)
    except Exception as error:  # every loader failure is reported the same way
        reason = f"{type(error).__name__}: {error}".strip().rstrip(".")
        raise ModelError(
            f"cannot load hub module {handle!r}: {reason}. Pass a folder holding a SavedModel "
            "(saved_model.pb) or a tfhub.dev / Kaggle handle reachable from this machine "
            "(or already in TFHUB_CACHE_DIR)."
        ) from error
    return module, module_dir


def variable_path(variable: tf.Variable) -> str:
    """A module variable's path: its name without the ':N' output suffix."""
    return _SUFFIX.sub("", variable.name)


def _block_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else path


def _unique(variables: Iterable[tf.Variable]) -> list[tf.Variable]:
    seen: set[int] = set()
    unique = []
    for variable in variables:
        if id(variable) not in seen:
            seen.add(id(variable))
            unique.append(variable)
    return unique


def _first_input_spec(module: Any, signature_name: str | None) -> tf.TensorSpec | None:
    """The TensorSpec of the module's (first) input when its signature names one."""
    if signature_name is not None:
        signature = module.signatures.get(signature_name)
        specs = list(signature.structured_input_signature[1].values()) if signature is not None else []
    else:
        call = getattr(module, "__call__", None)
        specs = [
            concrete.structured_input_signature[0][0]
            for concrete in getattr(call, "concrete_functions", [])
            if concrete.structured_input_signature[0]
        ]
    specs = [spec for spec in specs if isinstance(spec, tf.TensorSpec)]
    return specs[0] if specs else None


def is_tf1_module(module: Any) -> bool:
    """Whether `hub.load` read the module from the legacy TF1 hub format."""
    return bool(getattr(module, "_is_hub_module_v1", False))


def signature_to_call(module: Any) -> str | None:
    """The signature a module is called through, or None when it has a reusable `__call__`.

    TF1 hub modules are called through "default"; a SavedModel without
    `__call__` (e.g. from `keras.Model.export`) through "serving_default".
    Both are for frozen use only: a signature has no `training` argument and
    no list of trainable variables.
    """
    if is_tf1_module(module):
        return TF1_SIGNATURE
    if callable(module):
        return None
    return SERVING_SIGNATURE


def describe_inputs(
    module: Any,
    *,
    metadata: dict | None,
    input_shape: tuple | None = None,
    input_dtype: str | None = None,
) -> tuple[str, tuple[int, int, int] | None]:
    """The input dtype and (H, W, C) image size a module expects (size None when unknown or text).

    Explicit arguments win; then tlpipe's published metadata; then the
    module's own call signature.
    """
    spec = _first_input_spec(module, signature_to_call(module))
    if input_dtype is None:
        input_dtype = (metadata or {}).get("input_dtype") or (spec.dtype.name if spec is not None else "float32")
    if input_shape is not None:
        size = tuple(input_shape)
    elif metadata and metadata.get("input_size"):
        size = tuple(metadata["input_size"])
    elif spec is not None and spec.shape.rank is not None and spec.shape.rank > 1:
        size = tuple(spec.shape.as_list()[1:])
    else:
        size = None
    known = size is not None and len(size) == 3 and all(isinstance(d, int) and d > 0 for d in size)
    return str(input_dtype), (tuple(int(d) for d in size) if known and input_dtype != "string" else None)


def _accepts_training(module: Any) -> bool:
    """Whether the module's restored `__call__` takes a `training` argument."""
    for concrete in getattr(module.__call__, "concrete_functions", []):
        if "training" in concrete.function_type.parameters:
            return True
    return False


@keras.saving.register_keras_serializable(package="tlpipe")
class HubFeatureVector(keras.layers.Layer):
    """A TF-Hub feature vector (or any hub module) as a trainable Keras 3 layer.

    Args:
        handle: local folder of a hub module / SavedModel, or a tfhub.dev /
            Kaggle handle (resolved and cached by tensorflow_hub).
        trainable: whether the module's trainable variables train (all of
            them; use `set_trainable` for part of the module).
        training_policy: "inference" (default) or "training"; see the module
            docstring.
        arguments: extra keyword arguments passed on every call of the
            module (e.g. `{"batch_norm_momentum": 0.997}`).
        output_key: the item to return when the module returns a dict
            (default: "default" when present, else the only item).
        input_shape: per-example input shape, e.g. (224, 224, 3); needed
            when the module does not state its input size.
        input_dtype: "float32" for images, "string" for text; by default
            what the module's signature says.
        preprocessor: handle of a text preprocessing module (BERT style) run
            before the module; its output dict is the module's input.
    """

    def __init__(
        self,
        handle: str,
        trainable: bool = False,
        *,
        training_policy: str = "inference",
        arguments: dict | None = None,
        output_key: str | None = None,
        input_shape: tuple | None = None,
        input_dtype: str | None = None,
        preprocessor: str | None = None,
        **kwargs: Any,
    ):
        if keras.backend.backend() != "tensorflow":
            raise ModelError(f"HubFeatureVector needs Keras' TensorFlow backend; KERAS_BACKEND is {keras.backend.backend()!r}")
        if training_policy not in TRAINING_POLICIES:
            raise ModelError(f"training_policy {training_policy!r} is not one of {', '.join(TRAINING_POLICIES)}")
        super().__init__(trainable=bool(trainable), **kwargs)
        self.handle = handle
        self.training_policy = training_policy
        self.arguments = dict(arguments or {})
        self.output_key = output_key
        self.preprocessor = preprocessor
        module, module_dir = load_module(handle)
        self._module = module
        self.module_dir = module_dir
        self._preprocessor_module = load_module(preprocessor)[0] if preprocessor else None
        self.is_tf1_module = is_tf1_module(module)
        self.signature_name = signature_to_call(module)
        if self.signature_name is not None and self.signature_name not in getattr(module, "signatures", {}):
            raise ModelError(
                f"hub module {handle!r} has neither a reusable __call__ (TF2 hub format) nor a "
                f"{self.signature_name!r} signature to call"
            )
        self._accepts_training = self.signature_name is None and _accepts_training(module)
        self.input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.module_input_dtype, self._input_size = describe_inputs(
            self._preprocessor_module or module,
            metadata=read_module_metadata(module_dir),
            input_shape=self.input_shape_arg,
            input_dtype=input_dtype,
        )
        self._adopt_variables()
        if trainable:
            self.set_trainable(True)
        else:
            self.trainable = False
        self.built = True

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "trainable":
            # Keras' attribute tracking skips an assignment of the value the
            # attribute already has, so `layer.trainable = False` on a layer
            # built frozen (or `= True` after a partial unfreeze) would leave
            # the variables' own flags as they are. Always run the setter.
            keras.layers.Layer.trainable.fset(self, value)
            return
        super().__setattr__(name, value)

    # ----------------------------------------------------------------- setup

    def _adopt_variables(self) -> None:
        """Wrap each module variable in a Keras variable that uses it as storage (no copy)."""
        module_variables = _unique(getattr(self._module, "variables", []))
        trainable_ids = set()
        if self.signature_name is None:
            trainable_ids = {id(v) for v in getattr(self._module, "trainable_variables", [])}
        adopted = []
        with keras.name_scope(self.name):
            for variable in module_variables:
                adopted.append(
                    keras.Variable(
                        variable,
                        trainable=id(variable) in trainable_ids,
                        autocast=False,
                        name=variable_path(variable).replace("/", "."),
                    )
                )
        for keras_variable, variable in zip(adopted, module_variables):
            if keras_variable.value is not variable:
                raise RuntimeError(f"Keras copied module variable {variable.name!r} instead of adopting it")
        self._paths = {id(kv): variable_path(v) for kv, v in zip(adopted, module_variables)}
        # Assigning the list makes Keras track (and file) every variable once, now.
        self._module_weights = adopted

    # ------------------------------------------------------------ properties

    @property
    def module(self) -> Any:
        """The object `hub.load` returned; its variables are this layer's weights."""
        return self._module

    @property
    def input_size(self) -> tuple[int, int, int] | None:
        """(H, W, C) the module expects, when known; None for text or unknown sizes."""
        return self._input_size

    @property
    def variable_paths(self) -> list[str]:
        """Paths of all module variables, in module order."""
        return [self._paths[id(v)] for v in self._module_weights]

    def blocks(self) -> list[tuple[str, list[str]]]:
        """The module's fine-tunable blocks, bottom to top: (block name, variable paths)."""
        grouped: dict[str, list[str]] = {}
        for variable in self._fine_tunable():
            path = self._paths[id(variable)]
            grouped.setdefault(_block_of(path), []).append(path)
        return list(grouped.items())

    def trainable_paths(self) -> list[str]:
        """Paths of the module variables that train now."""
        if not self.trainable:
            return []
        return [self._paths[id(v)] for v in self._fine_tunable() if v.trainable]

    def _fine_tunable(self) -> list[keras.Variable]:
        # The variables Keras filed as trainable: exactly the module's trainable_variables.
        return [v for v in self._trainable_variables if id(v) in self._paths]

    # ---------------------------------------------------------- trainability

    def set_trainable(self, trainable: bool, *, top_n: int | None = None, pattern: str | None = None) -> list[str]:
        """Freeze the module, or unfreeze all of it, its top `top_n` blocks, or the variables matching `pattern`.

        `pattern` is a regular expression searched in each variable path
        (see `variable_paths`); blocks are listed by `blocks()`. Returns the
        paths of the variables that now train. Re-compile the model
        afterwards, as for any change of `trainable` in Keras. The layer's
        config records only `trainable` (all or nothing): after re-loading a
        saved model, call `set_trainable` again to restore a partial choice.
        """
        if top_n is not None and pattern is not None:
            raise ModelError(f"set_trainable takes top_n or pattern, not both (received top_n={top_n!r}, pattern={pattern!r})")
        if not trainable:
            if top_n is not None or pattern is not None:
                raise ModelError("top_n and pattern choose what to unfreeze; set_trainable(False) freezes the whole module")
            self.trainable = False
            return []
        self._check_fine_tunable()
        candidates = self._fine_tunable()
        if top_n is not None:
            selected = self._select_top_blocks(top_n)
        elif pattern is not None:
            selected = self._select_pattern(pattern)
        else:
            selected = {id(v) for v in candidates}
        self.trainable = True
        for variable in candidates:
            variable.trainable = id(variable) in selected
        return self.trainable_paths()

    def _check_fine_tunable(self) -> None:
        if self.is_tf1_module:
            raise ModelError(
                f"hub module {self.handle!r} is in the legacy TF1 hub format, which can only be used frozen "
                "(TF2 cannot restore its update ops and training graph); use a TF2 version of the module "
                "or keep trainable=False"
            )
        if self.signature_name is not None:
            raise ModelError(
                f"hub module {self.handle!r} has no reusable __call__, only the {self.signature_name!r} signature, "
                "which can only be used frozen; publish it in the TF2 hub format (export_hub_module) to fine-tune it"
            )
        if not self._fine_tunable():
            raise ModelError(
                f"hub module {self.handle!r} lists no trainable_variables, so there is nothing to fine-tune; "
                "keep it frozen"
            )

    def _select_top_blocks(self, top_n: int) -> set[int]:
        blocks = self.blocks()
        if isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= len(blocks):
            raise ModelError(
                f"top_n={top_n!r} blocks requested, but hub module {self.handle!r} has {len(blocks)} fine-tunable "
                f"blocks; allowed: an integer from 1 to {len(blocks)} (blocks, bottom to top: "
                f"{_abbreviate([name for name, _ in blocks])})"
            )
        chosen = {path for _, paths in blocks[-top_n:] for path in paths}
        return {id(v) for v in self._fine_tunable() if self._paths[id(v)] in chosen}

    def _select_pattern(self, pattern: str) -> set[int]:
        try:
            regex = re.compile(pattern)
        except re.error as error:
            raise ModelError(f"pattern {pattern!r} is not a valid regular expression: {error}") from error
        selected = {id(v) for v in self._fine_tunable() if regex.search(self._paths[id(v)])}
        if not selected:
            paths = [self._paths[id(v)] for v in self._fine_tunable()]
            raise ModelError(
                f"pattern {pattern!r} matches none of the fine-tunable variables of hub module {self.handle!r}: "
                f"{_abbreviate(paths)}"
            )
        return selected

    # ------------------------------------------------------------------ call

    def _module_training(self, training: bool | None) -> bool:
        if self.training_policy == "training":
            return bool(training) and bool(self.trainable_paths())
        return False

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if self._preprocessor_module is not None:
            inputs = self._preprocessor_module(inputs)
        if self.signature_name is not None:
            outputs = self._call_through_signature(inputs)
        elif self._accepts_training:
            outputs = self._module(inputs, training=self._module_training(training), **self.arguments)
        else:
            outputs = self._module(inputs, **self.arguments)
        if self.trainable_paths():
            for regularization_loss in getattr(self._module, "regularization_losses", []):
                self.add_loss(regularization_loss())
        return self._select_output(outputs)

    def _call_through_signature(self, inputs: Any) -> Any:
        signature = self._module.signatures[self.signature_name]
        if isinstance(inputs, dict):
            return signature(**inputs, **self.arguments)
        names = [name for name in signature.structured_input_signature[1] if name not in self.arguments]
        if len(names) != 1:
            raise ModelError(
                f"hub module {self.handle!r}: its {self.signature_name!r} signature takes inputs {names}; "
                "pass a dict of them or fix the others through `arguments`"
            )
        return signature(**{names[0]: inputs}, **self.arguments)

    def _select_output(self, outputs: Any) -> Any:
        if not isinstance(outputs, dict):
            if self.output_key is not None:
                raise ModelError(f"output_key={self.output_key!r} given, but hub module {self.handle!r} returns a single tensor")
            return outputs
        key = self.output_key
        if key is None:
            key = "default" if "default" in outputs or len(outputs) != 1 else next(iter(outputs))
        if key not in outputs:
            raise ModelError(
                f"hub module {self.handle!r} returns a dict with keys {sorted(outputs)}; "
                f"output_key={self.output_key!r} must name one of them"
            )
        return outputs[key]

    # ------------------------------------------------------------- config

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            handle=self.handle,
            training_policy=self.training_policy,
            arguments=dict(self.arguments) or None,
            output_key=self.output_key,
            input_shape=list(self.input_shape_arg) if self.input_shape_arg is not None else None,
            input_dtype=self.module_input_dtype,
            preprocessor=self.preprocessor,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "HubFeatureVector":
        config = dict(config)
        if config.get("input_shape") is not None:
            config["input_shape"] = tuple(config["input_shape"])
        return cls(**config)


def _abbreviate(items: list[str], limit: int = 12) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[: limit // 2] + ["..."] + items[-limit // 2 :]) + f" ({len(items)} in all)"
