"""The `beam` section's runners: what 'dask' refuses, before any work, and why."""

from __future__ import annotations

import pytest

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.pipeline.config import load_config

pytestmark = pytest.mark.quick


def test_dask_is_a_runner_and_beams_own_dask_runner_name_points_to_it():
    BeamConfig(runner="dask", options=["--dask_client_address=scheduler:8786"]).validate()
    with pytest.raises(ConfigError, match="config key 'runner': received 'DaskRunner'; allowed: 'dask'"):
        BeamConfig(runner="DaskRunner").validate()


def test_the_evaluator_refuses_dask_before_reading_anything(tmp_path):
    with pytest.raises(ConfigError) as raised:
        run_evaluator(EvaluatorConfig(), str(tmp_path / "missing"), {"feature_extraction": str(tmp_path / "no")},
                      {"baseline": str(tmp_path / "no")}, str(tmp_path / "out"), beam_config=BeamConfig(runner="dask"))
    assert raised.value.key == "beam.runner" and raised.value.received == "dask"
    assert "splittable DoFn" in str(raised.value) and "ingest and transform only" in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_a_pipeline_on_dask_is_refused_when_its_config_is_read():
    with pytest.raises(ConfigError, match="config key 'beam.runner': received 'dask'"):
        load_config(overrides=["beam.runner=dask"])
