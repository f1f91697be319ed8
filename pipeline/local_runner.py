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
    work/<step>-<key>/   resumable state of steps (trainer checkpoints), keyed by the step's cache key
    runs/<run>/          config.yaml, run.json (run_record.py) and kfp.log of every run: the
                         run's whole output (kfp.local's task logs, TensorFlow's start-up
                         lines); the terminal shows a line per step and the training bars
                         (console.py)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import os
from typing import Any, Iterator, Optional

from tlpipe.models.plumbing import progress
from tlpipe.models.plumbing.artifacts import read_json
from tlpipe.pipeline.adapters import ERROR_FILE, RUN_ID_ENV, RUN_MARK_FILE, InProcessOps, kfp_step_names
from tlpipe.pipeline.config import PipelineConfig, save_config
from tlpipe.pipeline.console import Console, capture
from tlpipe.pipeline.run_record import LOG_FILE, RunRecord, list_records, sigterm_interrupts
from tlpipe.pipeline.step_summary import run_outcome
from tlpipe.models.plumbing.errors import TlpipeError
from tlpipe.pipeline.parameters import RunParameters, resolve_handle
from tlpipe.pipeline.environment import environment
from tlpipe.pipeline.preflight import preflight
from tlpipe.pipeline.step_processes import end_descendants
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE


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
    work_root: str
    in_process_root: str

    def module_published(self) -> bool:
        """Whether the source pipeline's module is already in `module_dir`."""
        return os.path.isfile(os.path.join(self.module_dir, SAVED_MODEL_FILE))

    def run_folders(self) -> tuple[str, ...]:
        """The folders under the root a run writes (records, resumable work, kfp's runs, in-process runs)."""
        return self.runs_dir, self.work_root, self.kfp_root, self.in_process_root

    def locations(self, *, publish: bool = False) -> "Locations":
        """The folders steps write outside their artifacts; `publish`: the source pipeline's module folder."""
        from tlpipe.pipeline.pipeline import Locations

        return Locations(serving_dir=self.serving_dir, publish_dir=self.module_dir if publish else "",
                         work_root=self.work_root)

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
            work_root=os.path.join(root, "work"),
            in_process_root=os.path.join(root, "in_process"),
        )


def _run_id() -> str:
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def _run_kfp_local(pipeline_function: Any, kfp_root: str, enable_caching: bool, log_path: str, run_id: str,
                   **arguments: Any) -> RunResult:
    """Run with kfp.local (inside `console.capture`, which puts its task logs into `log_path`).

    The run's own folder under `kfp_root` is the one whose task folders carry `run_id` (adapters.RUN_MARK_FILE):
    another run on the same root at the same time creates folders too, so "the newest" is not enough.
    """
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=kfp_root, enable_caching=enable_caching)
    before = set(os.listdir(kfp_root)) if os.path.isdir(kfp_root) else set()
    with _environment(RUN_ID_ENV, run_id):
        try:
            task = pipeline_function(**arguments)
        except RuntimeError as error:
            raise _step_failure(_own_run_dir(kfp_root, before, run_id), error, log_path,
                                kfp_step_names(pipeline_function)) from None
    run_dir = _own_run_dir(kfp_root, before, run_id)
    artifacts = {name: artifact.path for name, artifact in task.outputs.items()}
    cached = {name: not (run_dir and path.startswith(run_dir + os.sep)) for name, path in artifacts.items()}
    return RunResult(run_dir=run_dir, artifacts=artifacts, cached=cached)


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """Set environment variable `name` for the block (the step processes kfp.local starts inherit it)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _own_run_dir(kfp_root: str, before: set[str], run_id: str) -> str:
    """The folder kfp.local created for run `run_id` ('' when the run executed no step: all came from the cache)."""
    for name in sorted(set(os.listdir(kfp_root)) - before) if os.path.isdir(kfp_root) else []:
        for mark in glob.glob(os.path.join(kfp_root, glob.escape(name), "*", RUN_MARK_FILE)):
            with open(mark, encoding="utf-8") as handle:
                if handle.read().strip() == run_id:
                    return os.path.join(kfp_root, name)
    return ""


def _step_failure(run_dir: str, error: RuntimeError, log_path: str, step_names: dict[str, str]) -> TlpipeError:
    """The user error a failed kfp.local step left behind (named as the graph names the step), or kfp's failure."""
    reports = sorted(glob.glob(os.path.join(run_dir, "*", ERROR_FILE))) if run_dir else []
    if reports:
        task = os.path.basename(os.path.dirname(reports[0]))
        step = step_names.get(task, task)
        with open(reports[0], encoding="utf-8") as handle:
            return TlpipeError(f"step '{step}' failed: {handle.read().strip()}")
    return TlpipeError(f"{error} (the step's log in {log_path} says why; `--mode in_process` runs the steps "
                       "in this process)")


def publish_source_module(config: PipelineConfig, paths: Paths, mode: str) -> str:
    """Publish the source feature extractor into `paths.module_dir` unless it is already there."""
    from tlpipe.pipeline.pipeline import build_source_pipeline, source_graph

    if paths.module_published():
        progress.note(f"source module: reusing {paths.module_dir}")
        return paths.module_dir
    preflight(config, root=paths.root, serving_dir=paths.serving_dir, module_dir=paths.module_dir,
              run_folders=paths.run_folders(), publish_module=True, transfer=False)
    run_id = _run_id() + "-source"
    log_path = os.path.join(paths.runs_dir, run_id, LOG_FILE)
    progress.note(f"source module: pre-training and publishing into {paths.module_dir} (log: {log_path})")
    with capture(log_path) as output:
        if mode == "in_process":
            run_dir = os.path.join(paths.in_process_root, run_id)
            source_graph(InProcessOps(config, {}, run_dir), config, paths.locations(publish=True))
        else:
            pipeline_function = build_source_pipeline(config, locations=paths.locations(publish=True))
            output.step_names = kfp_step_names(pipeline_function)
            _run_kfp_local(pipeline_function, paths.kfp_root, config.pipeline.enable_caching, log_path, run_id)
    return paths.module_dir


def run_local(config: PipelineConfig, *, mode: Optional[str] = None, parameters: RunParameters = RunParameters()) -> RunResult:
    """Run the transfer pipeline (publishing the source module first when needed) and record the run."""
    from tlpipe.pipeline.pipeline import build_transfer_pipeline, transfer_graph

    mode = mode or config.pipeline.mode
    paths = Paths.from_config(config)
    preflight(config, root=paths.root, serving_dir=paths.serving_dir, module_dir=paths.module_dir,
              run_folders=paths.run_folders(), source_uri=parameters.source_uri,
              publish_module=config.uses_source_module and not parameters.hub_handle and not paths.module_published())
    list_records(paths.runs_dir)  # records of runs killed outright are marked "interrupted"
    if config.uses_source_module and not parameters.hub_handle:
        parameters = dataclasses.replace(parameters, hub_handle=publish_source_module(config, paths, mode))
    run_id = _run_id()
    record_dir = os.path.join(paths.runs_dir, run_id)
    save_config(parameters.apply(config), record_dir)
    handle = parameters.hub_handle or resolve_handle(config)
    record = RunRecord.start(record_dir, run_id=run_id, mode=mode, parameters=dataclasses.asdict(parameters),
                             environment=environment())
    output: Optional[Console] = None
    try:
        with sigterm_interrupts(), capture(record.log_path, on_step=record.running_step) as output:
            if mode == "in_process":
                run_dir = os.path.join(paths.in_process_root, run_id)
                ops = InProcessOps(config, dataclasses.asdict(parameters), run_dir, work_root=paths.work_root)
                artifacts = transfer_graph(ops, config, paths.locations(), handle)
                result = RunResult(run_dir, artifacts, {name: False for name in artifacts})
            else:
                pipeline_function = build_transfer_pipeline(config, locations=paths.locations(), hub_handle=handle)
                output.step_names = kfp_step_names(pipeline_function)
                result = _run_kfp_local(pipeline_function, paths.kfp_root, config.pipeline.enable_caching,
                                        record.log_path, run_id, **dataclasses.asdict(parameters))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, and SIGTERM (run_record.Terminated)
        if mode != "in_process":
            end_descendants(os.getpid())  # kfp.local's step processes: none outlives the command
        record.interrupt(str(interrupt) or "interrupted (Ctrl-C)", output.current_step if output else None)
        raise
    except Exception as error:
        record.fail(error, output.current_step if output else None)
        raise
    record.succeed({name: {"artifact": result.artifacts[name], "cached": result.cached[name]}
                    for name in result.artifacts}, run_outcome(result.artifacts), result.run_dir)
    return dataclasses.replace(result, record_dir=record_dir)
