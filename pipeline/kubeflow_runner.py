"""Running the pipelines on a Kubeflow Pipelines cluster: compile, submit, schedule.

Like the local runner, this module only works out paths and options and then
calls the one pipeline definition (`tlpipe.pipeline.pipeline`):

* `ClusterPaths` decides where the pods of a cluster run push models and find
  the published source module: under `pipeline.root`, which must then be an
  absolute path every pod mounts (a volume, or a bucket mounted with a FUSE
  driver such as `/gcs/<bucket>`) -- a relative path would land in each pod's
  throw-away working folder.
* `compile_pipeline` writes Kubeflow's YAML (resources, accelerator, image,
  caching and retries per step come from the config, through `KfpOps`).
* `submit_run` and `schedule_run` send a compiled package to the Kubeflow
  Pipelines API through `kfp.Client`; a recurring run never overlaps itself
  (max concurrency 1) and, unless asked, does not catch up on missed runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import posixpath
import re
import tempfile
import urllib.error
import urllib.request
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence

from tlpipe.pipeline.config import PipelineConfig
from tlpipe.pipeline.cron import CronSchedule
from tlpipe.models.plumbing.errors import ConfigError, TlpipeError

PACKAGE_SUFFIXES = (".yaml", ".yml")
WORK_DIR = "work"  # resumable step state (trainer checkpoints) under pipeline.root
HEALTHZ_PATH = "/apis/v2beta1/healthz"
MAX_CONCURRENCY = 1
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """True for `scheme://...` locations (gs://, s3://, https://)."""
    return bool(_URI.match(path))


def _under(root: str, path: str) -> str:
    return path if path.startswith("/") or is_uri(path) else posixpath.join(root.rstrip("/"), path)


@dataclasses.dataclass(frozen=True)
class ClusterPaths:
    """Locations the pods of a cluster run use; `hub_handle` '' means the config's own handle or preset."""

    serving_dir: str
    hub_handle: str
    module_dir: str

    @classmethod
    def from_config(cls, config: PipelineConfig) -> "ClusterPaths":
        """Serving dir and hub handle under `pipeline.root`, checked to make sense inside a pod."""
        root = config.pipeline.root
        serving_dir = _under(root, config.pusher.serving_dir)
        module_dir = _under(root, config.source.module_dir)
        hub_handle = module_dir if config.uses_source_module else ""
        for path in (serving_dir, module_dir):
            if path and not (path.startswith("/") or is_uri(path)):
                raise ConfigError(
                    "pipeline.root", root,
                    "an absolute path that every pod of the cluster mounts (a volume, or a bucket mounted with a "
                    "FUSE driver such as /gcs/<bucket>/tlpipe) when compiling for Kubeflow: relative paths would "
                    "land in each pod's throw-away working folder; e.g. --set pipeline.root=/mnt/tlpipe",
                )
        if is_uri(serving_dir):
            raise ConfigError(
                "pusher.serving_dir", serving_dir,
                "a path inside the pods (the pusher writes with local file operations): mount the bucket and "
                "give its mount point, e.g. /gcs/<bucket>/serving",
            )
        return cls(serving_dir=serving_dir, hub_handle=hub_handle, module_dir=module_dir)


def build_cluster_pipeline(config: PipelineConfig, *, source: bool = False) -> Callable:
    """The kfp pipeline function to compile: the transfer pipeline, or with `source` the pre-training one."""
    from tlpipe.pipeline.parameters import resolve_handle
    from tlpipe.pipeline.pipeline import Locations, build_source_pipeline, build_transfer_pipeline

    paths = ClusterPaths.from_config(config)
    if source:
        if is_uri(paths.module_dir):
            raise ConfigError(
                "source.module_dir", paths.module_dir,
                "a path inside the pods to publish the module into (it is copied with local file operations): "
                "mount the bucket and give its mount point, e.g. --set pipeline.root=/gcs/<bucket>/tlpipe",
            )
        return build_source_pipeline(config, locations=Locations(publish_dir=paths.module_dir))
    locations = Locations(serving_dir=paths.serving_dir, work_root=_under(config.pipeline.root, WORK_DIR))
    return build_transfer_pipeline(config, locations=locations, hub_handle=paths.hub_handle or resolve_handle(config))


def _check_package_suffix(path: str, option: str) -> None:
    if not path.endswith(PACKAGE_SUFFIXES):
        raise TlpipeError(f"{option} {path!r}: allowed: a file name ending in .yaml or .yml "
                          "(Kubeflow Pipelines' YAML package)")


def compile_pipeline(config: PipelineConfig, package_path: str, *, source: bool = False) -> str:
    """Compile the pipeline to Kubeflow's YAML at `package_path` (written atomically); returns its absolute path."""
    return write_package(build_cluster_pipeline(config, source=source), package_path)


def write_package(pipeline_function: Callable, package_path: str) -> str:
    """Compile a kfp pipeline function to Kubeflow's YAML at `package_path` (written atomically); its absolute path."""
    from kfp import compiler

    _check_package_suffix(package_path, "--output")
    package_path = os.path.abspath(package_path)
    folder = os.path.dirname(package_path)
    os.makedirs(folder, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(prefix=".tlpipe-", suffix=".yaml", dir=folder)
    os.close(handle)
    try:
        compiler.Compiler().compile(pipeline_func=pipeline_function, package_path=tmp_path)
        os.replace(tmp_path, package_path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
    return package_path


@dataclasses.dataclass(frozen=True)
class PipelineInput:
    """A run-time input declared by a compiled pipeline."""

    name: str
    parameter_type: str
    default: Any = None


@dataclasses.dataclass(frozen=True)
class PipelinePackage:
    """What tlpipe needs to know about a compiled package: its name and run-time inputs."""

    path: str
    name: str
    inputs: dict[str, PipelineInput]
    task_count: int

    @classmethod
    def read(cls, path: str) -> "PipelinePackage":
        """Read a compiled YAML package; TlpipeError when it is missing or not a pipeline."""
        import yaml

        _check_package_suffix(path, "--package")
        if not os.path.isfile(path):
            raise TlpipeError(f"--package {path!r}: no such file; allowed: a pipeline YAML written by "
                              "`tlpipe compile -o FILE`")
        with open(path, encoding="utf-8") as handle:
            try:
                spec = next(yaml.safe_load_all(handle), None)
            except yaml.YAMLError as error:
                raise TlpipeError(f"--package {path!r} is not valid YAML ({error})") from None
        if not isinstance(spec, dict) or "pipelineInfo" not in spec or not isinstance(spec.get("root"), dict):
            raise TlpipeError(f"--package {path!r} is not a Kubeflow pipeline (no pipelineInfo/root); "
                              "allowed: a pipeline YAML written by `tlpipe compile -o FILE`")
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        inputs = {name: PipelineInput(name, definition["parameterType"], _default(definition))
                  for name, definition in declared.items()}
        tasks = spec["root"].get("dag", {}).get("tasks", {})
        return cls(path=os.path.abspath(path), name=spec["pipelineInfo"]["name"], inputs=inputs,
                   task_count=len(tasks))

    def parameters(self, assignments: Sequence[str]) -> dict[str, Any]:
        """Parse `NAME=VALUE` run-time arguments, typed as the package declares them."""
        values: dict[str, Any] = {}
        for assignment in assignments:
            name, sep, raw = assignment.partition("=")
            name = name.strip()
            if not sep or name not in self.inputs:
                allowed = ", ".join(self.inputs) or "none: this pipeline takes no run-time inputs"
                raise TlpipeError(f"--param {assignment!r}: allowed: NAME=VALUE with NAME one of the "
                                  f"pipeline's run-time inputs ({allowed})")
            values[name] = _typed_value(self.inputs[name], raw)
        return values


def _default(definition: dict[str, Any]) -> Any:
    """The declared default; YAML stores integer defaults as floats (10.0)."""
    default = definition.get("defaultValue")
    if definition["parameterType"] == "NUMBER_INTEGER" and isinstance(default, float):
        return int(default)
    return default


def _typed_value(declared: PipelineInput, raw: str) -> Any:
    def fail(allowed: str) -> TlpipeError:
        return TlpipeError(f"--param {declared.name}={raw!r}: allowed: {allowed}")

    kind = declared.parameter_type
    if kind == "STRING":
        return raw
    if kind == "NUMBER_INTEGER":
        try:
            return int(raw)
        except ValueError:
            raise fail("an integer") from None
    if kind == "NUMBER_DOUBLE":
        try:
            return float(raw)
        except ValueError:
            raise fail("a number") from None
    if kind == "BOOLEAN":
        if raw.lower() not in ("true", "false"):
            raise fail("true or false")
        return raw.lower() == "true"
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise fail(f"JSON ({kind.lower()})") from None


@dataclasses.dataclass(frozen=True)
class Submitted:
    """A run or recurring run the cluster accepted."""

    kind: str
    id: str
    name: str
    url: str


def check_reachable(host: str, timeout: float = 15.0) -> None:
    """Fail fast, with a clear message, when nothing answers at `host` (any HTTP answer will do)."""
    if not re.match(r"^https?://", host):
        raise TlpipeError(f"--host {host!r}: allowed: an http:// or https:// URL of the Kubeflow Pipelines API, "
                          "e.g. http://localhost:8080 after `kubectl port-forward -n kubeflow svc/ml-pipeline-ui "
                          "8080:80`")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # as kfp.Client: no proxy from env
    try:
        with opener.open(host.rstrip("/") + HEALTHZ_PATH, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TlpipeError(f"cannot reach Kubeflow Pipelines at {host!r} ({reason}); check --host (or "
                          "kubeflow.host), the port-forward or the network") from None


@contextlib.contextmanager
def _kfp_call(host: str) -> Iterator[None]:
    """Turn what the kfp client raises into TlpipeErrors, and keep its printed links off stdout."""
    import kfp_server_api
    import urllib3

    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", FutureWarning)
            yield
    except kfp_server_api.ApiException as error:
        raise TlpipeError(f"Kubeflow Pipelines at {host!r} refused the request: HTTP {error.status} "
                          f"{error.reason}: {_api_message(error.body)}") from None
    except urllib3.exceptions.HTTPError as error:
        raise TlpipeError(f"cannot reach Kubeflow Pipelines at {host!r} ({error})") from None
    except TimeoutError:  # kfp.Client gives up on the health check after 5 refused attempts
        raise TlpipeError(f"Kubeflow Pipelines at {host!r} refused its health check ({HEALTHZ_PATH}) 5 times: "
                          "is --host the Pipelines API endpoint, and is the client authenticated?") from None


def _api_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return str(body or "").strip()[:500]
    if isinstance(payload, dict):
        return str(payload.get("error_message") or payload.get("message") or payload)
    return str(payload)


def connect(host: str, namespace: Optional[str] = None) -> Any:
    """A `kfp.Client` for `host`, after checking that something answers there."""
    import kfp

    check_reachable(host)
    with _kfp_call(host):
        return kfp.Client(host=host.rstrip("/"), namespace=namespace or "kubeflow")


def submit_run(
    host: str, package: PipelinePackage, parameters: dict[str, Any], *, experiment: str,
    run_name: str, namespace: Optional[str] = None,
) -> Submitted:
    """Create one run of `package` in `experiment` (created when missing)."""
    client = connect(host, namespace)
    with _kfp_call(host):
        result = client.create_run_from_pipeline_package(
            pipeline_file=package.path, arguments=parameters, run_name=run_name,
            experiment_name=experiment, namespace=namespace,
        )
    run_id = result.run_id
    return Submitted("run", run_id, run_name, f"{host.rstrip('/')}/#/runs/details/{run_id}")


def schedule_run(
    host: str, package: PipelinePackage, schedule: CronSchedule, parameters: dict[str, Any], *,
    experiment: str, name: str, catchup: bool = False, namespace: Optional[str] = None,
) -> Submitted:
    """Create a recurring run of `package`: at most one run at a time, no catch-up unless `catchup`."""
    client = connect(host, namespace)
    with _kfp_call(host):
        experiment_id = client.create_experiment(name=experiment, namespace=namespace).experiment_id
        recurring = client.create_recurring_run(
            experiment_id=experiment_id, job_name=name, cron_expression=schedule.expression,
            max_concurrency=MAX_CONCURRENCY, no_catchup=not catchup, params=parameters,
            pipeline_package_path=package.path, enabled=True,
        )
    recurring_id = recurring.recurring_run_id
    return Submitted("recurring run", recurring_id, name,
                     f"{host.rstrip('/')}/#/recurringrun/details/{recurring_id}")
