"""Benchmark: every target strategy of the embedded default, per seed, with the evaluator's intervals.

Runs the components of the embedded default directly (the pipeline graph
runs the same functions), so that strategies the graph does not run by
default are measured too: the source module is pre-trained once (it depends
on `source.*` only), then for each seed S (`ingest.seed=S`, `trainer.seed=S`)
the target data is ingested (with the `unlabeled` split) and transformed, the
baseline, feature_extraction, fine_tune_all, self_training (teacher:
fine_tune_all) and the from-scratch self-training baseline (teacher: the
baseline) are trained, and the evaluator compares the candidates with both
baselines on the 5,000 test images. Prints one JSON line per seed: test
accuracy per model, the paired difference intervals, and each step's wall time.

    .venv/bin/python bench/bench_default_strategies.py --root /tmp/bench --seeds 0 1 2 [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Callable

from tlpipe.components.evaluator.executor import run_evaluator
from tlpipe.components.ingest.executor import run_ingest
from tlpipe.components.trainer.executor import train_baseline, train_transfer
from tlpipe.components.trainer.pretrain import pretrain_and_publish
from tlpipe.components.trainer.self_training import train_baseline_self_training, train_self_training
from tlpipe.components.transform.executor import run_transform
from tlpipe.pipeline.config import load_config


def _timed(timings: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = step()
    timings[name] = round(time.monotonic() - started, 1)
    print(f"[bench] {name}: {timings[name]} s", flush=True)
    return result


def _source_module(root: str, overrides: list[str], timings: dict[str, float]) -> str:
    config = load_config(overrides=overrides)
    module = os.path.join(root, "module")
    if os.path.isdir(module):
        return module
    raw, transformed = os.path.join(root, "source-ingest"), os.path.join(root, "source-transform")
    _timed(timings, "source ingest", lambda: run_ingest(config.source.ingest, config.beam, raw))
    _timed(timings, "source transform", lambda: run_transform(
        config.transform, config.beam, raw, transformed, image_size=tuple(config.source.image_size),
        channels=config.source.channels))
    summary = _timed(timings, "pretrain", lambda: pretrain_and_publish(config.source, transformed, module))
    print(f"[bench] source: {json.dumps(summary)}", flush=True)
    return module


def run_seed(root: str, seed: int, overrides: list[str], module: str) -> dict[str, Any]:
    config = load_config(overrides=[f"ingest.seed={seed}", f"trainer.seed={seed}", "ingest.unlabeled=true",
                                    *overrides])
    folder = os.path.join(root, f"seed-{seed}")
    raw, transformed = os.path.join(folder, "ingest"), os.path.join(folder, "transform")
    timings: dict[str, float] = {}
    _timed(timings, "ingest", lambda: run_ingest(config.ingest, config.beam, raw))
    _timed(timings, "transform", lambda: run_transform(config.transform, config.beam, raw, transformed,
                                                       image_size=(28, 28), channels=1))
    trainer = config.trainer
    out = {name: os.path.join(folder, name) for name in
           ("baseline", "feature_extraction", "fine_tune_all", "self_training", "baseline_self_training")}
    _timed(timings, "baseline", lambda: train_baseline(trainer, transformed, out["baseline"], handle=module))
    for strategy in ("feature_extraction", "fine_tune_all"):
        _timed(timings, strategy, lambda: train_transfer(trainer, transformed, out[strategy], strategy=strategy,
                                                         handle=module))
    _timed(timings, "self_training", lambda: train_self_training(
        trainer, transformed, out["self_training"], handle=module, teacher_model_dir=out["fine_tune_all"]))
    _timed(timings, "baseline_self_training", lambda: train_baseline_self_training(
        trainer, transformed, out["baseline_self_training"], handle=module, teacher_model_dir=out["baseline"]))
    candidates = {name: os.path.join(out[name], "model") for name in
                  ("feature_extraction", "fine_tune_all", "self_training")}
    references = {name: os.path.join(out[name], "model") for name in ("baseline", "baseline_self_training")}
    summary = _timed(timings, "evaluate", lambda: run_evaluator(
        config.evaluator, transformed, candidates, references, os.path.join(folder, "evaluate"),
        beam_config=config.beam))
    accuracy = {name: model["accuracy"] for name, model in summary["models"].items()}
    diffs = {f"{candidate} - {reference}": result["accuracy_diff"]
             for reference, comparison in summary["comparisons"].items()
             for candidate, result in comparison["candidates"].items()}
    return {"seed": seed, "accuracy": accuracy, "diffs": diffs, "blessing": summary["blessing"]["reason"],
            "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    timings: dict[str, float] = {}
    module = _source_module(args.root, args.overrides, timings)
    for seed in args.seeds:
        print(json.dumps({**run_seed(args.root, seed, args.overrides, module), "source_timings": timings}),
              flush=True)


if __name__ == "__main__":
    main()
