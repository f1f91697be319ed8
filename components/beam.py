"""Choosing the Beam runner explicitly.

`in_process` runs the pipeline in this process with Beam's portable FnApiRunner;
`multi_processing` runs it on several local worker processes; `dask` runs it on a
dask.distributed cluster (`--dask_client_address=HOST:PORT` in `options`, or a
local cluster of `num_workers` processes; see dask_runner.py for what it can
run); any other value is
handed to Beam as `--runner` (DataflowRunner, FlinkRunner, SparkRunner,
PortableRunner, ...) together with `options`, e.g.
`["--project=my-project", "--region=europe-west1", "--temp_location=gs://b/tmp"]`.
Beam's DirectRunner is never used implicitly, so Beam does not try to download
the Prism runner binary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from tlpipe.models.plumbing.errors import ConfigError

LOCAL_RUNNERS = ("in_process", "multi_processing")
DASK = "dask"


@dataclasses.dataclass
class BeamConfig:
    """Where Beam work (ingest, transform) runs."""

    runner: str = "in_process"
    num_workers: int = 2  # used by 'multi_processing', and by 'dask' when no scheduler is named
    options: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not self.runner or not self.runner.replace("_", "").isalnum():
            raise ConfigError(
                "runner", self.runner,
                "'in_process', 'multi_processing', 'dask' or a Beam runner class name such as 'DataflowRunner'",
            )
        if self.runner == "DaskRunner":
            raise ConfigError("runner", self.runner, "'dask' (tlpipe's DaskRunner, which runs every sink of a graph)")
        if self.num_workers < 1:
            raise ConfigError("num_workers", self.num_workers, "an integer >= 1")
        for option in self.options:
            if not option.startswith("--"):
                raise ConfigError("options", option, "Beam pipeline flags written as '--name=value'")
            if option.startswith("--runner"):
                raise ConfigError("options", option, "no '--runner' here: set 'beam.runner' instead")

    def refuse_dask(self, step: str, why: str) -> None:
        """ConfigError when this config runs on Dask a step whose Beam work the DaskRunner cannot translate."""
        if self.runner == DASK:
            raise ConfigError(
                "beam.runner", self.runner,
                f"'in_process', 'multi_processing' or a full Beam runner (DataflowRunner, FlinkRunner, SparkRunner) "
                f"for the {step} step: {why}; the DaskRunner runs ingest and transform only",
            )


def values_tagged(pair: tuple[str, Any], tag: str) -> Iterator[Any]:
    """The value of a (tag, value) pair whose tag is `tag` (use with beam.FlatMap).

    tlpipe's ParDos emit (tag, value) pairs where Beam would use tagged
    outputs, which the DaskRunner does not keep apart (dask_runner.py).
    """
    if pair[0] == tag:
        yield pair[1]


def create_pipeline(config: BeamConfig) -> Any:
    """A `beam.Pipeline` on the runner `config` names (use it as a context manager).

    User errors raised inside its work reach the caller as themselves (see beam_errors).
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from tlpipe.components.beam_errors import UserErrorPipeline

    if config.runner in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import fn_runner

        if config.runner == "in_process":
            flags = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
        else:
            flags = ["--direct_running_mode=multi_processing", f"--direct_num_workers={config.num_workers}"]
        options = PipelineOptions(flags + list(config.options))
        return UserErrorPipeline(runner=fn_runner.FnApiRunner(), options=options)
    if config.runner == DASK:
        from tlpipe.components.dask_runner import AllSinksDaskRunner

        return UserErrorPipeline(runner=AllSinksDaskRunner(config.num_workers), options=PipelineOptions(config.options))
    options = PipelineOptions([f"--runner={config.runner}"] + list(config.options))
    return UserErrorPipeline(options=options)
