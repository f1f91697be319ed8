"""Data-efficiency sweep: the pipeline once per (labels per class, seed) pair, then the learning curve.

    tlpipe sweep [--config FILE] [--set K=V] --shots 2 5 10 50 100 all --seeds 0 1 2 [--output DIR]

Each grid point is the configured pipeline with `ingest.shots.train` set to
the point's labels per class (`all`: every labelled training example) and
`ingest.seed` and `trainer.seed` set to its seed (which examples are sampled,
and the training's seeds); the source module is published once and shared.
A point is exactly the single run `tlpipe run --set ingest.shots.train=K --set
ingest.seed=S --set trainer.seed=S`, with two differences that keep a sweep an
experiment: it does not compare with the model in production, and blessed
models go to the sweep's own serving folder, never the configured one.

Locally the points run one after the other through the local runner, so
kfp.local's cache serves every step a point shares with an earlier run; a
point whose settings were already swept is read back from the sweep folder
without running anything, so an interrupted sweep resumes where it stopped.
`tlpipe compile --sweep` makes the same grid one Kubeflow pipeline
(`sweep_pipeline.py`). After every point the `sweep-point` step condenses the
evaluation; the `sweep-gather` step writes the report (components/sweep).

Layout of the output folder (default `<pipeline.root>/sweep`):
    points/<point>/point.json   one grid point's numbers (the sweep-point step)
    points/<point>.run.json     how it was obtained: settings fingerprint, seconds, run record
    serving/                    the sweep's own serving folder
    report/                     index.html, curve.png, curve.json, curve.csv, points.csv
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Callable, Optional, Sequence

from tlpipe.components.config_schema import from_dict, to_dict
from tlpipe.components.sweep.curve import ALL, shots_label
from tlpipe.models.plumbing.errors import ConfigError
from tlpipe.pipeline.config import PipelineConfig

TRAIN_SPLIT = "train"
SERVING_DIR = "serving"
POINTS_DIR = "points"
REPORT_DIR = "report"
RUN_SUFFIX = ".run.json"
DEFAULT_OUTPUT = "sweep"
# Sections that say where and how a run executes, not what it computes: a point swept with other
# values of these is still the same point.
PLACEMENT_SECTIONS = ("pipeline", "kubeflow")


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """One run of the sweep: labels per class (None: all) and the seed."""

    shots: Optional[int]
    seed: int

    @property
    def name(self) -> str:
        return f"shots-{shots_label(self.shots)}-seed-{self.seed}"

    def describe(self) -> str:
        return f"{shots_label(self.shots)} labels per class, seed {self.seed}"


def parse_shots(values: Sequence[str]) -> list[Optional[int]]:
    """`--shots` values: integers >= 1 and `all`, ascending (`all` last), each once."""
    shots: list[Optional[int]] = []
    for value in values:
        text = str(value).strip().lower()
        if text == ALL:
            parsed: Optional[int] = None
        elif text.isdigit() and int(text) >= 1:
            parsed = int(text)
        else:
            raise ConfigError("--shots", value, f"integers >= 1 (labels per class) or '{ALL}'")
        if parsed not in shots:
            shots.append(parsed)
    if not shots:
        raise ConfigError("--shots", list(values), f"at least one value, e.g. --shots 2 5 10 {ALL}")
    return sorted(shots, key=lambda s: (s is None, s or 0))


def parse_seeds(values: Sequence[str]) -> list[int]:
    """`--seeds` values: integers >= 0, each once, in the order given."""
    seeds: list[int] = []
    for value in values:
        text = str(value).strip()
        if not text.isdigit():
            raise ConfigError("--seeds", value, "integers >= 0")
        if int(text) not in seeds:
            seeds.append(int(text))
    if not seeds:
        raise ConfigError("--seeds", list(values), "at least one seed, e.g. --seeds 0 1 2")
    return seeds


def grid(shots: Sequence[Optional[int]], seeds: Sequence[int]) -> list[GridPoint]:
    """Every (labels per class, seed) pair, fewest labels first."""
    return [GridPoint(k, seed) for k in shots for seed in seeds]


def sweep_config(config: PipelineConfig, serving_dir: str) -> PipelineConfig:
    """The config every point starts from: no `shots.train` (the points set it), no comparison with
    production, blessed models pushed into `serving_dir` (only the newest kept)."""
    if TRAIN_SPLIT not in config.ingest.splits:
        raise ConfigError("ingest.splits", config.ingest.splits,
                          f"a '{TRAIN_SPLIT}' split: a sweep varies its labels per class")
    data = to_dict(config)
    data["ingest"]["shots"].pop(TRAIN_SPLIT, None)
    data["evaluator"]["compare_with_production"] = False
    data["pusher"]["serving_dir"] = serving_dir
    data["pusher"]["keep_versions"] = 1
    return from_dict(PipelineConfig, data)


def point_config(base: PipelineConfig, point: GridPoint) -> PipelineConfig:
    """`base` (a `sweep_config`) with the point's labels per class and seed."""
    data = to_dict(base)
    if point.shots is not None:
        data["ingest"]["shots"][TRAIN_SPLIT] = point.shots
    data["ingest"]["seed"] = point.seed
    data["trainer"]["seed"] = point.seed
    return from_dict(PipelineConfig, data)


def fingerprint(config: PipelineConfig) -> str:
    """What a point computes: every section but where and how it runs (PLACEMENT_SECTIONS)."""
    data = {name: value for name, value in to_dict(config).items() if name not in PLACEMENT_SECTIONS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass
class PointOutcome:
    """How one point was obtained: ran (seconds, steps cached) or reused from an earlier sweep."""

    point: GridPoint
    point_dir: str
    seconds: float
    reused: bool
    cached_steps: int = 0
    steps: int = 0
    record_dir: str = ""


@dataclasses.dataclass
class SweepResult:
    """The sweep's folder, its report folder, how each point was obtained, and the curve (curve.json)."""

    output_dir: str
    report_dir: str
    outcomes: list[PointOutcome]
    curve: dict


def progress_line(index: int, total: int, outcome: PointOutcome, seconds_left: Optional[float]) -> str:
    """`sweep 3/12: 5 labels per class, seed 1: 41 s (4/8 steps cached); about 6 min left`."""
    if outcome.reused:
        how = "reused from an earlier sweep"
    else:
        how = f"{_duration(outcome.seconds)}"
        if outcome.steps:
            how += f" ({outcome.cached_steps}/{outcome.steps} steps cached)"
    left = "done" if index == total else (
        f"about {_duration(seconds_left)} left" if seconds_left is not None else "time left: unknown yet")
    return f"sweep {index}/{total}: {outcome.point.describe()}: {how}; {left}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_left(outcomes: Sequence[PointOutcome], remaining: int) -> Optional[float]:
    """Mean time of the points that ran (not reused) times the points still to go."""
    ran = [o.seconds for o in outcomes if not o.reused]
    if remaining and not ran:
        return None
    return remaining * (sum(ran) / len(ran)) if ran else 0.0


def run_sweep(config: PipelineConfig, points: Sequence[GridPoint], output_dir: str, *, mode: Optional[str] = None,
              report: Callable[[str], None] = print) -> SweepResult:
    """Run every point through the local runner (or reuse it), then write the learning-curve report."""
    from tlpipe.components.evaluator.spec import EVALUATION
    from tlpipe.components.sweep.spec import POINTS, SWEEP_GATHER, SWEEP_POINT
    from tlpipe.components.transform.spec import TRANSFORMED
    from tlpipe.models.plumbing.artifacts import read_json, write_json
    from tlpipe.pipeline.adapters import InProcessOps
    from tlpipe.pipeline.local_runner import run_local

    output_dir = os.path.abspath(output_dir)
    points_dir = os.path.join(output_dir, POINTS_DIR)
    base = sweep_config(config, os.path.join(output_dir, SERVING_DIR))
    outcomes: list[PointOutcome] = []
    for index, point in enumerate(points, start=1):
        settings = point_config(base, point)
        key = fingerprint(settings)
        point_dir = os.path.join(points_dir, point.name)
        run_file = point_dir + RUN_SUFFIX
        if os.path.isfile(run_file) and os.path.isdir(point_dir) and read_json(run_file).get("fingerprint") == key:
            outcome = PointOutcome(point, point_dir, 0.0, reused=True)
        else:
            started = time.monotonic()
            result = run_local(settings, mode=mode)
            InProcessOps(settings, {}, points_dir).run(
                SWEEP_POINT, point.name, options={"shots": point.shots or 0, "seed": point.seed},
                inputs={TRANSFORMED: result.artifacts[TRANSFORMED], EVALUATION: result.artifacts[EVALUATION]})
            outcome = PointOutcome(point, point_dir, time.monotonic() - started, reused=False,
                                   cached_steps=sum(result.cached.values()), steps=len(result.cached),
                                   record_dir=result.record_dir)
            write_json(run_file, {"fingerprint": key, "seconds": outcome.seconds, "record_dir": outcome.record_dir,
                                  "cached_steps": outcome.cached_steps, "steps": outcome.steps,
                                  "evaluation": result.artifacts[EVALUATION]})
        outcomes.append(outcome)
        report(progress_line(index, len(points), outcome, estimate_left(outcomes, len(points) - index)))
    gather = InProcessOps(base, {}, output_dir)
    report_dir = gather.run(SWEEP_GATHER, REPORT_DIR, inputs={POINTS: {o.point.name: o.point_dir for o in outcomes}},
                            options={"title": config.pipeline.name})
    return SweepResult(output_dir, report_dir, outcomes, gather.results[REPORT_DIR])
