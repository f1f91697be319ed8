"""Deciding the blessing from TFMA's output, and saying why in plain words.

A candidate passes when its accuracy is at least `min_accuracy` (TFMA's value
threshold) and it beats its matched reference (the model that saw the same
data without the module: pairing.py) and the model in production, when it is
compared, by at least `min_improvement`, as the configured gate reads it (the
other references are compared and reported, not required):

- `gate: interval` (default): the LOWER end of the interval of the paired
  accuracy difference must reach `min_improvement`. The interval is TFMA's own
  for the diff metric: TFMA evaluates candidate and reference on the same
  examples in one pass, and for every resample (its 20 jackknife buckets, or
  Poisson-bootstrap replicates) it computes both accuracies on that same
  resample and their difference; the t-interval over those per-resample
  differences is the interval of a paired difference (`read_tfma_output`
  rescales it to `confidence_level`). Pairing matters: the two models share
  the test examples' difficulty, so the paired interval is much narrower than
  one built from two independent accuracy intervals, and yet a difference of
  +0.009 on 5,000 examples with interval [-0.005, +0.023] does not pass a
  margin of 0.
- `gate: point`: TFMA's change threshold on the point estimate (TFX's
  behaviour).

The best passing candidate (highest test accuracy; the first listed on a tie)
is blessed. A candidate whose point estimate is below its matched reference
is reported as negative transfer. When a from-scratch reference is more
accurate than every candidate, the record says so (`best_from_scratch`); it
is blessed instead only with `evaluator.bless_from_scratch`. `gains` holds
each candidate's decomposition (pairing.py), read from the same TFMA runs.

A candidate that IS the model in production (the same files, or the same
prediction on every test example: a zero-width difference at zero) is never
blessed again: when no other candidate passes, the record says "production
unchanged" (`unchanged: true`) and nothing is pushed. Without this, a rerun
of the same pipeline "beat production by +0.000 [+0.000, +0.000]".
"""

from __future__ import annotations

from typing import Any, Collection, Optional

from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.pairing import Pairing
from tlpipe.components.evaluator.tfma_analysis import ACCURACY, THRESHOLD_SLACK

BASELINE_ROLE = "baseline"
PRODUCTION_ROLE = "production"
DECOMPOSITION_ROLE = "decomposition"  # a TFMA run only the gain decomposition reads (a candidate vs its teacher)


def decide_blessing(
    config: EvaluatorConfig,
    candidates: dict[str, str],
    references: dict[str, dict[str, Any]],
    comparisons: dict[str, dict[str, Any]],
    in_production: Collection[str] = (),
    pairing: Pairing = Pairing(),
) -> dict[str, Any]:
    """The blessing record (without paths; the executor adds them).

    `references` maps a reference model's name to {"role", "model_dir"};
    `comparisons` maps the name of the model compared with (each reference,
    and the models the gain decomposition compares with) to the
    `read_tfma_output` result of that TFMA run. `in_production`: the models
    whose files are those of the model in production. `pairing` names each
    candidate's matched reference, the one it must beat (without one, it must
    beat every reference), and the differences that decompose its gain.
    """
    roles = {name: reference["role"] for name, reference in references.items()}
    diffs = {name: {model: metrics[ACCURACY] for model, metrics in comparison["diffs"].items()}
             for name, comparison in comparisons.items()}
    verdicts = {
        name: _judge(config, name, model_dir, _accuracy(comparisons[next(iter(references))], name), references,
                     pairing.gating_references(name, roles), comparisons, name in in_production, pairing)
        for name, model_dir in candidates.items()
    }
    all_reasons = [reason for verdict in verdicts.values() for reason in verdict["reasons"]]
    passing = [name for name, verdict in verdicts.items() if verdict["passed"]]
    winner = max(passing, key=lambda name: verdicts[name]["accuracy"]["value"], default=None)  # first on a tie
    from_scratch = _best_from_scratch(config, candidates, references, comparisons, pairing, in_production)
    winner_dir = candidates[winner] if winner else None
    if from_scratch and from_scratch["blessed"]:
        winner, winner_dir = from_scratch["name"], references[from_scratch["name"]]["model_dir"]
    unchanged = winner is None and any(verdict["same_as_production"] for verdict in verdicts.values())
    if unchanged:
        reason = "production unchanged: no candidate is blessed. " + " ".join(all_reasons)
    elif winner is None:
        reason = "no candidate is blessed. " + " ".join(all_reasons)
    elif winner not in candidates:
        reason = from_scratch["says"]
    else:
        others = [name for name in passing if name != winner]
        reason = f"'{winner}' is blessed: {verdicts[winner]['reasons'][0]}" + (
            f" It has the highest test accuracy of the passing candidates ({', '.join(passing)})." if others else ""
        )
    return {
        "blessed": winner is not None,
        "unchanged": unchanged,
        "candidate": winner,
        "candidate_model_dir": winner_dir,
        "reason": reason,
        "reasons": all_reasons,
        "negative_transfer": sorted(name for name, verdict in verdicts.items() if verdict["negative_transfer"]),
        "best_from_scratch": from_scratch,
        "thresholds": {
            "min_accuracy": config.min_accuracy,
            "min_improvement": config.min_improvement,
            "gate": config.gate,
            "compare_with_production": config.compare_with_production,
            "bless_from_scratch": config.bless_from_scratch,
        },
        "pairing": pairing.to_dict(),
        "gains": {name: pairing.gains(name, diffs) for name in candidates},
        "candidates": verdicts,
        "references": {
            name: {**reference, "accuracy": _accuracy(comparisons[name], name)}
            for name, reference in references.items()
        },
    }


def _judge(config: EvaluatorConfig, name: str, model_dir: str, accuracy: dict[str, float],
           references: dict[str, dict[str, Any]], gating: list[str], comparisons: dict[str, dict[str, Any]],
           same_files: bool, pairing: Pairing) -> dict[str, Any]:
    """One model's verdict: passed or not (against the `gating` references), its numbers, the reasons in words."""
    compared = [ref for ref in references if name in comparisons[ref]["diffs"]]
    failures = {ref: {f["kind"] for f in comparisons[ref]["failures"].get(name, [])} for ref in compared}
    reasons = []
    if any("floor" in kinds for kinds in failures.values()):
        reasons.append(
            f"'{name}' reached {accuracy['value']:.3f} test accuracy, below the required minimum "
            f"{config.min_accuracy:.3f} (evaluator.min_accuracy)."
        )
    per_reference = {}
    for ref in compared:
        reference = references[ref]
        diff = comparisons[ref]["diffs"][name][ACCURACY]
        passed = _improves(config, diff, "improvement" in failures[ref])
        per_reference[ref] = {"role": reference["role"], "accuracy_diff": diff, "passed": passed,
                              "gating": ref in gating, "decided_by": _deciding_value(config)}
        if not passed and ref in gating:
            what = _describe(ref, reference, pairing)
            reasons.append(_shortfall(config, name, accuracy, what, reference, _accuracy(comparisons[ref], ref), diff))
    negative_transfer = any(
        result["accuracy_diff"]["value"] < 0 and result["role"] == BASELINE_ROLE and result["gating"]
        for result in per_reference.values()
    )
    same_as_production = _same_as_production(references, per_reference, same_files)
    if same_as_production:
        reasons.append(f"'{name}' is the model in production ({same_as_production}): there is nothing to push.")
    passed = not reasons
    if passed:
        margins = " and ".join(
            f"{_describe(ref, references[ref], pairing)} by {_margin(config, result['accuracy_diff'])}"
            for ref, result in per_reference.items() if result["gating"]
        )
        reasons.append(
            f"'{name}' reached {accuracy['value']:.3f} test accuracy ({config.confidence_level:.0%} interval "
            f"[{accuracy['lower']:.3f}, {accuracy['upper']:.3f}]), at least the minimum {config.min_accuracy:.3f}"
            + (f", and beats {margins}." if margins else ".")
        )
    return {
        "model_dir": model_dir,
        "passed": passed,
        "accuracy": accuracy,
        "matched_reference": pairing.matched.get(name),
        "comparisons": per_reference,
        "negative_transfer": negative_transfer,
        "same_as_production": bool(same_as_production),
        "reasons": reasons,
    }


def _best_from_scratch(config: EvaluatorConfig, candidates: dict[str, str], references: dict[str, dict[str, Any]],
                       comparisons: dict[str, dict[str, Any]], pairing: Pairing,
                       in_production: Collection[str]) -> Optional[dict[str, Any]]:
    """When a from-scratch reference is more accurate than every candidate: which, and whether it is blessed
    (only with `evaluator.bless_from_scratch`, when it clears the floor and beats production). None otherwise."""
    accuracies = {name: _accuracy(comparisons[name], name) for name in references if name in pairing.from_scratch}
    best = max(accuracies, key=lambda name: accuracies[name]["value"], default=None)
    first = comparisons[next(iter(references))]
    best_candidate = max((_accuracy(first, name)["value"] for name in candidates), default=-1.0)
    if best is None or accuracies[best]["value"] <= best_candidate:
        return None
    accuracy = accuracies[best]
    production = [ref for ref, reference in references.items() if reference["role"] == PRODUCTION_ROLE]
    verdict = _judge(config, best, references[best]["model_dir"], accuracy, references, production, comparisons,
                     best in in_production, pairing) if config.bless_from_scratch else None
    plain = (f"The most accurate model of this run is the from-scratch '{best}' ({accuracy['value']:.3f}, above "
             f"every transfer candidate's {best_candidate:.3f})")
    if verdict is None:
        says = (f"{plain}: it is not blessed (evaluator.bless_from_scratch: false): tlpipe ships a model for "
                f"which transfer paid off, and no transferred model matched this one.")
    elif verdict["passed"]:
        says = f"{plain}; '{best}' is blessed (evaluator.bless_from_scratch: true): {verdict['reasons'][0]}"
    else:
        says = f"{plain}; evaluator.bless_from_scratch is on, but it is not blessed: {' '.join(verdict['reasons'])}"
    return {"name": best, "accuracy": accuracy, "blessed": bool(verdict and verdict["passed"]), "says": says}


def _same_as_production(references: dict[str, dict[str, Any]], per_reference: dict[str, dict[str, Any]],
                        same_files: bool) -> str:
    """Why a candidate is the model in production ("" when it is not): its files, or identical predictions."""
    production = [ref for ref, reference in references.items() if reference["role"] == PRODUCTION_ROLE]
    if not production:
        return ""
    if same_files:
        return "the same files"
    diff = per_reference[production[0]]["accuracy_diff"]
    if diff["value"] == diff["lower"] == diff["upper"] == 0:
        return "the same prediction on every test example: a difference of exactly 0"
    return ""


def _improves(config: EvaluatorConfig, diff: dict[str, float], point_failed: bool) -> bool:
    """Whether the difference passes the gate: its interval's lower end, or TFMA's point check."""
    if config.gate == "interval":
        return diff["lower"] >= config.min_improvement - THRESHOLD_SLACK
    return not point_failed


def _deciding_value(config: EvaluatorConfig) -> str:
    return "lower bound of the difference's interval" if config.gate == "interval" else "point estimate"


def _interval_text(config: EvaluatorConfig, diff: dict[str, float]) -> str:
    return f"{config.confidence_level:.0%} interval of the paired difference [{diff['lower']:+.3f}, {diff['upper']:+.3f}]"


def _margin(config: EvaluatorConfig, diff: dict[str, float]) -> str:
    """How a passed comparison cleared the gate, naming the bound that decided."""
    if config.gate == "interval":
        return (f"{diff['value']:+.3f} ({_interval_text(config, diff)}; its lower bound {diff['lower']:+.3f} is at "
                f"least the required {config.min_improvement:+.3f}, evaluator.gate: interval)")
    return (f"{diff['value']:+.3f} (point estimate at least the required {config.min_improvement:+.3f}, "
            f"evaluator.gate: point; {_interval_text(config, diff)})")


def _shortfall(config: EvaluatorConfig, name: str, accuracy: dict[str, float], what: str,
               reference: dict[str, Any], ref_accuracy: dict[str, float], diff: dict[str, float]) -> str:
    """Why `name` failed the improvement gate against one reference (`what`: how to name it); negative
    transfer named as such."""
    spread = _interval_text(config, diff)
    if diff["value"] >= 0:
        if config.gate == "interval":
            return (f"'{name}' beats {what} by {diff['value']:+.3f} ({accuracy['value']:.3f} vs "
                    f"{ref_accuracy['value']:.3f}), but the lower bound {diff['lower']:+.3f} of the {spread} is "
                    f"below the required {config.min_improvement:+.3f} (evaluator.min_improvement; "
                    f"evaluator.gate: interval), so it is not surely better.")
        return (f"'{name}' beats {what} by only {diff['value']:+.3f} ({accuracy['value']:.3f} vs "
                f"{ref_accuracy['value']:.3f}); the point estimate is below the required "
                f"{config.min_improvement:+.3f} (evaluator.min_improvement; evaluator.gate: point; {spread}).")
    prefix = "negative transfer: " if reference["role"] == BASELINE_ROLE else ""
    noise = "it lies entirely below zero" if diff["upper"] < 0 else "it includes zero, so the gap may be noise"
    return (f"{prefix}'{name}' reached {accuracy['value']:.3f} test accuracy, {-diff['value']:.3f} below "
            f"{what} ({ref_accuracy['value']:.3f}); the {spread}, {noise}.")


def _describe(ref: str, reference: dict[str, Any], pairing: Pairing) -> str:
    if reference["role"] == BASELINE_ROLE and ref in pairing.source_domain:
        return f"the reference '{ref}' (trained on the source domain's labels, no adaptation)"
    if reference["role"] == BASELINE_ROLE and ref in pairing.extra_data:
        return f"the matched from-scratch reference '{ref}' (the same labels and {pairing.extra_data[ref]})"
    if reference["role"] == BASELINE_ROLE:
        return f"the from-scratch baseline '{ref}'"
    return f"the model in production ({reference['model_dir']})"


def _accuracy(comparison: dict[str, Any], model: str) -> dict[str, float]:
    return comparison["models"][model]["overall"][ACCURACY]
