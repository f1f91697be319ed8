"""Executing component declarations: in this process, or as kfp components.

Both adapters are generic: they read a `ComponentSpec` (components/spec.py) and
never name a particular step. `InProcessOps` runs a step at once over folders
under one run folder. `KfpOps` adds a kfp task; its component function is
generated from the declaration (one typed parameter per run-time parameter, one
`Input[...]`/`Output[...]` per artifact) and registered with `linecache`, so
kfp ships its source into the container like any hand-written lightweight
component. The generated function only calls `run_kfp_step`, which builds the
step's `StepArgs` and calls its executor.

Each step receives only its own config sections (as JSON), its options and its
run-time parameters, so kfp's cache key for a step is exactly what the step
reads: an evaluator setting does not invalidate ingest, transform or training.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import linecache
import os
from typing import Any, Callable, Iterator, List, Mapping, Optional

from tlpipe.components.spec import GROUP_SEPARATOR, ComponentSpec, build_args, group_input_name, sections_to_json
from tlpipe.models.plumbing import progress
from tlpipe.models.plumbing.errors import TlpipeError

ERROR_FILE = "tlpipe_error.txt"
# Which local run a kfp.local task folder belongs to: the runner sets RUN_ID_ENV for its steps, each step
# writes the id into RUN_MARK_FILE beside its output (kfp.local's run folder names only the pipeline and a time).
RUN_ID_ENV = "TLPIPE_RUN_ID"
RUN_MARK_FILE = "tlpipe_run.txt"
_KFP_TYPES = {"dataset": "Dataset", "model": "Model", "artifact": "Artifact"}


def spec_reference(spec: ComponentSpec) -> str:
    """`module:NAME` of a declaration: the module of its executor, where it is declared."""
    module_name = spec.executor.partition(":")[0]
    module = importlib.import_module(module_name)
    for name, value in vars(module).items():
        if value is spec:
            return f"{module_name}:{name}"
    raise ValueError(f"component spec {spec.name!r} is not declared in {module_name}, the module of its executor")


def select_sections(config: Any, spec: ComponentSpec, paths: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """The config sections a step reads: its own names, or the dotted config paths the graph points them at."""
    paths = paths or {}
    selected = {}
    for name in spec.sections:
        value = config
        for part in paths.get(name, name).split("."):
            value = getattr(value, part)
        selected[name] = value
    return selected


def flatten_inputs(spec: ComponentSpec, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs by input name; a `many` input's mapping becomes one input per entry."""
    flat: dict[str, Any] = {}
    for artifact in spec.inputs:
        given = inputs.get(artifact.name)
        if artifact.collected and given is not None and not isinstance(given, Mapping):
            flat[artifact.name] = given  # a kfp fan-in (dsl.Collected): one list input
        elif artifact.many:
            for key, value in (given or {}).items():
                flat[group_input_name(artifact.name, key)] = value
        elif given is None:
            raise ValueError(f"step {spec.name!r} needs its input {artifact.name!r}")
        else:
            flat[artifact.name] = given
    unknown = set(inputs) - {artifact.name for artifact in spec.inputs}
    if unknown:
        raise ValueError(f"step {spec.name!r} has no inputs {sorted(unknown)}")
    return flat


def declared_values(spec: ComponentSpec, values: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON values a step takes from other steps; each must be one of its declared `value_inputs`."""
    values = dict(values or {})
    unknown = set(values) - set(spec.value_inputs)
    if unknown:
        raise ValueError(f"step {spec.name!r} declares no value inputs {sorted(unknown)} "
                         f"(its value_inputs: {list(spec.value_inputs)})")
    return values


@contextlib.contextmanager
def reporting_errors(output_path: str) -> Iterator[None]:
    """Leave a user error's message beside a step's output, where the local runner finds it.

    Steps run as subprocesses under kfp.local, which only says that a task
    failed; the message in `<task folder>/tlpipe_error.txt` lets the runner
    show the user what went wrong instead of a traceback.
    """
    try:
        yield
    except TlpipeError as error:
        with open(os.path.join(os.path.dirname(output_path), ERROR_FILE), "w", encoding="utf-8") as handle:
            handle.write(f"{type(error).__name__}: {error}\n")
        raise


def run_kfp_step(reference: str, step: str, sections_json: str, options_json: str, work_root: str, *,
                 parameters: Mapping[str, Any], inputs: Mapping[str, str], values: Mapping[str, str],
                 outputs: Mapping[str, str]) -> Optional[str]:
    """What every generated kfp component calls: build the step's args and run its executor."""
    module_name, _, name = reference.partition(":")
    spec: ComponentSpec = getattr(importlib.import_module(module_name), name)
    error_anchor = next(iter(outputs.values()), os.path.join(os.getcwd(), step))
    if outputs and os.environ.get(RUN_ID_ENV):  # a step without artifacts (resolve) leaves no folder to tell
        os.makedirs(os.path.dirname(error_anchor), exist_ok=True)
        with open(os.path.join(os.path.dirname(error_anchor), RUN_MARK_FILE), "w", encoding="utf-8") as handle:
            handle.write(os.environ[RUN_ID_ENV])
    with reporting_errors(error_anchor):
        args = build_args(spec, step=step, sections_json=sections_json, options=json.loads(options_json),
                          parameters=parameters, inputs=inputs, outputs=outputs,
                          values={key: json.loads(value) for key, value in values.items()}, work_root=work_root)
        result = spec.run_function()(args)
    return json.dumps(result, sort_keys=True) if spec.output_value else None


def kfp_step_names(pipeline_function: Any) -> dict[str, str]:
    """kfp.local's task names (`train`, `train-2`, ...) -> the step names the graph gave them (`train-baseline`)."""
    tasks = pipeline_function.pipeline_spec.root.dag.tasks
    return {task.component_ref.name.removeprefix("comp-"): task.task_info.name for task in tasks.values()}


class InProcessOps:
    """Runs each step at once in this process; a step's handle is its output folder (or value)."""

    def __init__(self, config: Any, parameters: Mapping[str, Any], run_dir: str, *, work_root: str = ""):
        self.config = config
        self.parameters = dict(parameters)
        self.run_dir = run_dir
        self.work_root = work_root
        self.results: dict[str, Any] = {}

    def run(self, spec: ComponentSpec, name: str, *, sections: Optional[Mapping[str, str]] = None,
            options: Optional[Mapping[str, Any]] = None, inputs: Optional[Mapping[str, Any]] = None,
            values: Optional[Mapping[str, Any]] = None, runtime: bool = True) -> Any:
        outputs = {artifact.name: os.path.join(self.run_dir, name) for artifact in spec.outputs}
        parameters = {p.name: self.parameters[p.name] for p in spec.parameters if runtime and p.name in self.parameters}
        args = build_args(
            spec, step=name, sections_json=sections_to_json(select_sections(self.config, spec, sections)),
            options=options or {}, parameters=parameters, inputs=flatten_inputs(spec, inputs or {}),
            outputs=outputs, values=declared_values(spec, values), work_root=self.work_root,
        )
        with progress.step(name) as report:
            self.results[name] = result = spec.run_function()(args)
            report.outputs = list(outputs.values())
        return result if spec.output_value else next(iter(outputs.values()))


class KfpOps:
    """Adds kfp tasks to the pipeline being defined; a step's handle is its output channel."""

    def __init__(self, config: Any, parameters: Mapping[str, Any], *, work_root: str = ""):
        self.config = config
        self.parameters = dict(parameters)
        self.work_root = work_root
        self._components: dict[tuple, Callable] = {}

    def run(self, spec: ComponentSpec, name: str, *, sections: Optional[Mapping[str, str]] = None,
            options: Optional[Mapping[str, Any]] = None, inputs: Optional[Mapping[str, Any]] = None,
            values: Optional[Mapping[str, Any]] = None, runtime: bool = True) -> Any:
        flat_inputs = flatten_inputs(spec, inputs or {})
        values = declared_values(spec, values)
        parameters = {p.name: self.parameters[p.name] for p in spec.parameters if runtime and p.name in self.parameters}
        component = self._component(spec, tuple(flat_inputs), tuple(parameters), tuple(values))
        task = component(
            step=name, sections_json=sections_to_json(select_sections(self.config, spec, sections)),
            options_json=json.dumps(dict(options or {}), sort_keys=True), work_root=self.work_root,
            **parameters, **flat_inputs, **values,
        )
        self._configure(task, spec, name)
        if spec.output_value:
            return task.output
        (output,) = spec.outputs
        return task.outputs[output.name]

    def _configure(self, task: Any, spec: ComponentSpec, name: str) -> None:
        kubeflow = self.config.kubeflow
        task.set_display_name(name)
        task.set_caching_options(spec.cacheable and kubeflow.caching.get(spec.name, self.config.pipeline.enable_caching))
        if kubeflow.retries:
            task.set_retry(num_retries=kubeflow.retries)
        resources = kubeflow.resources_for(spec.name)
        for setter, value in (
            (task.set_cpu_request, resources.cpu_request), (task.set_cpu_limit, resources.cpu_limit),
            (task.set_memory_request, resources.memory_request), (task.set_memory_limit, resources.memory_limit),
            (task.set_accelerator_type, resources.accelerator_type),
        ):
            if value is not None:
                setter(value)
        if resources.accelerator_count:
            task.set_accelerator_limit(resources.accelerator_count)

    def _component(self, spec: ComponentSpec, inputs: tuple[str, ...], parameters: tuple[str, ...],
                   values: tuple[str, ...]) -> Callable:
        key = (spec.name, inputs, parameters, values)
        if key not in self._components:
            from kfp import dsl

            function = kfp_function(spec, inputs, parameters, values)
            self._components[key] = dsl.component(function, base_image=self.config.kubeflow.image,
                                                  install_kfp_package=False)
        return self._components[key]


def kfp_function(spec: ComponentSpec, inputs: tuple[str, ...], parameters: tuple[str, ...],
                 values: tuple[str, ...]) -> Callable:
    """The lightweight kfp component function of `spec` with these inputs, generated from the declaration."""
    from kfp import dsl

    kinds = {artifact.name: artifact.kind for artifact in spec.inputs}
    collected = {artifact.name for artifact in spec.inputs if artifact.collected}
    types = {p.name: p.type.__name__ for p in spec.parameters}

    def kind_of(input_name: str) -> str:
        return _KFP_TYPES[kinds.get(input_name) or kinds[input_name.split(GROUP_SEPARATOR)[0]]]

    signature = ["step: str", "sections_json: str", "options_json: str", "work_root: str"]
    signature += [f"{name}: {types[name]}" for name in parameters]
    signature += [f"{name}: Input[List[{kind_of(name)}]]" if name in collected else f"{name}: Input[{kind_of(name)}]"
                  for name in inputs]

    def input_path(name: str) -> str:  # a collected list becomes the entries of its group, keyed by position
        if name in collected:
            return f"**{{{name + GROUP_SEPARATOR!r} + str(i): a.path for i, a in enumerate({name})}}"
        return f"{name!r}: {name}.path"

    signature += [f"{name}: str" for name in values]
    signature += [f"{artifact.name}: Output[{_KFP_TYPES[artifact.kind]}]" for artifact in spec.outputs]
    function_name = spec.name.replace("-", "_")
    source = "\n".join([
        f"def {function_name}({', '.join(signature)}){' -> str' if spec.output_value else ''}:",
        "    from tlpipe.pipeline.adapters import run_kfp_step",
        f"    return run_kfp_step({spec_reference(spec)!r}, step, sections_json, options_json, work_root,",
        f"        parameters={{{', '.join(f'{n!r}: {n}' for n in parameters)}}},",
        f"        inputs={{{', '.join(input_path(n) for n in inputs)}}},",
        f"        values={{{', '.join(f'{n!r}: {n}' for n in values)}}},",
        f"        outputs={{{', '.join(f'{a.name!r}: {a.name}.path' for a in spec.outputs)}}})",
        "",
    ])
    filename = f"<tlpipe component {spec.name} {abs(hash(source)):x}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"Input": dsl.Input, "Output": dsl.Output, "Dataset": dsl.Dataset,
                                 "Model": dsl.Model, "Artifact": dsl.Artifact, "List": List}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # noqa: S102 - source generated above from the declaration
    return namespace[function_name]
