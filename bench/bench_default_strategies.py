"""Benchmark: every target strategy of the embedded default, per seed, with the evaluator's intervals.

Runs the components of the embedded default directly (the pipeline graph
runs the same functions), so that strategies the graph does not run by
default are measured too. For each seed S (`ingest.seed=S`, `trainer.seed=S`:
the labelled sample and the training seeds) the target data is ingested (with
the `unlabeled` split) and transformed at the default's size, then trained on
the default's module (EfficientNet-Lite0, ImageNet): the from-scratch
baseline, feature_extraction, fine_tune_all, self_training (the default's:
teacher and student on the frozen features) and its like-for-like
from-scratch reference, baseline_self_training (the same propagation with the
baseline as teacher, and a from-scratch student on the same pseudo-labelled
images). The evaluator compares the candidates with both references on the
5,000 test images. Prints one JSON line per seed: test accuracy per model, the
paired difference intervals, and each step's wall time.

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
from tlpipe.components.trainer.self_training import train_baseline_self_training, train_self_training
from tlpipe.components.transform.executor import run_transform
from tlpipe.components.transform.spec import image_geometry
from tlpipe.pipeline.config import load_config
from tlpipe.pipeline.parameters import resolve_handle

CANDIDATES = ("feature_extraction", "fine_tune_all", "self_training")
REFERENCES = ("baseline", "baseline_self_training")


def _timed(timings: dict[str, float], name: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = step()
    timings[name] = round(time.monotonic() - started, 1)
    print(f"[bench] {name}: {timings[name]} s", flush=True)
    return result


def run_seed(root: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    config = load_config(overrides=[f"ingest.seed={seed}", f"trainer.seed={seed}", "ingest.unlabeled=true",
                                    *overrides])
    handle = resolve_handle(config)
    folder = os.path.join(root, f"seed-{seed}")
    raw, transformed = os.path.join(folder, "ingest"), os.path.join(folder, "transform")
    timings: dict[str, float] = {}
    size, channels = image_geometry(config.transform, {"handle": handle})
    _timed(timings, "ingest", lambda: run_ingest(config.ingest, config.beam, raw))
    _timed(timings, "transform", lambda: run_transform(config.transform, config.beam, raw, transformed,
                                                       image_size=size, channels=channels))
    trainer = config.trainer
    out = {name: os.path.join(folder, name) for name in (*CANDIDATES, *REFERENCES)}
    _timed(timings, "baseline", lambda: train_baseline(trainer, transformed, out["baseline"], handle=handle, strategy="baseline"))
    for strategy in ("feature_extraction", "fine_tune_all"):
        _timed(timings, strategy, lambda: train_transfer(trainer, transformed, out[strategy], strategy=strategy,
                                                         handle=handle))
    teacher = out[trainer.self_training.teacher]
    _timed(timings, "self_training", lambda: train_self_training(
        trainer, transformed, out["self_training"], handle=handle, teacher_model_dir=teacher,
        strategy="self_training"))
    _timed(timings, "baseline_self_training", lambda: train_baseline_self_training(
        trainer, transformed, out["baseline_self_training"], handle=handle, teacher_model_dir=out["baseline"],
        strategy="baseline_self_training"))
    candidates = {name: os.path.join(out[name], "model") for name in CANDIDATES}
    references = {name: os.path.join(out[name], "model") for name in REFERENCES}
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
    for seed in args.seeds:
        print(json.dumps(run_seed(args.root, seed, args.overrides)), flush=True)


if __name__ == "__main__":
    main()
