"""trainer executor of the domain-adaptation strategies: labelled source domain + unlabelled target domain.

`train_domain_adaptation` builds the transfer model on `handle` (as
`train_transfer` does), trains it with `method`:

- "dann": domain-adversarial training (`tlpipe.models.domain`), source labels
  + unlabelled target images;
- "source_only": the same loop and budget on the source labels alone, the
  reference the adapted models are compared with;
- "bn_adapt": the source-only model with its base's batch-norm statistics
  re-estimated on the unlabelled target images (AdaBN); with
  `teacher_model_dir` (a source_only step's exported model) it reuses that
  training instead of repeating it,

and exports it like every other trained model (`executor._train`: same
`model/`, `history.json`, `config.json`, `summary.json`, serving signatures,
so TFMA evaluates it on the target's test split). It also writes

  shift.json          proxy A-distance and MMD between source and target samples
                      on the base's features, before training and after
                      (`SHIFT_FILE`; the shift report reads it)
  classifier.weights.h5  the trained Keras weights (`WEIGHTS_FILE`), which a
                      bn_adapt step adapts instead of training again

The domains must have the same classes in the same order: a ConfigError
names the classes of each side otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, ClassVar, Optional

import keras
import numpy as np
import tensorflow as tf

from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import TransformedData
from tlpipe.components.trainer.engine import checkpoint_dir_for, train_and_export
from tlpipe.components.trainer.executor import configured_transfer_model
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.adabn import adapt_batch_norm
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.domain import DANN, SOURCE_ONLY, fit_domain_adversarial, sample_images
from tlpipe.models.plumbing.errors import ConfigError, DataError
from tlpipe.models.examples import decode_examples
from tlpipe.models.hyperrule import Schedule
from tlpipe.models.plumbing.layout import HISTORY_FILE, SHIFT_FILE, SUMMARY_FILE
from tlpipe.models.plumbing.progress import log
from tlpipe.models.shift import measure_shift

BN_ADAPT = "bn_adapt"
METHODS = (DANN, BN_ADAPT, SOURCE_ONLY)  # DANN and SOURCE_ONLY: models/domain.py's two fits
WEIGHTS_FILE = "classifier.weights.h5"
_DECODE_BATCH = 256


@dataclasses.dataclass(frozen=True)
class DomainRecipe:
    """A transfer model trained on the labelled source domain by `method`; it records the shift before and
    after training into `shift` (and shift.json)."""

    kind: ClassVar[str] = "domain_adaptation"
    config: TrainerConfig
    handle: str
    method: str
    strategy: str
    output_dir: str
    target: _Split  # the unlabelled target split
    target_eval: Optional[tf.data.Dataset]  # labelled target examples, reported per epoch only
    teacher_model_dir: Optional[str]
    shift: dict[str, Any]
    work_dir: Optional[str] = None  # the step's work folder: the fit's checkpoints, which a rerun resumes from

    def build(self, data: TransformedData) -> keras.Model:
        return configured_transfer_model(self.config, self.handle, data, name=f"domain_{self.strategy}")

    def fit(self, model: keras.Model, data: TransformedData, schedule: Schedule) -> dict[str, Any]:
        config, domain, strategy, target, shift = self.config, self.config.domain, self.strategy, self.target, self.shift
        source_sample = sample_images(data.train, domain.shift_samples, seed=config.seed)
        target_sample = sample_images(target.images, domain.shift_samples, seed=config.seed)
        shift["before"] = _measure(model, source_sample, target_sample, config.seed)
        log(f"trainer [{strategy}]: shift before training: {_describe(shift['before'])}")
        if self.method == BN_ADAPT and self.teacher_model_dir is not None:
            history = _reuse_source_only(model, self.teacher_model_dir, self.output_dir)
        else:
            batch_size = domain.batch_size or schedule.batch_size
            history = fit_domain_adversarial(
                model, data.train, data.eval, target.images, output_dir=self.output_dir,
                epochs=domain.epochs, steps_per_epoch=domain.steps_per_epoch or math.ceil(data.num_train / batch_size),
                batch_size=batch_size, learning_rate=domain.learning_rate,
                base_learning_rate_factor=domain.base_learning_rate_factor, adapt=self.method == DANN,
                discriminator_units=domain.discriminator_units, gamma=domain.gamma,
                target_eval=self.target_eval, seed=config.seed, log_prefix=f"trainer [{strategy}] ",
                checkpoint_dir=checkpoint_dir_for(self.work_dir),
            )
        if self.method == BN_ADAPT:
            started = time.monotonic()
            adapted = adapt_batch_norm(model, target.images)
            history["adabn"] = {"statistics": adapted, "target_examples": target.count,
                                "seconds": round(time.monotonic() - started, 3)}
            log(f"trainer [{strategy}]: re-estimated {len(adapted)} batch-norm statistics on {target.count} "
                f"target images")
            write_json(os.path.join(self.output_dir, HISTORY_FILE), history)
        model.save_weights(os.path.join(self.output_dir, WEIGHTS_FILE))
        shift["after"] = _measure(model, source_sample, target_sample, config.seed)
        log(f"trainer [{strategy}]: shift after training: {_describe(shift['after'])}")
        write_json(os.path.join(self.output_dir, SHIFT_FILE), shift)
        return history


def train_domain_adaptation(
    config: TrainerConfig,
    source_transformed_dir: str,
    target_transformed_dir: str,
    output_dir: str,
    *,
    handle: str,
    method: str,
    strategy: str,
    work_dir: Optional[str] = None,
    teacher_model_dir: Optional[str] = None,
) -> dict[str, Any]:
    """Train on the labelled source domain (+ unlabelled target) with `method`; export; return the summary.

    `source_transformed_dir`: the source domain's transform artifact (train
    and eval splits, labelled), at the geometry of `handle`'s input.
    `target_transformed_dir`: the target domain's, with
    `config.domain.unlabeled_split` (labels never read) and optionally
    `config.domain.target_eval_split` (labelled; reported only).
    `strategy` names the model in its records (components/strategies/domain.py: the literature's name of
    each method).
    `work_dir` holds the fit's checkpoints (after every epoch; without it,
    `<output_dir>/checkpoints`): a rerun of the same work after a kill resumes
    after the last complete epoch. `teacher_model_dir`, for "bn_adapt" only: the exported
    model of a "source_only" run of the same config, whose weights are adapted
    instead of training again.
    """
    if method not in METHODS:
        raise ConfigError("method", method, METHODS)
    if teacher_model_dir is not None and method != BN_ADAPT:
        raise ConfigError("teacher_model_dir", teacher_model_dir, f"None unless method is '{BN_ADAPT}'")
    domain = config.domain
    source_names = _label_names(source_transformed_dir, "source")
    target_names = _label_names(target_transformed_dir, "target")
    check_same_classes(source_names, target_names)
    target = load_split(target_transformed_dir, domain.unlabeled_split, with_labels=False)
    target_eval = _optional_labelled(target_transformed_dir, domain.target_eval_split)
    shift: dict[str, Any] = {"unlabeled_split": domain.unlabeled_split, "samples_per_domain": domain.shift_samples}

    recipe = DomainRecipe(config, handle, method, strategy, output_dir, target, target_eval, teacher_model_dir, shift,
                          work_dir)
    summary = train_and_export(config, source_transformed_dir, output_dir, recipe, strategy=strategy, handle=handle)
    summary.update(method=method, shift=shift, target_dir=os.path.abspath(target_transformed_dir),
                   num_target_unlabeled=target.count)
    write_json(os.path.join(output_dir, SUMMARY_FILE), summary)
    return summary


class _Split:
    """One split of a transform artifact: its images (and labels) as an unbatched dataset, and its size."""

    def __init__(self, images: tf.data.Dataset, count: int):
        self.images = images
        self.count = count


def load_split(transformed_dir: str, split: str, *, with_labels: bool) -> _Split:
    """Split `split` of a transform artifact: unbatched images, or (image, label) pairs when `with_labels`."""
    metadata = fmt.read_metadata(transformed_dir, expected="a transform artifact (run the transform component first)")
    files = fmt.split_files(transformed_dir, split)
    if not files:
        present = sorted(name for name in os.listdir(transformed_dir) if fmt.split_files(transformed_dir, name))
        raise DataError(f"the target data {transformed_dir!r} has no split {split!r}; splits present: "
                        f"{present or 'none'} (set trainer.domain.unlabeled_split to one of them)")
    if metadata.get("modality") != "image":
        raise DataError(f"domain adaptation needs image data; {transformed_dir!r} holds {metadata.get('modality')!r}")
    transform = metadata.get("transform") or {}
    shape = (*transform["image_size"], transform["channels"])
    count = int(tf.data.TFRecordDataset(files).reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if count == 0:
        raise DataError(f"split {split!r} of {transformed_dir!r} is empty")

    def decode(serialized: tf.Tensor) -> Any:
        images, labels = decode_examples(serialized, "image", shape, with_label=with_labels)
        return (images, labels) if with_labels else images

    data = (tf.data.TFRecordDataset(files).batch(_DECODE_BATCH).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch().apply(tf.data.experimental.assert_cardinality(count)))
    return _Split(data, count)


def check_same_classes(source_names: list[str], target_names: list[str]) -> None:
    """ConfigError unless the two domains have the same classes in the same order, naming both sides."""
    if list(source_names) == list(target_names):
        return
    only_source = [name for name in source_names if name not in target_names]
    only_target = [name for name in target_names if name not in source_names]
    if only_source or only_target:
        detail = f"only in the source: {only_source}; only in the target: {only_target}"
    else:
        detail = "the same classes in another order: list them in one order in ingest.classes and source.ingest.classes"
    raise ConfigError(
        "ingest.classes", target_names,
        f"the source domain's classes {list(source_names)} (domain adaptation needs the same classes in both "
        f"domains; {detail})",
    )


def _label_names(transformed_dir: str, domain: str) -> list[str]:
    metadata = fmt.read_metadata(transformed_dir, expected=f"the {domain} domain's transform artifact")
    return list(metadata["label_names"])


def _optional_labelled(transformed_dir: str, split: str) -> Optional[tf.data.Dataset]:
    if not fmt.split_files(transformed_dir, split):
        return None
    return load_split(transformed_dir, split, with_labels=True).images


def _measure(model: keras.Model, source: np.ndarray, target: np.ndarray, seed: int) -> dict[str, Any]:
    """Shift between the two samples on the features of `model`'s base, in inference mode."""
    from tlpipe.models._classifier import feature_model

    extractor = feature_model(model)
    features = [extractor.predict(images, batch_size=_DECODE_BATCH, verbose=0) for images in (source, target)]
    return measure_shift(*features, seed=seed).to_dict()


def _describe(measure: dict[str, Any]) -> str:
    return (f"proxy A-distance {measure['proxy_a_distance']:.3f} ({measure['level']}), "
            f"MMD^2 {measure['mmd2']:.4f}")


def _reuse_source_only(model: keras.Model, teacher_model_dir: str, output_dir: str) -> dict[str, Any]:
    """Load the weights a source_only run saved beside its exported model; its history is this one's."""
    from tlpipe.models.plumbing.artifacts import read_json

    trained_dir = os.path.dirname(os.path.abspath(teacher_model_dir.rstrip("/")))
    weights = os.path.join(trained_dir, WEIGHTS_FILE)
    history_file = os.path.join(trained_dir, HISTORY_FILE)
    if not os.path.isfile(weights) or not os.path.isfile(history_file):
        raise DataError(f"{teacher_model_dir!r} is not the model of a source_only domain-adaptation run: "
                        f"{WEIGHTS_FILE} or {HISTORY_FILE} is missing in {trained_dir!r}")
    model.load_weights(weights)
    history = read_json(history_file)
    history["reused_from"] = trained_dir
    write_json(os.path.join(output_dir, HISTORY_FILE), history)
    log(f"trainer [bn_adapt]: reusing the source_only model trained in {trained_dir}")
    return history
