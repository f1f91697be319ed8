"""Choosing the Beam runner explicitly.

`in_process` runs the pipeline in this process with Beam's portable FnApiRunner;
`multi_processing` runs it on several local worker processes; any other value is
handed to Beam as `--runner` (DataflowRunner, FlinkRunner, SparkRunner,
PortableRunner, ...) together with `options`, e.g.
`["--project=my-project", "--region=europe-west1", "--temp_location=gs://b/tmp"]`.
Beam's DirectRunner is never used implicitly, so Beam does not try to download
the Prism runner binary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tlpipe.models.errors import ConfigError

LOCAL_RUNNERS = ("in_process", "multi_processing")


@dataclasses.dataclass
class BeamConfig:
    """Where Beam work (ingest, transform) runs."""

    runner: str = "in_process"
    num_workers: int = 2  # used by 'multi_processing'
    options: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        if not self.runner or not self.runner.replace("_", "").isalnum():
            raise ConfigError(
                "runner", self.runner,
                "'in_process', 'multi_processing' or a Beam runner class name such as 'DataflowRunner'",
            )
        if self.num_workers < 1:
            raise ConfigError("num_workers", self.num_workers, "an integer >= 1")
        for option in self.options:
            if not option.startswith("--"):
                raise ConfigError("options", option, "Beam pipeline flags written as '--name=value'")
            if option.startswith("--runner"):
                raise ConfigError("options", option, "no '--runner' here: set 'beam.runner' instead")


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
    options = PipelineOptions([f"--runner={config.runner}"] + list(config.options))
    return UserErrorPipeline(options=options)
