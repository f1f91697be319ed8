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
"""

from __future__ import annotations

import datetime
import os
from typing import Any, Optional

from tlpipe.models.artifacts import atomic_output_dir, write_json
from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator import inputs, report
from tlpipe.components.evaluator.blessing import BASELINE_ROLE, PRODUCTION_ROLE, decide_blessing
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.convergence import convergence_table, load_history
from tlpipe.components.evaluator.training_data import describe_training_data
from tlpipe.components.evaluator.shift import shift_report, write_shift_report
from tlpipe.components.evaluator.spec import BLESSING_FILE
from tlpipe.components.evaluator.tfma_analysis import (
    ACCURACY, EXAMPLE_COUNT, build_eval_config, read_tfma_output, refuse_dask, run_tfma, top_k_metric,
)
from tlpipe.components.production import ProductionModel
from tlpipe.models.progress import log
from tlpipe.models.layout import SUMMARY_FILE, SUMMARY_MD

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
) -> dict[str, Any]:
    """Evaluate `candidates` against `baseline` (and production) on `split`; bless the best passing one.

    `candidates` and `baseline` map model names to exported model folders
    (`tlpipe.models.export_for_serving`); `histories` maps model names to their
    `history.json`; `production` is the model in production the resolver
    found (recorded in the blessing, so the pusher can check that production
    did not move meanwhile); `shift_dirs` maps the domain-adaptation models to
    their train folders (each holds the `shift.json` its trainer wrote), for
    the shift report. Returns the summary (also written to `summary.json`), whose
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
        for index, (reference, info) in enumerate(references.items(), start=1):
            run_dir = os.path.join(TFMA_DIR, f"vs_{reference}")
            log(f"evaluate: TFMA run {index}/{len(references)}: {', '.join(candidates)} vs {info['role']} "
                f"'{reference}' on {len(data_files)} file(s) of split '{split}'")
            eval_config = build_eval_config(config, list(candidates), reference, top_ks)
            run_tfma(eval_config, {**candidates, reference: info["model_dir"]}, data_files,
                     os.path.join(tmp_dir, run_dir), beam_config, config.seed)
            comparisons[reference] = {
                **read_tfma_output(os.path.join(tmp_dir, run_dir), len(label_names), config.confidence_level),
                "tfma_output": os.path.join(output_dir, run_dir),
            }
        in_production = [name for name, path in candidates.items() if production.holds(path)]
        blessing = decide_blessing(config, candidates, references, comparisons, in_production)
        paths = {
            "output_dir": output_dir,
            "blessing": os.path.join(output_dir, BLESSING_FILE),
            "report": os.path.join(output_dir, report.REPORT_DIR, report.INDEX_FILE),
            "summary_json": os.path.join(output_dir, SUMMARY_FILE),
            "summary_md": os.path.join(output_dir, SUMMARY_MD),
        }
        blessing.update(report=paths["report"], evaluation_dir=output_dir, production=production.to_dict())
        summary = _summary(config, examples_dir, split, label_names, candidates, references, comparisons,
                           blessing, notes, top_ks, loaded_histories, paths)
        blessing.update(split=split, num_examples=summary["num_examples"])
        if shift_dirs:
            summary["domain_shift"] = shift_report(shift_dirs, summary)
            write_shift_report(summary["domain_shift"], tmp_dir)
        write_json(os.path.join(tmp_dir, BLESSING_FILE), blessing)
        report.write_report(os.path.join(tmp_dir, report.REPORT_DIR), summary, loaded_histories)
        with open(os.path.join(tmp_dir, SUMMARY_MD), "w", encoding="utf-8") as handle:
            handle.write(report.render_markdown(summary))
        write_json(os.path.join(tmp_dir, SUMMARY_FILE), summary)
    log(f"evaluate: {report.headline(summary)}")
    if shift_dirs:
        log(f"evaluate: domain shift: {summary['domain_shift']['verdict']}")
    log(f"evaluate: report at {paths['report']}")
    return summary


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
        "examples_dir": os.path.abspath(examples_dir),
        "split": split,
        "num_examples": next(iter(models.values()))["example_count"],
        "label_names": label_names,
        "classes_in_split": present,
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "confidence": {"level": config.confidence_level, "method": config.confidence_interval_method},
        "thresholds": blessing["thresholds"],
        "top_k": top_ks,
        "models": models,
        "comparisons": {
            reference: {
                "role": references[reference]["role"],
                "model_dir": references[reference]["model_dir"],
                "tfma_output": comparison["tfma_output"],
                "candidates": {
                    name: {
                        "accuracy_diff": comparison["diffs"][name][ACCURACY],
                        "top_k_diff": {str(k): comparison["diffs"][name][top_k_metric(k)] for k in top_ks},
                        "passed": blessing["candidates"][name]["comparisons"][reference]["passed"],
                    }
                    for name in candidates
                },
            }
            for reference, comparison in comparisons.items()
        },
        "convergence_fraction": config.convergence_fraction,
        "convergence": convergence_table(ordered_histories, baselines, config.convergence_fraction),
        "notes": notes,
        "blessing": blessing,
        "paths": paths,
    }
