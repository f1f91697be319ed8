"""Component declarations: each step says once what it reads, takes and writes.

In the spirit of TFX's ComponentSpec, a `ComponentSpec` names a step's config
sections (typed dataclasses), its run-time parameters and where each one lands,
its input and output artifacts, and the executor function that does the work.
The executor receives one `StepArgs` (TFX's FnArgs): the sections already merged
with the run-time values, the compile-time options, and the artifact folders.

Everything else is generated from the declarations by the pipeline layer: the
kfp component functions, the in-process adapter, and the cache key. A step's
cache key is exactly its own sections, options, run-time parameters and input
artifacts, so changing an evaluator setting re-runs the evaluator and what
follows, never ingest, transform or the trainers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
from typing import Any, Callable, Literal, Mapping, Optional

from tlpipe.components.config_schema import from_dict, to_dict
from tlpipe.models.plumbing.example_format import METADATA_FILE

ArtifactKind = Literal["dataset", "model", "artifact"]
OPTION_PREFIX = "option:"
# In the output of a resumable step: the name of its work folder, which says what the output was made from.
WORK_KEY_FILE = "work_key.txt"
GROUP_SEPARATOR = "__"

@dataclasses.dataclass(frozen=True)
class ArtifactSpec:
    """One input or output artifact folder of a step.

    A `many` input is a named group (e.g. every trained model): the graph gives
    it a mapping, and each entry becomes an input of its own. A `collected`
    group is one whose entries a fan-out makes (Kubeflow's ParallelFor): in a
    kfp pipeline the graph gives it `dsl.Collected(...)`, one list input; the
    executor sees it as a group either way (keyed by position under kfp).
    """

    name: str
    kind: ArtifactKind = "artifact"
    many: bool = False
    collected: bool = False


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """A run-time parameter (a Kubeflow run input) and the config value it replaces.

    `target` is `section.field[.key]` (e.g. `ingest.shots.train`) or `option:NAME`
    for a compile-time option of the step (e.g. `option:handle`). The value
    `unset` (the Kubeflow input's default) keeps what the config says.
    """

    name: str
    type: type
    target: str
    unset: Any


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """A pipeline step: config sections, run-time parameters, artifacts, executor.

    `sections` maps the section name the executor sees to its dataclass.
    `options` declares the compile-time options the graph may pass (name ->
    type; a value may also be None): an undeclared or mistyped option is
    refused when the step's arguments are built, and a run-time parameter
    that targets `option:NAME` must name a declared one.
    `executor` is `module:function`, imported only when the step runs, so
    declaring a pipeline never imports TensorFlow. `resumable` steps get a
    work folder that a rerun of the same work (same cache key) finds again.
    `output_value` names a step's JSON value output (instead of a folder):
    a small parameter downstream steps take as their `value_inputs`.
    """

    name: str
    executor: str
    sections: Mapping[str, type] = dataclasses.field(default_factory=dict)
    options: Mapping[str, type] = dataclasses.field(default_factory=dict)
    parameters: tuple[ParameterSpec, ...] = ()
    inputs: tuple[ArtifactSpec, ...] = ()
    outputs: tuple[ArtifactSpec, ...] = ()
    value_inputs: tuple[str, ...] = ()
    output_value: Optional[str] = None
    resumable: bool = False
    cacheable: bool = True

    def __post_init__(self) -> None:
        for parameter in self.parameters:
            option = parameter.target[len(OPTION_PREFIX):] if parameter.target.startswith(OPTION_PREFIX) else None
            if option is not None and option not in self.options:
                raise ValueError(f"step {self.name!r}: run-time parameter {parameter.name!r} targets the option "
                                 f"{option!r}, which the step does not declare (its options: {sorted(self.options)})")

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Refuse options the step does not declare, or of another type than declared (None is always allowed)."""
        for name, value in options.items():
            if name not in self.options:
                raise ValueError(f"step {self.name!r} declares no option {name!r} (its options: {sorted(self.options)})")
            expected = self.options[name]
            if value is not None and not _is_a(value, expected):
                raise ValueError(f"step {self.name!r}: option {name!r} must be {expected.__name__}; "
                                 f"Received: {value!r} ({type(value).__name__})")

    def run_function(self) -> Callable[["StepArgs"], Any]:
        return import_function(self.executor)


def _is_a(value: Any, expected: type) -> bool:
    """isinstance, where a bool is no int and an int is also a float (as in JSON)."""
    if isinstance(value, bool) and expected is not bool:
        return False
    return isinstance(value, expected) or (expected is float and isinstance(value, int))


def import_function(reference: str) -> Callable[..., Any]:
    """The function named `module:function`."""
    module_name, _, function_name = reference.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def group_input_name(group: str, key: str) -> str:
    """The input name of entry `key` of a `many` input (a valid Python and kfp identifier)."""
    return f"{group}{GROUP_SEPARATOR}{key}"


@dataclasses.dataclass
class StepArgs:
    """Everything one execution of a step gets (TFX's FnArgs)."""

    step: str
    sections: dict[str, Any]
    options: dict[str, Any]
    inputs: dict[str, str]
    outputs: dict[str, str]
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    work_dir: str = ""

    def group(self, name: str) -> dict[str, str]:
        """The entries of the `many` input `name`: key -> folder."""
        prefix = name + GROUP_SEPARATOR
        return {key[len(prefix):]: path for key, path in self.inputs.items() if key.startswith(prefix)}

    @property
    def output(self) -> str:
        """The folder of the step's only output artifact."""
        (path,) = self.outputs.values()
        return path


def sections_to_json(sections: Mapping[str, Any]) -> str:
    """The step's own config sections as compact, sorted JSON (what its cache key sees)."""
    return json.dumps({name: to_dict(section) for name, section in sections.items()}, sort_keys=True)


def build_args(
    spec: ComponentSpec, *, step: str, sections_json: str, options: Mapping[str, Any],
    parameters: Mapping[str, Any], inputs: Mapping[str, str], outputs: Mapping[str, str],
    values: Optional[Mapping[str, Any]] = None, work_root: str = "",
) -> StepArgs:
    """The step's `StepArgs`: sections parsed and merged with the run-time parameters, validated."""
    raw_sections = json.loads(sections_json)
    spec.check_options(options)
    options = dict(options)
    for parameter in spec.parameters:
        value = parameters.get(parameter.name, parameter.unset)
        if value == parameter.unset:
            continue
        if parameter.target.startswith(OPTION_PREFIX):
            options[parameter.target[len(OPTION_PREFIX):]] = value
        else:
            _set_path(raw_sections, parameter.target.split("."), value)
    sections = {name: from_dict(cls, raw_sections[name], name) for name, cls in spec.sections.items()}
    args = StepArgs(step=step, sections=sections, options=options, inputs=dict(inputs), outputs=dict(outputs),
                    values=dict(values or {}))
    if spec.resumable and work_root:
        args.work_dir = work_dir_for(work_root, step, sections_json, options, parameters, inputs, values)
    return args


def work_dir_for(work_root: str, step: str, sections_json: str, options: Mapping[str, Any],
                 parameters: Mapping[str, Any], inputs: Mapping[str, str],
                 values: Optional[Mapping[str, Any]] = None) -> str:
    """`<work_root>/<step>-<key>`: the same work (step, sections, options, parameters, inputs) finds it again.

    Inputs count by what they hold (`input_identity`), not where: an in-process run writes the same data into
    a new run folder each time, and its interrupted train steps must find their checkpoints again."""

    identities = {name: input_identity(path) for name, path in inputs.items()}
    key = json.dumps([step, sections_json, dict(options), dict(parameters), identities, dict(values or {})],
                     sort_keys=True, default=str)
    return os.path.join(work_root, f"{step}-{hashlib.sha256(key.encode()).hexdigest()[:16]}")


def input_identity(path: str) -> str:
    """What an input holds, in a few characters: a dataset artifact by the digest of its metadata.json (source
    fingerprint, the config that made it, the counts: the same for the same data in another folder), the
    output of a resumable step by the work it came from (`WORK_KEY_FILE`), any other artifact by its path."""
    for name, prefix in ((METADATA_FILE, "sha256:"), (WORK_KEY_FILE, "work:")):
        if os.path.isfile(os.path.join(path, name)):
            with open(os.path.join(path, name), "rb") as handle:
                content = handle.read()
            return prefix + (hashlib.sha256(content).hexdigest() if name == METADATA_FILE else content.decode())
    return path


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        data = data.setdefault(part, {})
    data[path[-1]] = value
