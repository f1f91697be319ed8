"""trainer.regularization: validated with its key, passed to the fit, its penalty in the history."""

from __future__ import annotations

import json
import os

import pytest

from tlpipe.components.config_schema import validate_tree
from tlpipe.components.trainer.config import RegularizationConfig, TrainerConfig
from tlpipe.components.trainer.executor import train_transfer
from tlpipe.models.plumbing.errors import ConfigError

pytestmark = pytest.mark.quick


@pytest.mark.parametrize("settings, key", [
    ({"kind": "l1"}, "trainer.regularization.kind"),
    ({"kind": "l2_sp", "alpha": -0.1}, "trainer.regularization.alpha"),
    ({"kind": "bss", "k": 0}, "trainer.regularization.k"),
])
def test_bad_regularization_settings_name_their_key(settings, key):
    config = TrainerConfig(regularization=RegularizationConfig(**settings))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_tree(config, "trainer")


def test_l2_sp_fine_tuning_records_its_penalty(grey_hub_module, transformed_dir, tmp_path):
    config = TrainerConfig(batch_size=6, head_epochs=2, fine_tune_epochs=2, head_learning_rate=0.05,
                           regularization=RegularizationConfig(kind="l2_sp", alpha=10.0, beta=0.01))
    summary = train_transfer(config, transformed_dir, str(tmp_path / "run"), strategy="fine_tune_all",
                             handle=grey_hub_module)
    with open(os.path.join(tmp_path / "run", "history.json")) as handle:
        history = json.load(handle)
    assert summary["eval_accuracy"] >= 0
    assert [entry["phase"] for entry in history["entries"]] == ["head", "head", "fine_tune", "fine_tune"]
    assert all(entry["penalty"] > 0 for entry in history["entries"])  # beta on the head from the first epoch
    assert history["phases"]["fine_tune"]["regularization"] == {
        "kind": "l2_sp", "alpha": 10.0, "beta": 0.01, "eta": 0.001, "k": 1}
