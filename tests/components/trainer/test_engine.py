"""The shared training engine runs any `Recipe`: a toy strategy written here trains, exports and is recorded."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, ClassVar

import keras
import numpy as np
import pytest
import tensorflow as tf

from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import TransformedData
from tlpipe.components.trainer.engine import CONFIG_FILE, checkpoint_dir_for, train_and_export
from tlpipe.components.trainer.spec import MODEL_DIR
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.fit import fit_baseline
from tlpipe.models.plumbing.layout import SUMMARY_FILE

pytestmark = pytest.mark.quick


@dataclasses.dataclass(frozen=True)
class MeanColourRecipe:
    """A toy strategy: a linear classifier on each image's mean intensity, fit as the baseline is."""

    kind: ClassVar[str] = "toy"
    output_dir: str
    built: list = dataclasses.field(default_factory=list)

    def build(self, data: TransformedData) -> keras.Model:
        inputs = keras.Input(data.image_shape)
        # export_for_serving needs tlpipe's layer names: the base and the head's last Dense layer
        base = keras.Sequential([keras.layers.GlobalAveragePooling2D()], name="feature_extractor")
        classifier = keras.layers.Dense(data.num_classes, activation="softmax", name="classifier")
        model = keras.Model(inputs, classifier(base(inputs)), name="toy")
        self.built.append(model)
        return model

    def fit(self, model: keras.Model, data: TransformedData, schedule) -> dict[str, Any]:
        return fit_baseline(model, data.train, data.eval, schedule=schedule, output_dir=self.output_dir)


def test_a_recipe_is_trained_exported_and_recorded(transformed_dir, tmp_path):
    output_dir = str(tmp_path / "toy")
    recipe = MeanColourRecipe(output_dir)
    config = TrainerConfig(batch_size=6, baseline=dataclasses.replace(TrainerConfig().baseline, epochs=2))
    summary = train_and_export(config, transformed_dir, output_dir, recipe, strategy="mean_colour", handle="",
                               extra={"note": "toy"})

    assert len(recipe.built) == 1
    assert (summary["kind"], summary["strategy"], summary["note"]) == ("toy", "mean_colour", "toy")
    assert summary["epochs_run"] == {"baseline": 2} and summary["num_train"] == 18
    with open(os.path.join(output_dir, SUMMARY_FILE)) as handle:
        assert json.load(handle) == json.loads(json.dumps(summary))
    with open(os.path.join(output_dir, CONFIG_FILE)) as handle:
        effective = json.load(handle)
    assert effective["kind"] == "toy" and effective["schedule"]["baseline_epochs"] == 2
    # the export serves the recipe's model: its predictions on the eval split give the summary's accuracy
    serialized = list(tf.data.TFRecordDataset(fmt.split_files(transformed_dir, "eval")).as_numpy_iterator())
    labels = [tf.train.Example.FromString(s).features.feature[fmt.LABEL_KEY].int64_list.value[0] for s in serialized]
    served = tf.saved_model.load(os.path.join(output_dir, MODEL_DIR)).signatures["serving_default"]
    predicted = served(examples=tf.constant(serialized))["class_ids"].numpy()
    assert np.mean(predicted == np.array(labels)) == pytest.approx(summary["eval_accuracy"])


def test_checkpoints_live_under_the_work_folder_when_there_is_one(tmp_path):
    assert checkpoint_dir_for(str(tmp_path)) == str(tmp_path / "checkpoints")
    assert checkpoint_dir_for(None) is None
