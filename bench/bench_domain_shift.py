"""The domain-shift example end to end, in this process: shift, source_only, DANN, AdaBN, TFMA, shift report.

    python examples/make_fashion_mnist_m.py
    .venv/bin/python bench/bench_domain_shift.py [--config examples/domain_shift.yaml] [--output DIR] [--set K=V ...]

Runs the same executors the pipeline's steps run (ingest and transform of both
domains, source pre-training and publishing, `train_domain_adaptation` for
source_only, domain_adaptation and bn_adapt (reusing source_only's training),
the TFMA evaluator with source_only as the reference, on the target's test
split) and writes the shift report; prints accuracies with their paired
intervals, the proxy A-distances and the time of each stage. A second run
into the same output folder reuses its ingested and transformed data and the
published source module (delete the folder to measure those again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="examples/domain_shift.yaml")
    parser.add_argument("--output", default="tlpipe_runs/bench-domain-shift")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    from tlpipe.components.evaluator.config import EvaluatorConfig
    from tlpipe.components.evaluator.executor import run_evaluator
    from tlpipe.components.evaluator.shift import measure_domain_shift, shift_report, write_shift_report
    from tlpipe.components.ingest.executor import run_ingest
    from tlpipe.components.strategies.domain import SOURCE_ONLY
    from tlpipe.components.trainer.domain_adaptation import train_domain_adaptation
    from tlpipe.components.trainer.pretrain import pretrain_and_publish
    from tlpipe.components.transform.executor import run_transform
    from tlpipe.pipeline.config import load_config

    config = load_config(args.config, args.overrides)
    output = os.path.abspath(args.output)
    timings: dict[str, float] = {}

    def timed(stage: str, function, *positional, reuse: str = "", **keywords):
        if reuse and os.path.exists(reuse):  # data and the source module of an earlier run of this script
            print(f"[bench] {stage}: reusing {reuse}", file=sys.stderr)
            return None
        started = time.monotonic()
        result = function(*positional, **keywords)
        timings[stage] = round(time.monotonic() - started, 1)
        print(f"[bench] {stage}: {timings[stage]} s", file=sys.stderr)
        return result

    size, channels = tuple(config.transform.image_size), config.transform.channels
    data = {}
    for domain, section in (("source", config.source.ingest), ("target", config.ingest)):
        raw = os.path.join(output, f"ingest-{domain}")
        data[domain] = os.path.join(output, f"transform-{domain}")
        timed(f"ingest {domain}", run_ingest, section, config.beam, raw, reuse=raw)
        timed(f"transform {domain}", run_transform, config.transform, config.beam, raw, data[domain],
              image_size=size, channels=channels, reuse=data[domain])
    module = os.path.join(output, "module")
    timed("pretrain source module", pretrain_and_publish, config.source, data["source"], module,
          work_dir=os.path.join(output, "pretrain-work"), reuse=module)
    domain = config.trainer.domain
    before = timed("shift before training", measure_domain_shift, module, data["source"], data["target"],
                   unlabeled_split=domain.unlabeled_split, samples=domain.shift_samples, seed=config.trainer.seed)
    trained = {}
    for name, method, teacher in (("source_only", "source_only", None), ("domain_adaptation", "dann", None),
                                  ("bn_adapt", "bn_adapt", "source_only")):
        trained[name] = os.path.join(output, f"train-{name}")
        teacher_dir = os.path.join(trained[teacher], "model") if teacher else None
        timed(f"train {name}", train_domain_adaptation, config.trainer, data["source"], data["target"],
              trained[name], handle=module, method=method, strategy=name, teacher_model_dir=teacher_dir)
    evaluator = EvaluatorConfig(**{**config.evaluator.__dict__, "compare_with_production": False,
                                   "min_improvement": 0.0})
    evaluation = timed("evaluate (TFMA)", run_evaluator, evaluator, data["target"],
                       {name: os.path.join(path, "model") for name, path in trained.items() if name != "source_only"},
                       {"source_only": os.path.join(trained["source_only"], "model")}, os.path.join(output, "evaluate"))
    report = shift_report(trained, evaluation, reference=SOURCE_ONLY)
    write_shift_report(report, os.path.join(output, "shift"))
    print(json.dumps({"before": before["before"], "timings_s": timings, "total_s": round(sum(timings.values()), 1)},
                     indent=1))
    print(open(os.path.join(output, "shift", "shift_report.md"), encoding="utf-8").read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
