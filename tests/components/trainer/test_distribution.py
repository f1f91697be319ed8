"""The trainer's tf.distribute strategy: chosen from the environment or the config, and trained under."""

import json
import os

import pytest

from tlpipe.components.trainer.config import BaselineConfig, TrainerConfig
from tlpipe.components.trainer.distribution import cluster_workers, resolve_distribution
from tlpipe.components.trainer.executor import train_transfer
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick

TWO_WORKERS = json.dumps({"cluster": {"worker": ["a:2222", "b:2222"]}, "task": {"type": "worker", "index": 0}})


@pytest.mark.parametrize("name, environ, gpus, expected", [
    ("auto", {}, 0, "default"),
    ("auto", {}, 1, "default"),
    ("auto", {}, 2, "mirrored"),
    ("auto", {"TF_CONFIG": TWO_WORKERS}, 0, "multi_worker"),
    ("mirrored", {}, 0, "mirrored"),
    ("default", {"TF_CONFIG": TWO_WORKERS}, 4, "default"),
    ("multi_worker", {"TF_CONFIG": TWO_WORKERS}, 0, "multi_worker"),
])
def test_the_choice_follows_config_then_environment(name, environ, gpus, expected):
    assert resolve_distribution(name, environ=environ, num_gpus=gpus) == expected


def test_bad_requests_are_clear_errors():
    with pytest.raises(ConfigError, match="TF_CONFIG"):
        resolve_distribution("multi_worker", environ={}, num_gpus=0)
    with pytest.raises(ConfigError, match="trainer.distribution"):
        resolve_distribution("tpu", environ={}, num_gpus=0)
    with pytest.raises(ConfigError, match="JSON"):
        cluster_workers({"TF_CONFIG": "{not json"})
    assert cluster_workers({"TF_CONFIG": json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1"]}})}) == 2


@pytest.mark.parametrize("distribution, strategy_name", [("default", "_DefaultDistributionStrategy"),
                                                         ("mirrored", "MirroredStrategy")])
def test_the_trainer_trains_and_exports_under_the_strategy(distribution, strategy_name, grey_hub_module,
                                                            transformed_dir, tmp_path):
    config = TrainerConfig(batch_size=6, head_epochs=2, fine_tune_epochs=1, head_learning_rate=0.05,
                           baseline=BaselineConfig(epochs=2), distribution=distribution)
    summary = train_transfer(config, transformed_dir, str(tmp_path / "out"), strategy="fine_tune_all",
                             handle=grey_hub_module)
    assert summary["distribution"] == {"strategy": strategy_name, "replicas": 1}
    assert summary["total_steps"] > 0
    assert os.path.isfile(os.path.join(summary["model_dir"], "saved_model.pb"))
