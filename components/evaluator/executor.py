"""Evaluator: transfer candidates against from-scratch baselines (and production) with TFMA.

For every reference model (each baseline, then the model in production when
there is one and `compare_with_production` is on) one TFMA run evaluates all
candidates side by side with it over the split; TFMA's thresholds (accuracy
floor, required improvement over the reference) decide which candidates pass,
and the most accurate passing one is blessed. Output folder, written atomically:

    blessing.json       blessed or not, which candidate, its numbers, the reasons in words
    summary.json        every number of the evaluation (and the blessing)
    summary.md          the same for a person, short
    report/index.html   tables and PNG plots (accuracy with intervals, per class,
                        confusion matrices, training curves, convergence)
    tfma/vs_<reference>/  TFMA's own output (tfma.load_eval_result reads it)
    shift_report.json, shift_report.md
                        only when domain-adaptation models were evaluated: the
                        domain shift before and after each one's training beside
                        its target test accuracy, and the verdict in words
    edge/<format>.tflite, edge/edge.json
                        only when edge formats are asked for and a candidate is
                        blessed: its conversions and their check
                        (components/evaluator/edge_check.py); a format that
                        surely loses more than `edge_max_drop` withdraws the blessing
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from tlpipe.models.plumbing.artifacts import atomic_output_dir
from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator import inputs, report
from tlpipe.components.evaluator.blessing import BASELINE_ROLE, DECOMPOSITION_ROLE, PRODUCTION_ROLE, decide_blessing
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.outputs import evaluation_paths, summary_header, write_evaluation
from tlpipe.components.evaluator.pairing import Pairing
from tlpipe.components.evaluator.convergence import convergence_table, load_history
from tlpipe.components.evaluator.training_data import describe_training_data
from tlpipe.components.evaluator.shift import shift_report, write_shift_report
from tlpipe.components.evaluator.tfma_analysis import (
    ACCURACY, EXAMPLE_COUNT, build_eval_config, read_tfma_output, refuse_dask, run_tfma, top_k_metric,
)
from tlpipe.components.production import ProductionModel
from tlpipe.components.ingest.coverage import read_counts
from tlpipe.models.plumbing.progress import log
from tlpipe.models.plumbing.layout import EDGE_DIR

TFMA_DIR = "tfma"


def run_evaluator(
    config: EvaluatorConfig,
    examples_dir: str,
    candidates: dict[str, str],
    baseline: dict[str, str],
    output_dir: str,
    *,
    production: Optional[ProductionModel] = None,
    histories: Optional[dict[str, str]] = None,
    split: str = "test",
    beam_config: Optional[BeamConfig] = None,
    shift_dirs: Optional[dict[str, str]] = None,
    pairing: Pairing = Pairing(),
    edge_formats: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate `candidates` against `baseline` (and production) on `split`; bless the best passing one.

    `candidates` and `baseline` map model names to exported model folders
    (`tlpipe.models.export_for_serving`); `histories` maps model names to their
    `history.json`; `production` is the model in production the resolver
    found (recorded in the blessing, so the pusher can check that production
    did not move meanwhile); `shift_dirs` maps the domain-adaptation models to
    their train folders (each holds the `shift.json` its trainer wrote), for
    the shift report; `pairing` names each candidate's matched reference and
    the differences that decompose its gain (without it, every candidate must
    beat every reference); `edge_formats` the edge formats (`tlpipe.models.edge`)
    the blessed candidate is converted to and checked in. Returns the summary (also written to `summary.json`), whose
    "blessing" entry is the blessing record.
    """
    config.validate()
    beam_config = beam_config or BeamConfig()
    refuse_dask(beam_config)
    inputs.check_names(candidates, baseline)
    data = inputs.evaluation_data(examples_dir, split)
    label_names, data_files = data["label_names"], data["files"]
    candidates = {name: inputs.checked_model(name, path, data) for name, path in candidates.items()}
    references = {name: {"role": BASELINE_ROLE, "model_dir": inputs.checked_model(name, path, data)}
                  for name, path in baseline.items()}
    notes: list[str] = []
    production = production or ProductionModel(None, None, None)
    if production.path:
        skipped = inputs.production_skip_reason(config, production.path, data)
        if skipped:
            notes.append(skipped)
        else:
            references[inputs.PRODUCTION] = {"role": PRODUCTION_ROLE, "model_dir": os.path.abspath(production.path)}
    top_ks = [k for k in config.top_k if k < len(label_names)]
    if len(top_ks) < len(config.top_k):
        notes.append(f"top-k accuracy for k = {sorted(set(config.top_k) - set(top_ks))} is skipped: "
                     f"with {len(label_names)} classes it is always 1")
    loaded_histories = {name: load_history(path) for name, path in (histories or {}).items()}

    output_dir = os.path.abspath(output_dir)
    with atomic_output_dir(output_dir) as tmp_dir:
        comparisons = {}
        plan = _tfma_plan(config, candidates, references, pairing)
        for index, (reference, (role, model_dir, compared)) in enumerate(plan.items(), start=1):
            run_dir = os.path.join(TFMA_DIR, f"vs_{reference}")
            log(f"evaluate: TFMA run {index}/{len(plan)}: {', '.join(compared)} vs {role} "
                f"'{reference}' on {len(data_files)} file(s) of split '{split}'")
            eval_config = build_eval_config(config, compared, reference, top_ks)
            models = {name: candidates.get(name) or references[name]["model_dir"] for name in compared}
            run_tfma(eval_config, {**models, reference: model_dir}, data_files,
                     os.path.join(tmp_dir, run_dir), beam_config, config.seed)
            comparisons[reference] = {
                **read_tfma_output(os.path.join(tmp_dir, run_dir), len(label_names), config.confidence_level),
                "role": role, "model_dir": model_dir, "tfma_output": os.path.join(output_dir, run_dir),
            }
        in_production = [name for name, path in candidates.items() if production.holds(path)]
        if config.bless_from_scratch:  # a from-scratch reference may be blessed: it too may already serve
            in_production += [name for name, info in references.items() if production.holds(info["model_dir"])]
        blessing = decide_blessing(config, candidates, references, comparisons, in_production, pairing)
        paths = evaluation_paths(output_dir)
        blessing.update(report=paths["report"], evaluation_dir=output_dir, production=production.to_dict())
        edge_record = _check_edge(config, blessing, edge_formats, examples_dir, split, tmp_dir, output_dir, notes)
        summary = _summary(config, examples_dir, split, label_names, candidates, references, comparisons,
                           blessing, notes, top_ks, loaded_histories, paths)
        blessing.update(split=split, num_examples=summary["num_examples"])
        summary["coverage"] = read_counts(examples_dir)
        if edge_record:
            summary["edge"] = edge_record
        if shift_dirs:
            shift_reference = _shift_reference(shift_dirs, candidates, pairing)
            summary["domain_shift"] = shift_report(shift_dirs, summary, reference=shift_reference)
            write_shift_report(summary["domain_shift"], tmp_dir)
        write_evaluation(tmp_dir, summary, markdown=report.render_markdown(summary),
                         write_report=lambda report_dir: report.write_report(report_dir, summary, loaded_histories))
    log(f"evaluate: {report.headline(summary)}")
    if shift_dirs:
        log(f"evaluate: domain shift: {summary['domain_shift']['verdict']}")
    log(f"evaluate: report at {paths['report']}")
    return summary


def _tfma_plan(config: EvaluatorConfig, candidates: dict[str, str], references: dict[str, dict[str, Any]],
               pairing: Pairing) -> dict[str, tuple[str, str, list[str]]]:
    """The TFMA runs: compared-with model -> (its role, its folder, the models compared with it).

    Every candidate against every reference (production included, with the from-scratch references too when
    they may be blessed), then the differences the gain decomposition needs that those runs do not hold:
    a reference against the reference it builds on (in that one's run), a candidate against its teacher."""
    extra = pairing.extra_pairs(list(candidates), list(references))
    plan = {}
    for name, info in references.items():
        compared = list(candidates) + extra.get(name, [])
        if info["role"] == PRODUCTION_ROLE and config.bless_from_scratch:
            compared += [ref for ref in references if ref in pairing.from_scratch]
        plan[name] = (info["role"], info["model_dir"], compared)
    for name, compared in extra.items():
        if name in candidates:
            plan[name] = (DECOMPOSITION_ROLE, candidates[name], compared)
    return plan


def _gate_result(blessing: dict[str, Any], name: str, reference: str) -> dict[str, Any]:
    """Whether `name` passed against `reference`, and whether that comparison decided its blessing."""
    verdict = blessing["candidates"].get(name, {}).get("comparisons", {}).get(reference)
    if verdict is None:
        return {"passed": None, "gating": False}
    return {"passed": verdict["passed"], "gating": verdict["gating"]}


def _check_edge(config: EvaluatorConfig, blessing: dict[str, Any], edge_formats: Sequence[str], examples_dir: str,
                split: str, tmp_dir: str, output_dir: str, notes: list[str]) -> Optional[dict[str, Any]]:
    """Convert the blessed candidate to every edge format and check it; the record, or None when there is none."""
    if not edge_formats:
        return None
    if not blessing["blessed"]:
        notes.append(f"edge formats {list(edge_formats)} were not converted: no candidate is blessed")
        return None
    from tlpipe.components.evaluator.edge_check import EdgeCheckSettings, apply_to_blessing, check_edge_formats

    log(f"evaluate: converting '{blessing['candidate']}' to {', '.join(edge_formats)} and checking each on "
        f"split '{split}'")
    settings = EdgeCheckSettings(max_drop=config.edge_max_drop, confidence_level=config.confidence_level,
                                 seed=config.seed, calibration_examples=config.edge_calibration_examples)
    record = check_edge_formats(blessing["candidate_model_dir"], edge_formats, examples_dir,
                                os.path.join(tmp_dir, EDGE_DIR), settings, split=split)
    apply_to_blessing(blessing, record, os.path.join(output_dir, EDGE_DIR))
    return record


def _model_summary(result: dict[str, Any], role: str, model_dir: str, label_names: list[str],
                   top_ks: list[int]) -> dict[str, Any]:
    """One model's numbers with class names instead of class ids."""
    overall = result["overall"]
    return {
        "role": role,
        "model_dir": model_dir,
        "accuracy": overall[ACCURACY],
        "top_k": {str(k): overall[top_k_metric(k)] for k in top_ks},
        "example_count": overall[EXAMPLE_COUNT],
        "trained_on": describe_training_data(model_dir),
        "per_class": {
            label_names[class_id]: {"accuracy": metrics[ACCURACY], "example_count": metrics[EXAMPLE_COUNT]}
            for class_id, metrics in sorted(result["per_class"].items())
        },
        "confusion_matrix": result["confusion_matrix"],
    }


def _summary(config: EvaluatorConfig, examples_dir: str, split: str, label_names: list[str],
             candidates: dict[str, str], references: dict[str, dict[str, Any]],
             comparisons: dict[str, dict[str, Any]], blessing: dict[str, Any], notes: list[str],
             top_ks: list[int], histories: dict[str, dict[str, Any]], paths: dict[str, str]) -> dict[str, Any]:
    first = next(iter(comparisons.values()))
    models = {name: _model_summary(first["models"][name], "candidate", path, label_names, top_ks)
              for name, path in candidates.items()}
    models.update({
        name: _model_summary(comparisons[name]["models"][name], info["role"], info["model_dir"], label_names, top_ks)
        for name, info in references.items()
    })
    present = [label for label in label_names if label in next(iter(models.values()))["per_class"]]
    if len(present) < len(label_names):
        notes.append(f"classes without examples in split '{split}': "
                     f"{[label for label in label_names if label not in present]}")
    baselines = [name for name, info in references.items() if info["role"] == BASELINE_ROLE]
    ordered_histories = {name: histories[name] for name in models if name in histories}
    return {
        **summary_header(config, examples_dir, split, next(iter(models.values()))["example_count"]),
        "label_names": label_names,
        "classes_in_split": present,
        "thresholds": blessing["thresholds"],
        "top_k": top_ks,
        "models": models,
        "comparisons": {
            reference: {
                "role": comparison["role"],
                "model_dir": comparison["model_dir"],
                "tfma_output": comparison["tfma_output"],
                "candidates": {
                    name: {
                        "accuracy_diff": comparison["diffs"][name][ACCURACY],
                        "top_k_diff": {str(k): comparison["diffs"][name][top_k_metric(k)] for k in top_ks},
                        **_gate_result(blessing, name, reference),
                    }
                    for name in comparison["diffs"]
                },
            }
            for reference, comparison in comparisons.items()
        },
        "gains": blessing["gains"],
        "convergence_fraction": config.convergence_fraction,
        "convergence": convergence_table(ordered_histories, baselines, config.convergence_fraction),
        "notes": notes,
        "blessing": blessing,
        "paths": paths,
    }


def _shift_reference(shift_dirs: dict[str, str], candidates: dict[str, str], pairing: Pairing) -> str:
    """The model the domain-shift report compares with: the adapted candidates' matched reference (without a
    pairing: the source-domain model that is not a candidate)."""
    matched = [pairing.matched[name] for name in shift_dirs if name in pairing.matched]
    return matched[0] if matched else next(name for name in shift_dirs if name not in candidates)
