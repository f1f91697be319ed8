"""Running the pipelines on this machine: kfp.local (caching on) or in-process.

The runner works out paths (everything under the config's pipeline root), makes
sure the source feature extractor is published when the config asks for one,
runs the transfer pipeline, and records the run: its config, each step's
outcome (executed or reused from the cache) and where its artifacts are.

Layout under the root:
    kfp/                 kfp.local's pipeline root (task artifacts, cache)
    in_process/<run>/    artifacts of in-process runs
    modules/...          published source feature extractors
    serving/<version>/   pushed models (TF Serving layout)
    runs/<run>/          config.yaml and run.json of every run (kfp.log: kfp.local's task
                         logs, when `-q` keeps them off the terminal)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import os
from typing import Any, Optional

from tlpipe.models import progress
from tlpipe.models.artifacts import read_json, write_json
from tlpipe.pipeline.config import PipelineConfig, save_config
from tlpipe.models.errors import TlpipeError
from tlpipe.pipeline.parameters import RunParameters
from tlpipe.pipeline.preflight import preflight


@dataclasses.dataclass
class RunResult:
    """What one run produced: artifact folder per step, and which steps came from the cache."""

    run_dir: str
    artifacts: dict[str, str]
    cached: dict[str, bool]
    record_dir: str = ""

    def read(self, step: str, file_name: str) -> Any:
        return read_json(os.path.join(self.artifacts[step], file_name))


@dataclasses.dataclass(frozen=True)
class Paths:
    """Absolute locations the runner derives from the config."""

    root: str
    kfp_root: str
    serving_dir: str
    module_dir: str
    runs_dir: str

    @classmethod
    def from_config(cls, config: PipelineConfig) -> "Paths":
        root = os.path.abspath(config.pipeline.root)

        def under_root(path: str) -> str:
            return path if os.path.isabs(path) else os.path.join(root, path)

        return cls(
            root=root,
            kfp_root=os.path.join(root, "kfp"),
            serving_dir=under_root(config.pusher.serving_dir),
            module_dir=under_root(config.source.module_dir),
            runs_dir=os.path.join(root, "runs"),
        )


def _now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


def _run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _run_kfp_local(pipeline_function: Any, kfp_root: str, enable_caching: bool, log_path: str,
                   **arguments: Any) -> RunResult:
    """Run with kfp.local; its task logs go to the terminal, or only to `log_path` when progress is quiet."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=kfp_root, enable_caching=enable_caching)
    before = set(os.listdir(kfp_root)) if os.path.isdir(kfp_root) else set()

    def new_run_dir() -> str:
        new_dirs = sorted(set(os.listdir(kfp_root)) - before - {".kfp_cache"})
        return os.path.join(kfp_root, new_dirs[-1]) if new_dirs else ""

    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log_file:
        quiet_output = contextlib.redirect_stdout(log_file) if progress.is_quiet() else contextlib.nullcontext()
        try:
            with quiet_output:
                task = pipeline_function(**arguments)
        except RuntimeError as error:
            raise _step_failure(new_run_dir(), error, log_path if progress.is_quiet() else "") from None
    run_dir = new_run_dir()
    artifacts = {name: artifact.path for name, artifact in task.outputs.items()}
    cached = {name: not (run_dir and path.startswith(run_dir + os.sep)) for name, path in artifacts.items()}
    return RunResult(run_dir=run_dir, artifacts=artifacts, cached=cached)


def _step_failure(run_dir: str, error: RuntimeError, log_path: str) -> TlpipeError:
    """The user error a failed kfp.local step left behind, or the failure kfp reported."""
    from tlpipe.pipeline.steps import ERROR_FILE

    reports = sorted(glob.glob(os.path.join(run_dir, "*", ERROR_FILE))) if run_dir else []
    if reports:
        step = os.path.basename(os.path.dirname(reports[0]))
        with open(reports[0], encoding="utf-8") as handle:
            return TlpipeError(f"step '{step}' failed: {handle.read().strip()}")
    where = f"the step's log in {log_path}" if log_path else "the step's log above"
    return TlpipeError(f"{error} ({where} says why; `--mode in_process` runs the steps in this process)")


def publish_source_module(config: PipelineConfig, paths: Paths, mode: str) -> str:
    """Publish the source feature extractor into `paths.module_dir` unless it is already there."""
    from tlpipe.pipeline.pipeline import InProcessOps, build_source_pipeline, source_graph

    if os.path.isfile(os.path.join(paths.module_dir, "saved_model.pb")):
        progress.log(f"source module: reusing {paths.module_dir}")
        return paths.module_dir
    preflight(config, root=paths.root, serving_dir=paths.serving_dir, module_dir=paths.module_dir,
              publish_module=True, transfer=False)
    progress.log(f"source module: pre-training and publishing into {paths.module_dir}")
    if mode == "in_process":
        run_dir = os.path.join(paths.root, "in_process", _run_id() + "-source")
        source_graph(InProcessOps(config, RunParameters(), run_dir, publish_dir=paths.module_dir))
    else:
        pipeline_function = build_source_pipeline(config, publish_dir=paths.module_dir)
        log_path = os.path.join(paths.runs_dir, _run_id() + "-source", "kfp.log")
        _run_kfp_local(pipeline_function, paths.kfp_root, config.pipeline.enable_caching, log_path)
    return paths.module_dir


def run_local(config: PipelineConfig, *, mode: Optional[str] = None, parameters: RunParameters = RunParameters()) -> RunResult:
    """Run the transfer pipeline (publishing the source module first when needed) and record the run."""
    from tlpipe.pipeline.pipeline import InProcessOps, build_transfer_pipeline, transfer_graph

    mode = mode or config.pipeline.mode
    paths = Paths.from_config(config)
    preflight(config, root=paths.root, serving_dir=paths.serving_dir, module_dir=paths.module_dir,
              source_uri=parameters.source_uri, publish_module=config.uses_source_module and not parameters.hub_handle
              and not os.path.isfile(os.path.join(paths.module_dir, "saved_model.pb")))
    if config.uses_source_module and not parameters.hub_handle:
        parameters = dataclasses.replace(parameters, hub_handle=publish_source_module(config, paths, mode))
    run_id = _run_id()
    record_dir = os.path.join(paths.runs_dir, run_id)
    save_config(parameters.apply(config), record_dir)
    record: dict[str, Any] = {"run_id": run_id, "mode": mode, "started": _now(),
                              "parameters": dataclasses.asdict(parameters), "status": "running"}
    write_json(os.path.join(record_dir, "run.json"), record)
    try:
        if mode == "in_process":
            run_dir = os.path.join(paths.root, "in_process", run_id)
            ops = InProcessOps(config, parameters, run_dir, serving_dir=paths.serving_dir)
            artifacts = transfer_graph(ops, config.trainer.strategies)
            result = RunResult(run_dir, artifacts, {name: False for name in artifacts})
        else:
            pipeline_function = build_transfer_pipeline(config, serving_dir=paths.serving_dir,
                                                        hub_handle=parameters.hub_handle)
            result = _run_kfp_local(pipeline_function, paths.kfp_root, config.pipeline.enable_caching,
                                    os.path.join(record_dir, "kfp.log"), **dataclasses.asdict(parameters))
    except TlpipeError as error:
        record.update(status="failed", error=str(error), finished=_now())
        write_json(os.path.join(record_dir, "run.json"), record)
        raise
    record.update(
        status="succeeded",
        finished=_now(),
        steps={name: {"artifact": result.artifacts[name], "cached": result.cached[name]} for name in result.artifacts},
    )
    write_json(os.path.join(record_dir, "run.json"), record)
    return dataclasses.replace(result, record_dir=record_dir)
