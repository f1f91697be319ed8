"""Same seeds -> a bit-identical published source module and identical target metrics, in two fresh processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

# Pre-train (augmented, dropout, batch norm: every random draw there is) and publish the module, then
# fine-tune a transfer model on it; print the summaries as JSON on the last line.
_SCRIPT = """
import json, sys
from tlpipe.components.trainer.config import BaselineConfig, SourceConfig, TrainerConfig
from tlpipe.components.trainer.executor import train_transfer
from tlpipe.components.trainer.pretrain import pretrain_and_publish

data, out = sys.argv[1], sys.argv[2]
source = SourceConfig(image_size=[12, 12], channels=1, conv_filters=[4, 8], epochs=3, batch_size=6,
                      augment=True, seed=3)
pretrained = pretrain_and_publish(source, data, out + "/module")
trainer = TrainerConfig(batch_size=6, head_epochs=2, fine_tune_epochs=2, head_learning_rate=0.05,
                        base_training="training", augment=True, seed=5, baseline=BaselineConfig(epochs=2))
transfer = train_transfer(trainer, data, out + "/fine_tune_all", strategy="fine_tune_all", handle=out + "/module")
print(json.dumps({"pretrain": pretrained, "transfer": transfer}))
"""


def _run(transformed_dir: str, output_dir: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, transformed_dir, output_dir], capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _variables(module_dir: str) -> dict[str, np.ndarray]:
    module = tf.saved_model.load(module_dir)
    return {variable.name: variable.numpy() for variable in module.variables}


def _history(output_dir: str) -> list[dict]:
    with open(os.path.join(output_dir, "history.json")) as handle:
        entries = json.load(handle)["entries"]
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in entries]


def test_two_fresh_processes_publish_the_same_module_and_reach_the_same_metrics(transformed_dir, tmp_path):
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    summaries = [_run(transformed_dir, first), _run(transformed_dir, second)]

    variables = [_variables(os.path.join(folder, "module")) for folder in (first, second)]
    assert variables[0] and sorted(variables[0]) == sorted(variables[1])
    for name, value in variables[0].items():
        assert np.array_equal(value, variables[1][name]), name  # bit-identical, not merely close
    assert summaries[0]["pretrain"]["eval_accuracy"] == summaries[1]["pretrain"]["eval_accuracy"]
    assert summaries[0]["pretrain"]["seed"] == 3
    assert _history(os.path.join(first, "module.work")) == _history(os.path.join(second, "module.work"))

    assert _history(os.path.join(first, "fine_tune_all")) == _history(os.path.join(second, "fine_tune_all"))
    assert summaries[0]["transfer"]["eval_accuracy"] == summaries[1]["transfer"]["eval_accuracy"]
    assert summaries[0]["transfer"]["eval_loss"] == summaries[1]["transfer"]["eval_loss"]
