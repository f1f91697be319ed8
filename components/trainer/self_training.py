"""Self-training (pseudo-labelling): the target's unlabelled images get labels, a student learns from all of them.

The few labels of a k-shot target leave most of its training images unused;
ingest writes them, labels removed, as the `unlabeled` split
(`ingest.unlabeled: true`). A teacher (`trainer.self_training.teacher`: the
fine-tuned model by default, or the frozen `feature_extraction` model, as
exported by the trainer) is trained first, in its own step. Its labeler (`trainer.self_training.labeler`):

- "propagation" (the default): the labelled train examples' labels are spread
  over a nearest-neighbour graph of the train and unlabeled examples, built on
  the teacher's penultimate features (its `serving_features` signature) beside
  the images' principal components (`models/propagation.py`; Iscen et al.
  2019). Every unlabelled image whose propagated score reaches the threshold
  (0.5 by default) gets its label.
- "teacher": the teacher's own predictions; confident ones (>= 0.9 by
  default), at most 100 per class, the most confident first (TLlib's
  pseudo-label self-training).

The pseudo-labelled examples join the labelled training set and a student is
trained from the pre-trained module again (`trainer.self_training.student`:
the two-phase fit of `fine_tune_all` by default, or a head on the frozen
module's features, `feature_extraction`; a student
set of a thousand examples or more gets the hyper-rule's `student_settings`
budget instead of its size tier's). For `rounds` > 1 each student is the next
round's teacher.

What each model saw is explicit: the labelled `train` split, the pseudo-
labelled examples (their ids and labels in `pseudo_labels.json`), and the
labelled `eval` split for early stopping only; eval and test are never
pseudo-labelled nor part of the graph, and the test split is never read here.

`train_baseline_self_training` does the same from scratch (the from-scratch
baseline as teacher, a from-scratch student): the apples-to-apples reference
when the baseline may use the unlabelled images too
(`trainer.baseline.self_training: true`).

Why propagation: measured on the embedded default (10 labels per class,
`bench/bench_default_strategies.py`), the teacher's own confident
pseudo-labels were right 98-99% of the time, yet the student stayed below its
teacher (seed 0: 0.801 vs 0.832 test accuracy): the confident examples are the
teacher's easiest, and its mistakes are confident too (336 of 1,000 test
shirts taken for bags). Propagated labels follow the images' neighbourhoods
instead; with them the seed-0 student reached 0.920 (the table for all seeds
is in bench/README.md).

Memory does not grow with the pool's examples: they are streamed from the
`unlabeled` shards (`RecordSplit`) for each view of the graph, and the
student's pseudo-labelled examples are picked from the same stream, decoded as
the fit reads them (the fit's shuffle holds a bounded window,
`SHUFFLE_BUFFER_BYTES`). What is held whole is one row per example: the
teacher's features, the principal components, the scores.

Output folder: the final student, exactly as `train_transfer` writes it
(model/, history.json, summary.json with a `self_training` entry, ...), plus
`pseudo_labels.json`; earlier rounds' students under `rounds/round-<i>/`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Optional

import numpy as np
import tensorflow as tf

from tlpipe.components.trainer.config import TrainerConfig
from tlpipe.components.trainer.data import (
    TRAIN_SPLIT, RecordSplit, TransformedData, decoded_bytes, in_shard_buckets, load_transformed, read_split,
    shard_buckets,
)
from tlpipe.components.trainer.executor import train_baseline, train_transfer
from tlpipe.components.trainer.self_training_config import (
    FEATURE_EXTRACTION, LAST_EPOCH, TEACHER, SelfTrainingConfig,
)
from tlpipe.components.trainer.spec import MODEL_DIR
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import write_json
from tlpipe.models.plumbing.errors import DataError, ModelError
from tlpipe.models.examples import decode_examples
from tlpipe.models.hyperrule import student_settings
from tlpipe.models.propagation import join_views, principal_components_of_batches, propagate_labels
from tlpipe.models.serving import DEFAULT_SIGNATURE, FEATURES_OUTPUT, FEATURES_SIGNATURE
from tlpipe.models.plumbing.progress import log
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE

PSEUDO_LABELS_FILE = "pseudo_labels.json"
ROUNDS_DIR = "rounds"
_PREDICT_BATCH = 512
# The raw-pixel view of the graph sees images area-averaged to at most this side: principal components cost
# O(N * D^2) in the number of input values D, and upsampled images (28x28 Fashion-MNIST fed to a 96x96 module)
# carry no more than their native resolution anyway.
RAW_VIEW_SIDE = 32


def train_self_training(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                        teacher_model_dir: str, work_dir: Optional[str] = None,
                        strategy: str) -> dict[str, Any]:
    """Pseudo-label the `unlabeled` split with the teacher; train a transfer student on `handle`; its summary.

    `teacher_model_dir` is an exported model (`export_for_serving`'s SavedModel)
    or a trainer output folder holding one in `model/`.
    """
    return _self_train(config, transformed_dir, output_dir, handle=handle, teacher_model_dir=teacher_model_dir,
                       work_dir=work_dir, strategy=strategy, scratch=False)


def train_baseline_self_training(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                                 teacher_model_dir: str, work_dir: Optional[str] = None,
                                 strategy: str) -> dict[str, Any]:
    """The from-scratch counterpart: `teacher_model_dir` is the from-scratch baseline, the student is one too."""
    return _self_train(config, transformed_dir, output_dir, handle=handle, teacher_model_dir=teacher_model_dir,
                       work_dir=work_dir, strategy=strategy, scratch=True)


def select_pseudo_labels(probabilities: np.ndarray, threshold: float,
                         max_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, labels) of the confident predictions, at most `max_per_class` per class, most confident first.

    Indices come back sorted; a prediction is confident when its top probability is at least `threshold`.
    """
    confidence = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1)
    chosen = []
    for label in range(probabilities.shape[1]):
        candidates = np.flatnonzero((predicted == label) & (confidence >= threshold))
        most_confident = candidates[np.argsort(-confidence[candidates], kind="stable")]
        chosen.append(most_confident[:max_per_class])
    indices = np.sort(np.concatenate(chosen)).astype(np.int64)
    return indices, predicted[indices].astype(np.int64)


def load_unlabeled(transformed_dir: str) -> RecordSplit:
    """The `unlabeled` split, streamed from its shards; DataError when it was not written or is empty."""
    pool = read_split(transformed_dir, fmt.UNLABELED_SPLIT)
    if not pool.files:
        raise DataError(
            f"transformed data {transformed_dir!r} has no {fmt.UNLABELED_SPLIT!r} split "
            f"({fmt.split_dir(transformed_dir, fmt.UNLABELED_SPLIT)}/*{fmt.SHARD_SUFFIX}): self-training needs the "
            "unlabelled training examples; set ingest.unlabeled: true (with shots.train)"
        )
    if not pool.count:
        raise DataError(f"the {fmt.UNLABELED_SPLIT!r} split of {transformed_dir!r} is empty: nothing to pseudo-label")
    return pool


def _self_train(config: TrainerConfig, transformed_dir: str, output_dir: str, *, handle: str,
                teacher_model_dir: str, work_dir: Optional[str], strategy: str, scratch: bool) -> dict[str, Any]:
    settings = config.self_training
    settings.validate()
    threshold, max_per_class = settings.selection()
    labelled = load_transformed(transformed_dir)
    pool = load_unlabeled(transformed_dir)
    train = read_split(transformed_dir, TRAIN_SPLIT)
    teacher = _serving_model_dir(teacher_model_dir)
    summary: dict[str, Any] = {}
    for round_index in range(1, settings.rounds + 1):
        final = round_index == settings.rounds
        round_dir = output_dir if final else os.path.join(output_dir, ROUNDS_DIR, f"round-{round_index}")
        scores, teacher_features = label_scores(settings, teacher, train, pool, labelled)
        indices, labels = select_pseudo_labels(scores, threshold, max_per_class)
        if not len(indices):
            raise DataError(
                f"self-training round {round_index}: the {settings.labeler} scores reach {threshold} on none of "
                f"the {pool.count} unlabelled examples (highest: {scores.max():.3f}); lower "
                "trainer.self_training.threshold"
            )
        per_class = {name: int((labels == c).sum()) for c, name in enumerate(labelled.label_names)}
        seen = {
            "round": round_index,
            "rounds": settings.rounds,
            "teacher": teacher,
            "labeler": _describe_labeler(settings, labelled.modality),
            "student": "randomly initialised (from scratch)" if scratch else f"the pre-trained module {handle!r}",
            "labelled_train": labelled.num_train,
            "unlabeled_pool": pool.count,
            "pseudo_labelled": int(len(indices)),
            "pseudo_labels_per_class": per_class,
            "threshold": threshold,
            "max_per_class": max_per_class,
            "eval": f"{labelled.num_eval} labelled eval examples, for early stopping only (never pseudo-labelled)",
            "test": "never seen by the trainer (the evaluator's split)",
        }
        log(f"trainer [{strategy}]: round {round_index}/{settings.rounds}: {len(indices)} of {pool.count} "
            f"unlabelled examples pseudo-labelled ({settings.labeler}, teacher {teacher}; score >= {threshold}, "
            f"at most {max_per_class} per class: {per_class}) join {labelled.num_train} labels")
        data = with_pseudo_labels(labelled, pool, indices, labels)
        os.makedirs(round_dir, exist_ok=True)
        write_json(os.path.join(round_dir, PSEUDO_LABELS_FILE), {
            **seen, "examples": [{"id": example_id, "label": int(label), "label_name": labelled.label_names[label]}
                                 for example_id, label in zip(_ids(pool, indices), labels)],
        })
        round_work = os.path.join(work_dir, f"round-{round_index}") if work_dir else None
        student_config, student_schedule = _student_config(config, data.num_train)
        extra = {"self_training": {**seen, "student_schedule": student_schedule}}
        keep_last = settings.student_epoch == LAST_EPOCH
        if scratch:
            summary = train_baseline(student_config, transformed_dir, round_dir, handle=handle, strategy=strategy,
                                     work_dir=round_work, data=data, extra=extra, keep_last_epoch=keep_last)
        else:
            shared = _student_features(config, round_index, teacher_features, labelled,
                                       train, pool, indices)
            if shared is not None:
                log(f"trainer [{strategy}]: the frozen student reuses the teacher's features of its {len(shared)} "
                    "training examples (the module runs once over the unlabelled pool)")
            summary = train_transfer(student_config, transformed_dir, round_dir, strategy=settings.student,
                                     handle=handle, work_dir=round_work, name=strategy, data=data, extra=extra,
                                     keep_last_epoch=keep_last, train_features=shared)
        teacher = summary["model_dir"]
    return summary


def label_scores(settings: SelfTrainingConfig, teacher: str, train: RecordSplit, pool: RecordSplit,
                  labelled: TransformedData) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Class scores [N, K] of the unlabelled `pool` (the teacher's probabilities, or propagated labels from
    the labelled `train` split), and the teacher's features of `train` then `pool` when the graph was built
    on them.

    The examples are streamed from their shards, a batch at a time, once per view: what is held whole is
    one row per example (features, components, scores), never the examples themselves.
    """
    if settings.labeler == TEACHER:
        return _predict(teacher, pool, labelled.num_classes), None
    everything = train + pool
    features = _features(teacher, everything)
    views = [features]
    if labelled.modality == "image" and settings.raw_components:
        views.append(principal_components_of_batches(lambda: _raw_view(everything, labelled),
                                                     settings.raw_components))
    seeds = np.concatenate([_labels(train, labelled), np.full(pool.count, -1, np.int64)])
    scores = propagate_labels(join_views(views), seeds, labelled.num_classes,
                              neighbors=min(settings.neighbors, len(seeds) - 1), alpha=settings.alpha)
    return scores[train.count:], features


def _student_features(config: TrainerConfig, round_index: int, teacher_features: Optional[np.ndarray],
                      labelled: TransformedData, train: RecordSplit, pool: RecordSplit,
                      indices: np.ndarray) -> Optional[np.ndarray]:
    """The frozen student's training features (the `train` split, then the `pool`'s chosen examples at
    `indices`, each in the order the student's data yields them), taken from the teacher's (computed over
    `train` then `pool` in shard order) when they are the same computation, else None (the student computes
    its own).

    They are when the teacher is the module frozen under a plain head (feature_extraction, no hidden
    layer: its penultimate features are the module's outputs) and so is the student, without
    augmentation: then the module runs once over the unlabelled pool instead of twice.
    """
    settings = config.self_training
    frozen_teacher = settings.teacher == FEATURE_EXTRACTION if round_index == 1 else True  # later: a student
    if (teacher_features is None or not frozen_teacher or settings.student != FEATURE_EXTRACTION
            or config.head.hidden_units or config.augment or not config.cache_frozen_features):
        return None
    train_order = _in_data_order(train, np.arange(train.count), labelled, train.count)
    pool_order = _in_data_order(pool, indices, labelled, train.count + len(indices))
    return np.concatenate([teacher_features[:train.count][train_order], teacher_features[train.count:][pool_order]])


def _raw_view(records: RecordSplit, labelled: TransformedData) -> Iterator[np.ndarray]:
    """The images of `records`, area-averaged to at most RAW_VIEW_SIDE a side, flattened, batch by batch."""
    height, width = labelled.image_shape[:2]
    scale = RAW_VIEW_SIDE / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale))) if scale < 1 else (height, width)
    for batch in records.batches(_PREDICT_BATCH):
        pixels, _ = decode_examples(tf.constant(batch), labelled.modality, labelled.image_shape)
        yield tf.image.resize(pixels, size, method="area").numpy().reshape(len(pixels), -1)


def _describe_labeler(settings: SelfTrainingConfig, modality: str) -> str:
    if settings.labeler == TEACHER:
        return "the teacher's own predictions"
    views = "the teacher's features"
    if modality == "image" and settings.raw_components:
        views += (f" and the first {settings.raw_components} principal components of the images "
                  f"(at most {RAW_VIEW_SIDE}x{RAW_VIEW_SIDE})")
    return (f"label propagation from the labelled train split over a {settings.neighbors}-nearest-neighbour graph "
            f"of the train and unlabeled splits ({views}; alpha {settings.alpha})")


def _student_config(config: TrainerConfig, num_train: int) -> tuple[TrainerConfig, dict[str, Any]]:
    """`config` with the student's schedule (`student_settings`) wherever the user left the value null,
    and the settings so applied (empty when the size tiers apply)."""
    applied: dict[str, Any] = {}
    top, baseline = {}, {}
    frozen = config.self_training.student == FEATURE_EXTRACTION
    for key, value in student_settings(num_train, frozen_base=frozen).items():
        field = key.removeprefix("baseline_")
        section, target = (config.baseline, baseline) if field != key else (config, top)
        if getattr(section, field) is None:
            target[field] = applied[key] = value
    student = dataclasses.replace(config, **top, baseline=dataclasses.replace(config.baseline, **baseline))
    return student, applied


def _labels(split: RecordSplit, labelled: TransformedData) -> np.ndarray:
    """The labels of a labelled split, int64 [N]."""
    return np.concatenate([
        decode_examples(tf.constant(batch), labelled.modality, labelled.image_shape, with_label=True)[1].numpy()
        for batch in split.batches(_PREDICT_BATCH)
    ]).astype(np.int64)


def _serving_model_dir(path: str) -> str:
    """The SavedModel folder: `path` itself, or its `model/` (a trainer's output folder)."""
    for candidate in (path, os.path.join(path, MODEL_DIR)):
        if os.path.isfile(os.path.join(candidate, SAVED_MODEL_FILE)):
            return os.path.abspath(candidate)
    raise ModelError(
        f"teacher {path!r} is neither an exported model (a SavedModel folder) nor a trainer output folder with "
        f"one in {MODEL_DIR}/"
    )


def _predict(model_dir: str, records: RecordSplit, num_classes: int) -> np.ndarray:
    """The teacher's class probabilities [N, K] through its `serving_default` over serialized examples."""
    serve = tf.saved_model.load(model_dir).signatures[DEFAULT_SIGNATURE]
    probabilities = _in_batches(serve, records, "probabilities")
    if probabilities.shape[1] != num_classes:
        raise ModelError(f"teacher {model_dir!r} predicts {probabilities.shape[1]} classes; the data has {num_classes}")
    return probabilities


def _features(model_dir: str, records: RecordSplit) -> np.ndarray:
    """The teacher's penultimate features [N, D] through its `serving_features` signature."""
    signatures = tf.saved_model.load(model_dir).signatures
    if FEATURES_SIGNATURE not in signatures:
        raise ModelError(
            f"teacher {model_dir!r} has no {FEATURES_SIGNATURE!r} signature (signatures: {sorted(signatures)}); "
            "label propagation needs the features of a single-task model exported by this version of tlpipe: "
            "retrain the teacher, or set trainer.self_training.labeler: teacher"
        )
    return _in_batches(signatures[FEATURES_SIGNATURE], records, FEATURES_OUTPUT)


def _in_batches(serve: Any, records: RecordSplit, output: str) -> np.ndarray:
    """One output of a serving signature over serialized examples, `_PREDICT_BATCH` at a time, written into
    one array [N, ...] (no list of batches beside it)."""
    values: Optional[np.ndarray] = None
    start = 0
    for batch in records.batches(_PREDICT_BATCH):
        out = serve(examples=tf.constant(batch))[output].numpy()
        if values is None:
            values = np.empty((records.count, *out.shape[1:]), out.dtype)
        end = start + len(out)
        if end <= records.count:
            values[start:end] = out
        start = end
    if values is None or start != records.count:
        raise DataError(f"{start} examples read from {len(records.files)} shard(s) that held {records.count} "
                        "when counted: were they rewritten meanwhile?")
    return values


def _chosen_examples(split: RecordSplit, indices: np.ndarray, labels: np.ndarray) -> tf.data.Dataset:
    """(serialized example, pseudo-label) of the `split`'s examples at `indices`, in shard order, streamed from
    the shards each time the dataset is iterated."""
    pseudo_label = np.full(split.count, -1, np.int64)
    pseudo_label[indices] = labels
    table = tf.constant(pseudo_label)
    return (split.dataset().enumerate()
            .filter(lambda index, _: table[index] >= 0)
            .map(lambda index, record: (record, table[index])))


def with_pseudo_labels(labelled: TransformedData, pool: RecordSplit, indices: np.ndarray,
                       labels: np.ndarray) -> TransformedData:
    """The labelled data with the pool's examples at `indices`, labelled `labels`, appended to its train split
    (eval untouched): streamed from the pool's shards and decoded as the fit reads them; in pool order, or in
    hash buckets when they are more than the fit's shuffle buffer holds (`in_hash_buckets`: a pool read from
    a source written class by class is in class order)."""

    def decode(records: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return decode_examples(records, labelled.modality, labelled.image_shape)[0], labels

    chosen = _in_fit_order(pool, indices, labels, labelled, labelled.num_train + len(indices))
    pseudo = (chosen.batch(_PREDICT_BATCH)
              .map(decode, num_parallel_calls=tf.data.AUTOTUNE).unbatch()
              .apply(tf.data.experimental.assert_cardinality(len(indices))))
    return dataclasses.replace(labelled, train=labelled.train.concatenate(pseudo),
                               num_train=labelled.num_train + len(indices))


def _in_fit_order(split: RecordSplit, indices: np.ndarray, labels: np.ndarray, labelled: TransformedData,
                  training_examples: int) -> tf.data.Dataset:
    """(serialized example, label) of the `split`'s examples at `indices` (sorted), labelled `labels`, in the
    order the trainer reads them as part of a training set of `training_examples` (`in_shard_buckets`)."""
    return in_shard_buckets(split, indices, decoded_bytes(labelled.modality, labelled.image_shape), training_examples,
                            lambda shard, part, positions: _chosen_examples(shard, positions, labels[part]),
                            lambda record, _: record)


def _in_data_order(split: RecordSplit, indices: np.ndarray, labelled: TransformedData,
                   training_examples: int) -> np.ndarray:
    """The `split`'s `indices` (sorted) in the order the trainer reads their examples as part of a training
    set of `training_examples` (`_in_fit_order`, as `with_pseudo_labels` and `load_transformed` read them)."""
    if shard_buckets(split, indices, decoded_bytes(labelled.modality, labelled.image_shape), training_examples) is None:
        return indices  # read as they are
    ordered = _in_fit_order(split, indices, indices, labelled, training_examples)  # each example's index as label
    return np.concatenate([np.zeros(0, np.int64), *ordered.map(lambda _, index: index).batch(_PREDICT_BATCH)
                           .as_numpy_iterator()])


def _ids(pool: RecordSplit, indices: np.ndarray) -> list[str]:
    """The ids of the pool's examples at `indices`, in pool order."""
    spec = {fmt.ID_KEY: tf.io.FixedLenFeature([], tf.string, "")}
    chosen = _chosen_examples(pool, indices, np.zeros(len(indices), np.int64))
    return [value.decode("utf-8")
            for batch in chosen.batch(_PREDICT_BATCH).map(lambda records, _: tf.io.parse_example(records, spec))
            for value in batch[fmt.ID_KEY].numpy()]
