"""Which tf.distribute strategy the trainer runs under.

`auto` reads the environment: a TF_CONFIG naming several workers (what
Kubeflow's TFJob / training operators set) -> MultiWorkerMirroredStrategy;
several local GPUs -> MirroredStrategy; else TensorFlow's default strategy
(one device). `default`, `mirrored` and `multi_worker` force a choice. Model
building and fitting happen inside the strategy's scope, so variables are
mirrored and batches split across replicas.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

from tlpipe.models.plumbing.errors import ConfigError

DISTRIBUTIONS = ("auto", "default", "mirrored", "multi_worker")


def cluster_workers(environ: Mapping[str, str]) -> int:
    """Number of workers (chief included) that TF_CONFIG describes; 0 when it is absent."""
    raw = environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        cluster = json.loads(raw).get("cluster", {})
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError("TF_CONFIG", raw, 'JSON like {"cluster": {"worker": ["host:port", ...]}, '
                                            '"task": {"type": "worker", "index": 0}}') from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve_distribution(name: str, *, environ: Optional[Mapping[str, str]] = None,
                         num_gpus: Optional[int] = None) -> str:
    """The concrete choice ('default', 'mirrored' or 'multi_worker') for configured `name`."""
    if name not in DISTRIBUTIONS:
        raise ConfigError("trainer.distribution", name, DISTRIBUTIONS)
    environ = os.environ if environ is None else environ
    if name == "multi_worker" and cluster_workers(environ) == 0:
        raise ConfigError("trainer.distribution", name,
                          "'multi_worker' only with a TF_CONFIG environment variable describing the cluster")
    if name != "auto":
        return name
    if cluster_workers(environ) > 1:
        return "multi_worker"
    if num_gpus is None:
        import tensorflow as tf

        num_gpus = len(tf.config.list_logical_devices("GPU"))
    return "mirrored" if num_gpus > 1 else "default"


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy for configured `name` (see the module docstring)."""
    import tensorflow as tf

    choice = resolve_distribution(name)
    if choice == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if choice == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
