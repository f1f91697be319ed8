"""The learning curve of a data-efficiency sweep, from its grid points (pure data, no I/O).

A sweep runs the pipeline once per (labels per class, seed) pair; each run's
evaluation is condensed into a point (`point.py`). Here the points become the
curve a team reads to decide how many labels it needs: per labels-per-class
value, every model's test accuracy as the mean, spread (standard deviation,
min, max) over seeds and the mean of the seeds' TFMA intervals; every
candidate's paired difference to each baseline the same way; and the
break-even point, the smallest labels-per-class value from which the transfer
is no longer *surely* better than the baseline.

"Surely better" at a labels-per-class value means: for every seed, the lower
end of the evaluator's interval of the paired difference (same test examples)
lies above `margin`. Requiring it of every seed, rather than of a pooled
estimate, keeps the statement as strict as the interval gate that decides
what ships.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Optional

ALL = "all"  # the grid value "every labelled training example"


def shots_label(shots: Optional[int]) -> str:
    """A grid value as written on the command line: an integer, or `all` (None)."""
    return ALL if shots is None else str(shots)


def _order(shots: Optional[int]) -> float:
    return math.inf if shots is None else float(shots)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _over_seeds(by_seed: dict[int, dict[str, float]]) -> dict[str, Any]:
    """Mean and spread of the seeds' values, the mean of their interval bounds, and every seed's own."""
    values = [entry["value"] for entry in by_seed.values()]
    return {
        **_spread(values),
        "lower": statistics.fmean(entry["lower"] for entry in by_seed.values()),
        "upper": statistics.fmean(entry["upper"] for entry in by_seed.values()),
        "seeds": {str(seed): entry for seed, entry in sorted(by_seed.items())},
    }


def check_grid(points: Iterable[dict[str, Any]]) -> tuple[list[Optional[int]], list[int]]:
    """The grid's labels-per-class values (ascending, `all` last) and seeds; every pair exactly once."""
    points = list(points)
    if not points:
        raise ValueError("a sweep needs at least one grid point; received none")
    pairs = [(point["shots"], point["seed"]) for point in points]
    shots = sorted({s for s, _ in pairs}, key=_order)
    seeds = sorted({seed for _, seed in pairs})
    repeated = sorted({pair for pair in pairs if pairs.count(pair) > 1}, key=lambda p: (_order(p[0]), p[1]))
    missing = [(s, seed) for s in shots for seed in seeds if (s, seed) not in pairs]
    if repeated or missing:
        def listed(items: list) -> str:
            return ", ".join(f"({shots_label(s)}, seed {seed})" for s, seed in items)
        raise ValueError(f"the sweep's points must form a full grid of {len(shots)} labels-per-class values x "
                         f"{len(seeds)} seeds, each pair once; repeated: [{listed(repeated)}], "
                         f"missing: [{listed(missing)}]")
    return shots, seeds


def build_curve(points: Iterable[dict[str, Any]], *, margin: float = 0.0) -> dict[str, Any]:
    """The learning curve of `points` (each as `point.py` writes it); see the module docstring."""
    points = list(points)
    shots_values, seeds = check_grid(points)
    first = points[0]
    roles = {name: entry["role"] for point in points for name, entry in point["models"].items()}
    rows = []
    for shots in shots_values:
        at = [point for point in points if point["shots"] == shots]
        models = {name: {"role": role, **_over_seeds({p["seed"]: p["models"][name]["accuracy"]
                                                      for p in at if name in p["models"]})}
                  for name, role in roles.items()}
        differences: dict[str, dict[str, Any]] = {}
        for reference in sorted({r for p in at for r in p["differences"]}):
            for candidate in sorted({c for p in at for c in p["differences"].get(reference, {})}):
                by_seed = {p["seed"]: p["differences"][reference][candidate] for p in at}
                entry = _over_seeds(by_seed)
                entry["surely_better"] = all(d["lower"] > margin for d in by_seed.values())
                differences.setdefault(reference, {})[candidate] = entry
        rows.append({
            "shots": shots_label(shots),
            "labels_per_class": statistics.fmean(p["labels_per_class"] for p in at),
            "models": models,
            "differences": differences,
        })
    return {
        "grid": {"shots": [shots_label(s) for s in shots_values], "seeds": seeds},
        "num_test_examples": first["num_test_examples"],
        "confidence": first["confidence"],
        "margin": margin,
        "roles": roles,
        "rows": rows,
        "break_even": break_even(rows, margin),
    }


def break_even(rows: list[dict[str, Any]], margin: float = 0.0) -> dict[str, dict[str, dict[str, Any]]]:
    """Per baseline and candidate: up to which labels per class the transfer is surely better, and from which
    value on it no longer is (None when it is surely better over the whole grid)."""
    pairs = sorted({(reference, candidate) for row in rows for reference, entries in row["differences"].items()
                    for candidate in entries})
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for reference, candidate in pairs:
        surely = [row["differences"].get(reference, {}).get(candidate, {}).get("surely_better", False)
                  for row in rows]
        leading = next((i for i, is_surely in enumerate(surely) if not is_surely), len(rows))
        up_to = rows[leading - 1]["shots"] if leading else None
        stops = rows[leading]["shots"] if leading < len(rows) else None
        result.setdefault(reference, {})[candidate] = {
            "surely_better_up_to": up_to,
            "break_even": stops,
            "text": _break_even_text(candidate, reference, up_to, stops, margin),
        }
    return result


def _break_even_text(candidate: str, reference: str, up_to: Optional[str], stops: Optional[str],
                     margin: float) -> str:
    sure = f"every seed's interval of the paired difference above {margin:+.3f}"
    if up_to is None:
        return f"{candidate} is not surely better than {reference} at any labels-per-class value of the grid " \
               f"(from {stops} on: not {sure})"
    if stops is None:
        return f"{candidate} is surely better than {reference} at every labels-per-class value of the grid " \
               f"({sure}); no break-even up to {up_to}"
    return f"{candidate} is surely better than {reference} up to {up_to} labels per class ({sure}); " \
           f"break-even at {stops}: from there on it is not"
