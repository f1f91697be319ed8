"""A strategy is a plugin: one registered entry, written here, with its own input and its own evaluation, runs
through the pipeline graph (in process), the evaluator and the pusher, without a change anywhere in tlpipe."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from tlpipe.components.evaluator.spec import EVALUATE, run as run_standard_evaluation
from tlpipe.components.spec import StepArgs
from tlpipe.components.strategies.plugin import CANDIDATE, UNLABELED, Strategy, TrainArgs
from tlpipe.components.strategies.registry import register, unregister
from tlpipe.components.strategies.transfer import BASELINE
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.pipeline.local_runner import run_local

TOY = "toy_unlabelled_count"
TOY_EVALUATION_FILE = "toy_evaluation.json"


def train_toy(args: TrainArgs) -> dict[str, Any]:
    """The frozen-feature fit under the toy's name, recording how many unlabelled images its own input held."""
    import tensorflow as tf

    from tlpipe.components.trainer.executor import train_transfer

    files = fmt.split_files(args.transformed_dir, UNLABELED)
    seen = int(tf.data.TFRecordDataset(files).reduce(0, lambda count, _: count + 1))
    return train_transfer(args.config, args.transformed_dir, args.output_dir, strategy="feature_extraction",
                          handle=args.handle, work_dir=args.work_dir, name=args.strategy,
                          extra={"unlabeled_seen": seen})


def evaluate_toy(args: StepArgs) -> dict[str, Any]:
    """The standard evaluation, then the toy's own record of what it was given."""
    summary = run_standard_evaluation(args)
    write_json(os.path.join(args.output, TOY_EVALUATION_FILE),
               {"models": sorted(args.group("models")), "pairing": args.options["pairing"]})
    return summary


EVALUATE_TOY = dataclasses.replace(EVALUATE, executor=f"{__name__}:evaluate_toy")
TOY_STRATEGY = Strategy(TOY, train_toy, CANDIDATE, "a head on frozen features that counts the unlabelled pool",
                        reference=BASELINE, requires_splits=(UNLABELED,), evaluate=EVALUATE_TOY)


@pytest.fixture
def toy_registered():
    register(TOY_STRATEGY)
    yield TOY_STRATEGY
    unregister(TOY)


def test_a_registered_toy_strategy_trains_is_judged_by_its_own_evaluation_and_pushed(toy_registered,
                                                                                     make_tiny_config):
    with pytest.raises(ConfigError, match="ingest.unlabeled"):  # its declared input is checked at config load
        make_tiny_config("toy_without_pool", trainer={"strategies": [TOY]})
    config = make_tiny_config("toy", pipeline={"mode": "in_process"}, ingest={"unlabeled": True},
                              trainer={"strategies": [TOY]})
    result = run_local(config)

    assert [name for name in result.artifacts if name in (TOY, BASELINE)] == [TOY, BASELINE]
    pool = read_json(os.path.join(result.artifacts["examples"], "metadata.json"))["num_examples"][UNLABELED]
    trained = read_json(os.path.join(result.artifacts[TOY], "summary.json"))
    assert trained["strategy"] == TOY and trained["unlabeled_seen"] == pool > 0
    own = read_json(os.path.join(result.artifacts["evaluation"], TOY_EVALUATION_FILE))
    assert own["models"] == [BASELINE, TOY]
    assert own["pairing"]["candidates"] == [TOY] and own["pairing"]["matched"] == {TOY: BASELINE}
    verdict = read_json(os.path.join(result.artifacts["evaluation"], "blessing.json"))["candidates"][TOY]
    assert verdict["matched_reference"] == BASELINE
    assert os.path.isdir(result.artifacts["pushed"])


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'baseline' is already registered; Received: Strategy"):
        register(dataclasses.replace(TOY_STRATEGY, name=BASELINE))
