"""Source pre-training: train a feature extractor on a source task and publish it as a TF-Hub module.

This is how a team publishes its own domain feature extractor (and how the
embedded default gets one offline): a small CNN with a softmax head learns the
source classes end to end (the baseline fit loop: warm-up, cosine decay, early
stopping, checkpoints, history), then only the feature extractor is exported
with `export_hub_module`, the source classifier beside it as a second
signature (for transferability scores such as LEEP). The module records its
architecture, so the target pipeline's baseline can be the same network,
randomly initialised.

Budget: the hyper-rule's `source_schedule` (a step cap; stops once the source
eval accuracy has not improved for a few epochs), with flip/shift
augmentation.

Architecture (`source.conv_filters`, `source.convs_per_block`): the plain
small CNN, one conv-BN-ReLU per block, [32, 64, 128]. Measured with
`bench/bench_source_architectures.py` (three candidates of about the same
cost, 4 augmented epochs on the source, then 10 target labels per class, two
samples; target test accuracy): plain 0.901 source eval accuracy, linear
probe 0.799 / 0.751, fine-tuned 0.876 / 0.824; two narrower convs per block
[16, 32, 64] 0.926, 0.676 / 0.667, 0.818 / 0.790; a fourth block
[24, 48, 96, 192] 0.927, 0.818 / 0.785, 0.852 / 0.829. A better source
accuracy did not mean better transfer: the plain network fine-tunes best
(fine-tuning is what wins on the target), the four-block one has slightly
better frozen features.

Reproducible: Keras' global seed and TensorFlow's op determinism
(`make_deterministic`) make the published module bit-identical for the same
`source.seed` in any fresh process, so target metrics do not move with it
(tests/components/trainer/test_pretrain_determinism.py).
"""

from __future__ import annotations

import os
from typing import Any

import keras

from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.plumbing.progress import log
from tlpipe.components.trainer.config import SourceConfig
from tlpipe.components.trainer.data import default_augmentation, load_transformed
from tlpipe.components.trainer.determinism import make_deterministic
from tlpipe.models.builders import BASE_LAYER_NAME, CLASSIFIER_NAME, build_small_cnn
from tlpipe.models.fit import BASELINE, fit_baseline
from tlpipe.models.hyperrule import SOURCE_PATIENCE, source_schedule
from tlpipe.models.publish import export_hub_module
from tlpipe.models.plumbing.errors import DataError

SUMMARY_FILE = "tlpipe_source.json"


def pretrain_and_publish(config: SourceConfig, transformed_dir: str, module_dir: str, *,
                         work_dir: str | None = None) -> dict[str, Any]:
    """Pre-train on `transformed_dir` (train and eval splits) and publish the features into `module_dir`.

    Training state (checkpoints, history, TensorBoard logs) goes to `work_dir`
    (default: `<module_dir>.work`), so an interrupted pre-training resumes.
    Returns a summary that is also written next to the module.
    """
    data = load_transformed(transformed_dir)
    expected = (*config.image_size, config.channels)
    if data.image_shape != tuple(expected):
        raise DataError(
            f"source data in {transformed_dir!r} has images of shape {data.image_shape}; "
            f"source.image_size/channels ask for {expected}: transform the source data with that geometry"
        )
    make_deterministic(config.seed)
    features = build_small_cnn(expected, config.conv_filters, convs_per_block=config.convs_per_block,
                               name=BASE_LAYER_NAME)
    inputs = keras.Input(shape=expected, name="image")
    hidden = keras.layers.Dropout(0.2, name="head_dropout")(features(inputs))
    outputs = keras.layers.Dense(data.num_classes, activation="softmax", name=CLASSIFIER_NAME)(hidden)
    model = keras.Model(inputs, outputs, name="source_classifier")
    schedule = source_schedule(data.num_train, data.num_classes, batch_size=config.batch_size,
                               learning_rate=config.learning_rate, epochs=config.epochs)
    work_dir = work_dir or os.path.abspath(module_dir) + ".work"
    log(f"pretrain: {data.num_train} examples of {data.num_classes} source classes, at most "
        f"{schedule.baseline_epochs} epochs of {schedule.steps_per_epoch} steps (seed {config.seed})")
    augment = default_augmentation(seed=config.seed) if config.augment else None
    history = fit_baseline(model, data.train, data.eval, schedule=schedule, output_dir=work_dir,
                           augment=augment, early_stopping_patience=SOURCE_PATIENCE, seed=config.seed,
                           log_prefix="pretrain ")
    export_hub_module(features, module_dir, input_size=expected, source_classifier=model,
                      source_classes=data.label_names)
    summary = {
        "source_classes": data.label_names,
        "num_train": data.num_train,
        "eval_accuracy": history.get("best", {}).get("val_accuracy"),
        "epochs_planned": schedule.baseline_epochs,
        "epochs_run": history["phases"][BASELINE]["epochs_run"],
        "stopped_early": history["phases"][BASELINE]["stopped_early"],
        "steps": history["total_steps"],
        "input_size": list(expected),
        "conv_filters": list(config.conv_filters),
        "convs_per_block": config.convs_per_block,
        "seed": config.seed,
        "augment": config.augment,
        "work_dir": work_dir,
    }
    write_json(os.path.join(module_dir, SUMMARY_FILE), summary)
    log(f"pretrain: published {module_dir} (source eval accuracy {summary['eval_accuracy']})")
    return summary
