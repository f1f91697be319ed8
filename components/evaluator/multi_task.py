"""Evaluating a multi-task candidate: per task against its single-task model and the from-scratch baseline.

TFMA runs (multi_task_analysis.py), written under `tfma/`:
    vs_<baseline>             the candidate and the from-scratch multi-head baseline, every task
    vs_single_task_<task>     the candidate and the single-task model of <task>, on that task

Each task passes when its test accuracy is at least its floor, it is no worse
than its single-task model by more than its `max_drop`, and it beats the
baseline's same task by `evaluator.min_improvement` (evaluator.tasks and
evaluator.gate; see multi_task_config.py). The candidate is blessed only when
every task passes; otherwise the reasons name each failing task. The output
folder has the files of the single-task evaluator (blessing.json,
summary.json, summary.md, report/index.html), with a section per task; the
summary's `models` rows are `<model> [<task>]`, so the run's headline lists
every task's accuracy of every model.
"""

from __future__ import annotations

import html
import os
from typing import Any, Optional

from tlpipe.components.beam import BeamConfig
from tlpipe.components.evaluator.blessing import BASELINE_ROLE
from tlpipe.components.evaluator.config import EvaluatorConfig
from tlpipe.components.evaluator.outputs import evaluation_paths, summary_header, write_evaluation
from tlpipe.components.evaluator.multi_task_analysis import build_multi_task_eval_config, read_multi_task_output
from tlpipe.components.evaluator.multi_task_config import TaskThresholds
from tlpipe.components.evaluator.report import INDEX_FILE, html_table, markdown_table, headline
from tlpipe.components.evaluator.tfma_analysis import ACCURACY, EXAMPLE_COUNT, THRESHOLD_SLACK, refuse_dask, run_tfma
from tlpipe.components.production import ProductionModel
from tlpipe.components.trainer.multi_task import SINGLE_TASK_DIR
from tlpipe.components.trainer.spec import MODEL_DIR
from tlpipe.models.plumbing import example_format as fmt
from tlpipe.models.plumbing.artifacts import atomic_output_dir, read_json, write_text
from tlpipe.models.plumbing.errors import ConfigError, DataError, ModelError
from tlpipe.models.plumbing.progress import log
from tlpipe.models.serving import load_serving_metadata
from tlpipe.models.plumbing.layout import SAVED_MODEL_FILE

TFMA_DIR = "tfma"
SINGLE_ROLE = "single_task"
CANDIDATE_ROLE = "candidate"


def model_tasks(model_dir: str) -> dict[str, dict[str, Any]]:
    """{task: {"label": its label ('label' or a label task), "label_names": [...]}} of an exported multi-task model."""
    metadata = load_serving_metadata(model_dir)
    labels = {task["name"]: task["label"] for task in metadata.get("config", {}).get("trainer", {}).get("tasks", [])}
    tasks = {}
    for task, info in metadata["tasks"].items():
        if task not in labels:
            raise ModelError(f"{model_dir}: the config recorded with the model does not say which label task "
                             f"{task!r} reads (trainer.tasks)")
        tasks[task] = {"label": labels[task], "label_names": list(info["label_names"])}
    return tasks


def _test_files(examples_dir: str, split: str, tasks: dict[str, dict[str, Any]]) -> list[str]:
    """The split's shards, after checking that the data carries every task's label with the model's classes."""
    path = os.path.join(examples_dir, fmt.METADATA_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{examples_dir!r} is not a transformed dataset: {fmt.METADATA_FILE} is missing")
    metadata = read_json(path)
    present = {fmt.MAIN_LABEL: metadata.get("label_names"),
               **{name: info.get("label_names") for name, info in (metadata.get("label_tasks") or {}).items()}}
    for task, info in tasks.items():
        if info["label"] not in present:
            raise DataError(f"task {task!r} reads label {info['label']!r}, which {examples_dir!r} does not carry; "
                            f"labels present: {sorted(present)}")
        if list(present[info["label"]] or []) != info["label_names"]:
            raise ModelError(f"task {task!r} predicts the classes {info['label_names']}, the evaluation data's "
                             f"{info['label']!r} has {present[info['label']]}")
    files = fmt.split_files(examples_dir, split)
    if not files:
        raise DataError(f"{examples_dir!r} has no split {split!r} to evaluate on")
    return files


def run_multi_task_evaluator(
    config: EvaluatorConfig, examples_dir: str, candidates: dict[str, str], baseline: dict[str, str],
    output_dir: str, *, production: Optional[ProductionModel] = None, histories: Optional[dict[str, str]] = None,
    split: str = "test", beam_config: Optional[BeamConfig] = None,
) -> dict[str, Any]:
    """Evaluate one multi-task candidate against its single-task models and one multi-head baseline; bless or not.

    `candidates` and `baseline` map one name each to an exported model folder;
    the single-task models lie beside the candidate's (`<train dir>/single_task/<task>/model`).
    Returns the summary (also summary.json); its "blessing" entry is blessing.json.
    """
    config.validate()
    beam_config = beam_config or BeamConfig()
    refuse_dask(beam_config)
    if len(candidates) != 1 or len(baseline) != 1:
        raise ConfigError("candidates", sorted(candidates) + sorted(baseline),
                          "one multi-task candidate and one multi-task baseline")
    (name, model_dir), (reference, reference_dir) = next(iter(candidates.items())), next(iter(baseline.items()))
    model_dir, reference_dir = os.path.abspath(model_dir), os.path.abspath(reference_dir)
    tasks = model_tasks(model_dir)
    if model_tasks(reference_dir) != tasks:
        raise ModelError(f"the baseline '{reference}' ({reference_dir}) has other tasks than '{name}': "
                         f"{model_tasks(reference_dir)} vs {tasks}")
    unknown = sorted(set(config.tasks) - set(tasks))
    if unknown:
        raise ConfigError(f"evaluator.tasks.{unknown[0]}", unknown[0], f"a task of '{name}': {sorted(tasks)}")
    singles = {task: os.path.join(os.path.dirname(model_dir), SINGLE_TASK_DIR, task, MODEL_DIR) for task in tasks}
    for task, path in singles.items():
        if not os.path.isfile(os.path.join(path, SAVED_MODEL_FILE)):
            raise ModelError(f"the single-task model of task {task!r} is missing ({path}); train '{name}' with "
                             "the multi_task strategy, which trains one per task")
    files = _test_files(examples_dir, split, tasks)
    label_keys = {task: fmt.label_key_of(info["label"]) for task, info in tasks.items()}
    num_classes = {task: len(info["label_names"]) for task, info in tasks.items()}
    production = production or ProductionModel(None, None, None)
    notes = [f"the model in production ({production.path}) is not compared: multi-task candidates are compared "
             "with their single-task models and the from-scratch baseline"] if production.path else []

    output_dir = os.path.abspath(output_dir)
    runs = [(reference, reference_dir, label_keys)]
    runs += [(f"{SINGLE_ROLE}_{task}", singles[task], {task: label_keys[task]}) for task in tasks]
    with atomic_output_dir(output_dir) as tmp_dir:
        results = {}
        for index, (other, other_dir, keys) in enumerate(runs, start=1):
            run_dir = os.path.join(TFMA_DIR, f"vs_{other}")
            log(f"evaluate: TFMA run {index}/{len(runs)}: '{name}' vs '{other}' on task(s) {', '.join(keys)}, "
                f"{len(files)} file(s) of split '{split}'")
            run_tfma(build_multi_task_eval_config(config, name, other, keys), {name: model_dir, other: other_dir},
                     files, os.path.join(tmp_dir, run_dir), beam_config, config.seed)
            results[other] = {**read_multi_task_output(os.path.join(tmp_dir, run_dir), keys, num_classes,
                                                       config.confidence_level),
                              "tfma_output": os.path.join(output_dir, run_dir)}
        paths = evaluation_paths(output_dir)
        summary = _summary(config, examples_dir, split, name, model_dir, reference, reference_dir, singles, tasks,
                           results, notes, paths, production, histories or {})
        write_evaluation(tmp_dir, summary, markdown=render_markdown(summary),
                         write_report=lambda report_dir: write_report(report_dir, summary))
    log(f"evaluate: {headline(summary)}")
    log(f"evaluate: report at {paths['report']}")
    return summary


def _gate(config: EvaluatorConfig, diff: dict[str, float], bound: float) -> bool:
    value = diff["lower"] if config.gate == "interval" else diff["value"]
    return value >= bound - THRESHOLD_SLACK


def _judge_task(config: EvaluatorConfig, name: str, task: str, accuracy: dict[str, float],
                vs_single: dict[str, float], vs_baseline: dict[str, float], reference: str) -> dict[str, Any]:
    """One task's verdict and the reasons in words."""
    thresholds = config.tasks.get(task, TaskThresholds())
    floor = config.min_accuracy if thresholds.min_accuracy is None else thresholds.min_accuracy
    read = "lower end of the paired difference's interval" if config.gate == "interval" else "point estimate"
    checks = {
        "floor": accuracy["value"] >= floor - THRESHOLD_SLACK,
        "single_task": _gate(config, vs_single, -thresholds.max_drop),
        "baseline": _gate(config, vs_baseline, config.min_improvement),
    }
    reasons = []
    if not checks["floor"]:
        reasons.append(f"task '{task}' of '{name}' reached {accuracy['value']:.3f} test accuracy, below its "
                       f"floor {floor:.3f} (evaluator.tasks.{task}.min_accuracy or evaluator.min_accuracy).")
    if not checks["single_task"]:
        reasons.append(f"task '{task}' of '{name}' is worse than its single-task model by more than the allowed "
                       f"{thresholds.max_drop:.3f}: difference {_bounds(vs_single, True)}, its {read} is below "
                       f"{-thresholds.max_drop:+.3f} (evaluator.tasks.{task}.max_drop; evaluator.gate: {config.gate}).")
    if not checks["baseline"]:
        reasons.append(f"task '{task}' of '{name}' does not beat the from-scratch baseline '{reference}' by the "
                       f"required {config.min_improvement:+.3f}: difference {_bounds(vs_baseline, True)}, judged by its "
                       f"{read} (evaluator.min_improvement; evaluator.gate: {config.gate}).")
    passed = all(checks.values())
    if passed:
        reasons.append(f"task '{task}' passed: {accuracy['value']:.3f} test accuracy (floor {floor:.3f}), "
                       f"{_bounds(vs_single, True)} vs its single-task model (allowed drop {thresholds.max_drop:.3f}), "
                       f"{_bounds(vs_baseline, True)} vs the from-scratch baseline.")
    return {"passed": passed, "checks": checks, "floor": floor, "max_drop": thresholds.max_drop,
            "accuracy": accuracy, "vs_single_task": vs_single, "vs_baseline": vs_baseline, "reasons": reasons,
            "sharing_helped": vs_single["value"] > 0}


def _task_entry(result: dict[str, Any], label_names: list[str]) -> dict[str, Any]:
    return {
        "accuracy": result["overall"][ACCURACY],
        "example_count": result["overall"][EXAMPLE_COUNT],
        "per_class": {label_names[class_id]: {"accuracy": metrics[ACCURACY], "example_count": metrics[EXAMPLE_COUNT]}
                      for class_id, metrics in sorted(result["per_class"].items())},
        "confusion_matrix": result.get("confusion_matrix"),
    }


def _summary(config: EvaluatorConfig, examples_dir: str, split: str, name: str, model_dir: str, reference: str,
             reference_dir: str, singles: dict[str, str], tasks: dict[str, dict[str, Any]],
             results: dict[str, Any], notes: list[str], paths: dict[str, str], production: ProductionModel,
             histories: dict[str, str]) -> dict[str, Any]:
    per_task, models, verdicts = {}, {}, {}
    for task, info in tasks.items():
        single = f"{SINGLE_ROLE}_{task}"
        entries = {
            name: (CANDIDATE_ROLE, model_dir, results[reference]["models"][name][task]),
            single: (SINGLE_ROLE, singles[task], results[single]["models"][single][task]),
            reference: (BASELINE_ROLE, reference_dir, results[reference]["models"][reference][task]),
        }
        task_models = {}
        for model, (role, path, result) in entries.items():
            task_models[model] = {"role": role, "model_dir": path, **_task_entry(result, info["label_names"])}
            models[f"{model} [{task}]"] = {"role": role, "model_dir": path, "task": task,
                                           "accuracy": task_models[model]["accuracy"],
                                           "example_count": task_models[model]["example_count"]}
        verdicts[task] = _judge_task(config, name, task, task_models[name]["accuracy"],
                                     results[single]["diffs"][name][task][ACCURACY],
                                     results[reference]["diffs"][name][task][ACCURACY], reference)
        per_task[task] = {"label": info["label"], "label_names": info["label_names"], "models": task_models,
                          "verdict": verdicts[task]}
    failing = [task for task, verdict in verdicts.items() if not verdict["passed"]]
    reasons = [reason for verdict in verdicts.values() for reason in verdict["reasons"]
               if not verdict["passed"]] if failing else [r for v in verdicts.values() for r in v["reasons"]]
    # The model in production again (a rerun of the same pipeline): nothing to bless or push (blessing.py).
    unchanged = production.holds(model_dir)
    if failing:
        reason = f"'{name}' is not blessed: task(s) {', '.join(repr(t) for t in failing)} failed. " + " ".join(reasons)
    elif unchanged:
        reason = (f"production unchanged: '{name}' is the model in production ({production.describe()}, the same "
                  "files): there is nothing to push.")
    else:
        reason = f"'{name}' is blessed: every task passed ({', '.join(tasks)})."
    blessed = not failing and not unchanged
    blessing = {
        "blessed": blessed, "unchanged": unchanged, "candidate": name if blessed else None,
        "candidate_model_dir": model_dir if blessed else None, "reason": reason, "reasons": reasons,
        "failed_tasks": failing, "negative_transfer": sorted(
            task for task, verdict in verdicts.items() if verdict["vs_baseline"]["value"] < 0),
        "thresholds": {"min_accuracy": config.min_accuracy, "min_improvement": config.min_improvement,
                       "gate": config.gate, "compare_with_production": config.compare_with_production,
                       "tasks": {task: {"min_accuracy": v["floor"], "max_drop": v["max_drop"]}
                                 for task, v in verdicts.items()}},
        "candidates": {name: {"model_dir": model_dir, "passed": not failing, "tasks": verdicts,
                              "accuracy": {task: verdict["accuracy"] for task, verdict in verdicts.items()}}},
        "references": {reference: {"role": BASELINE_ROLE, "model_dir": reference_dir},
                       **{f"{SINGLE_ROLE}_{task}": {"role": SINGLE_ROLE, "model_dir": path}
                          for task, path in singles.items()}},
        "report": paths["report"], "evaluation_dir": paths["output_dir"], "production": production.to_dict(),
        "split": split,
    }
    first = next(iter(models.values()))
    blessing["num_examples"] = first["example_count"]
    return {
        **summary_header(config, examples_dir, split, first["example_count"]),
        "thresholds": blessing["thresholds"], "models": models, "tasks": per_task,
        "comparisons": {other: {"tfma_output": result["tfma_output"]} for other, result in results.items()},
        "histories": dict(histories), "notes": notes, "blessing": blessing, "paths": paths,
    }


def _bounds(interval: dict[str, float], signed: bool = False) -> str:
    spec = "+.3f" if signed else ".3f"
    return f"{interval['value']:{spec}} [{interval['lower']:{spec}}, {interval['upper']:{spec}}]"


def task_tables(summary: dict[str, Any], task: str) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The tables of one task's section: models, comparisons, per class."""
    entry = summary["tasks"][task]
    verdict = entry["verdict"]
    models = (["Model", "Role", "Test accuracy [interval]", "Examples"],
              [[model, info["role"], _bounds(info["accuracy"]), str(info["example_count"])]
               for model, info in entry["models"].items()])
    comparisons = (["Compared with", "Accuracy difference [interval]", "Required", "Result"], [
        ["its single-task model", _bounds(verdict["vs_single_task"], True), f">= {-verdict['max_drop']:+.3f}",
         "pass" if verdict["checks"]["single_task"] else "FAIL"],
        ["the from-scratch baseline", _bounds(verdict["vs_baseline"], True),
         f">= {summary['thresholds']['min_improvement']:+.3f}", "pass" if verdict["checks"]["baseline"] else "FAIL"],
        ["the floor", _bounds(verdict["accuracy"]), f">= {verdict['floor']:.3f}",
         "pass" if verdict["checks"]["floor"] else "FAIL"],
    ])
    names = list(entry["models"])
    per_class = (["Class", *names], [
        [label, *(_bounds(entry["models"][m]["per_class"][label]["accuracy"]) if label in entry["models"][m]["per_class"]
                  else "-" for m in names)]
        for label in entry["label_names"]])
    return [("Models", models), (f"Comparisons (evaluator.gate: {summary['thresholds']['gate']})", comparisons),
            ("Per class", per_class)]


def _sharing(verdict: dict[str, Any]) -> str:
    diff = verdict["vs_single_task"]
    if diff["lower"] > 0:
        return f"sharing the base helped this task: {_bounds(diff, True)} over its single-task model."
    if diff["upper"] < 0:
        return f"sharing the base hurt this task: {_bounds(diff, True)} against its single-task model."
    return f"sharing the base made no clear difference for this task: {_bounds(diff, True)} (the interval includes 0)."


def render_markdown(summary: dict[str, Any]) -> str:
    """summary.md: the verdict, the reasons, a section per task."""
    blessing = summary["blessing"]
    parts = ["# Evaluation summary (multi-task)", "", f"**{headline(summary)}**", "",
             f"Split `{summary['split']}`, {summary['num_examples']} examples. Report: `{summary['paths']['report']}`",
             "", "## Why", "", *[f"- {reason}" for reason in blessing["reasons"]],
             *[f"- Note: {note}" for note in summary["notes"]], ""]
    for task, entry in summary["tasks"].items():
        parts += [f"## Task '{task}' (label `{entry['label']}`, {len(entry['label_names'])} classes)", "",
                  "Passed." if entry["verdict"]["passed"] else "FAILED.", _sharing(entry["verdict"]), ""]
        for title, table in task_tables(summary, task):
            parts += [f"### {title}", "", markdown_table(table)]
    return "\n".join(parts)


def write_report(report_dir: str, summary: dict[str, Any]) -> None:
    """report/index.html (no plots: the tables per task say it)."""
    os.makedirs(report_dir, exist_ok=True)
    write_text(os.path.join(report_dir, INDEX_FILE), render_html(summary))


def render_html(summary: dict[str, Any]) -> str:
    """report/index.html: the verdict, the reasons, a section per task."""
    esc = html.escape
    blessing = summary["blessing"]
    colour = "#e6f4ea" if blessing["blessed"] else "#fce8e6"
    body = ["<h1>tlpipe evaluation (multi-task)</h1>",
            f"<p>Split <code>{esc(summary['split'])}</code> of <code>{esc(summary['examples_dir'])}</code>: "
            f"{summary['num_examples']} examples. Intervals: TFMA {esc(summary['confidence']['method'])} resampling, "
            f"{summary['confidence']['level']:.0%} t-intervals.</p>",
            f'<div style="background:{colour};padding:0.6em 1em;border-radius:6px"><h2>{esc(headline(summary))}</h2>'
            "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in blessing["reasons"]) + "</ul></div>",
            "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in summary["notes"]) + "</ul>"]
    for task, entry in summary["tasks"].items():
        body += [f"<h2>Task '{esc(task)}' (label <code>{esc(entry['label'])}</code>)</h2>",
                 f"<p><strong>{'Passed' if entry['verdict']['passed'] else 'FAILED'}</strong>. "
                 f"{esc(_sharing(entry['verdict']))}</p>"]
        for title, table in task_tables(summary, task):
            body += [f"<h3>{esc(title)}</h3>", html_table(table)]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:0.9em}th{background:#f4f4f4}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tlpipe evaluation</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
