"""The domain-shift report: how far apart source and target are, before and after adaptation, in plain words.

Two entry points:
- `measure_domain_shift`: before any training, the proxy A-distance and MMD
  between samples of the source and the target domain on a module's frozen
  features (what `tlpipe shift` prints, so a user learns how far apart the
  domains are before spending compute);
- `shift_report`: after the domain-adaptation strategies ran, their
  `shift.json` (before and after each one's training) and, when the evaluator
  ran, each model's target test accuracy and its paired difference to the
  `source_only` reference. When the shift is large and adaptation made the
  target accuracy worse (the interval of the difference lies below 0), the
  report says so in plain words.

`write_shift_report` writes `shift_report.json` and `shift_report.md`.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from tlpipe.models.plumbing.artifacts import read_json, write_json
from tlpipe.models.plumbing.errors import DataError
from tlpipe.models.plumbing.layout import SHIFT_FILE
from tlpipe.models.shift import LARGE_SHIFT_PAD, SMALL_SHIFT_PAD

REPORT_JSON = "shift_report.json"
REPORT_MD = "shift_report.md"
_BATCH = 256


def measure_domain_shift(handle: str, source_transformed_dir: str, target_transformed_dir: str, *,
                         unlabeled_split: str = "train", samples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Proxy A-distance and MMD between the source's train split and the target's unlabelled split,
    on the frozen features of `handle`; with the verdict in words."""
    from tlpipe.components.trainer.domain_adaptation import check_same_classes, load_split
    from tlpipe.models.plumbing import example_format as fmt
    from tlpipe.models.domain import sample_images
    from tlpipe.models.hub_layer import HubFeatureVector
    from tlpipe.models.shift import measure_shift

    check_same_classes(*(fmt.read_metadata(path, expected=f"the {name} domain's transform artifact")["label_names"]
                         for name, path in (("source", source_transformed_dir), ("target", target_transformed_dir))))
    source = sample_images(load_split(source_transformed_dir, "train", with_labels=False).images, samples, seed=seed)
    target = sample_images(load_split(target_transformed_dir, unlabeled_split, with_labels=False).images, samples,
                           seed=seed)
    base = HubFeatureVector(handle, input_shape=source.shape[1:])
    features = [_features(base, images) for images in (source, target)]
    measure = measure_shift(*features, seed=seed).to_dict()
    return {"handle": handle, "source_dir": os.path.abspath(source_transformed_dir),
            "target_dir": os.path.abspath(target_transformed_dir), "unlabeled_split": unlabeled_split,
            "before": measure, "verdict": before_training_verdict(measure)}


def _features(base: Any, images: Any) -> Any:
    import numpy as np

    return np.concatenate([np.asarray(base(images[i:i + _BATCH])) for i in range(0, len(images), _BATCH)])


def before_training_verdict(measure: dict[str, Any]) -> str:
    """What the shift measured on the base's features means for the user, in one sentence."""
    pad, error = measure["proxy_a_distance"], measure["probe_error"]
    probe = f"a linear probe tells source from target features apart with {error:.0%} error (proxy A-distance {pad:.2f} of at most 2)"
    if pad >= LARGE_SHIFT_PAD:
        return (f"The domains are far apart: {probe}. Expect a model trained on the source alone to lose accuracy on "
                "the target; try the adaptation strategies (domain_adaptation, bn_adapt) against source_only.")
    if pad >= SMALL_SHIFT_PAD:
        return (f"The domains differ moderately: {probe}. Adaptation may help; compare domain_adaptation and "
                "bn_adapt with source_only.")
    return (f"The domains are close: {probe}. A model trained on the source should carry over; adaptation is "
            "unlikely to add much.")


def shift_report(trained_dirs: dict[str, str], evaluation: Optional[dict[str, Any]] = None, *,
                 reference: str) -> dict[str, Any]:
    """The report over the domain-adaptation strategies' train folders (name -> folder holding shift.json).

    `evaluation` is the evaluator's summary (`summary.json`) of a run that
    compared them with `reference` on the target's test split; without it the
    report has the shift measures only.
    """
    shifts = {}
    for name, folder in trained_dirs.items():
        path = os.path.join(folder, SHIFT_FILE)
        if not os.path.isfile(path):
            raise DataError(f"{folder!r} has no {SHIFT_FILE}: '{name}' was not trained by a domain-adaptation strategy")
        shifts[name] = read_json(path)
    before = next(iter(shifts.values()))["before"] if shifts else None
    rows = {name: {"after": shift["after"]} for name, shift in shifts.items()}
    if evaluation is not None:
        models = evaluation.get("models", {})
        diffs = (evaluation.get("comparisons", {}).get(reference) or {}).get("candidates", {})
        for name, row in rows.items():
            if name in models:
                row["accuracy"] = models[name]["accuracy"]
            if name in diffs:
                row["accuracy_diff"] = diffs[name]["accuracy_diff"]
    report = {"reference": reference, "before": before, "models": rows,
              "split": (evaluation or {}).get("split"), "num_examples": (evaluation or {}).get("num_examples")}
    report["verdict"] = after_training_verdict(report)
    return report


def after_training_verdict(report: dict[str, Any]) -> str:
    """One plain sentence on the shift and whether adaptation paid off against the reference."""
    before = report["before"]
    if before is None:
        return "No domain-adaptation model was trained: nothing to report."
    pad = before["proxy_a_distance"]
    moved = [f"{name} {row['after']['proxy_a_distance']:.2f}" for name, row in report["models"].items()]
    distance = f"proxy A-distance {pad:.2f} before training; after: {', '.join(moved)}"
    reference = report["reference"]
    compared = {name: row for name, row in report["models"].items() if "accuracy_diff" in row}
    if not compared:
        return f"Shift measured ({distance}); the models were not evaluated on labelled target data."
    worse = {name: row for name, row in compared.items() if row["accuracy_diff"]["upper"] < 0}
    better = {name: row for name, row in compared.items() if row["accuracy_diff"]["lower"] > 0}
    base = report["models"].get(reference, {}).get("accuracy", {}).get("value")
    if pad >= LARGE_SHIFT_PAD and len(worse) == len(compared):
        name, row = min(worse.items(), key=lambda item: item[1]["accuracy_diff"]["value"])
        return (f"The domains are far apart ({distance}) and adaptation made things worse: '{name}' reached "
                f"{row['accuracy']['value']:.3f} on the target test split, {-row['accuracy_diff']['value']:.3f} below "
                f"training on the source alone ({base:.3f}). This is negative transfer: do not ship the adapted "
                "model; label some target images and fine-tune on them, or choose a base closer to the target domain.")
    if better:
        name, row = max(better.items(), key=lambda item: item[1]["accuracy_diff"]["value"])
        diff = row["accuracy_diff"]
        return (f"Adaptation paid off ({distance}): '{name}' beats '{reference}' on the target test split by "
                f"{diff['value']:+.3f} (interval [{diff['lower']:+.3f}, {diff['upper']:+.3f}]).")
    if worse:
        names = ", ".join(f"'{name}'" for name in worse)
        return (f"Adaptation hurt {names} against '{reference}' ({distance}); no adapted model beats training on the "
                "source alone.")
    return f"No adapted model is surely better or worse than '{reference}' ({distance}): the intervals include 0."


def write_shift_report(report: dict[str, Any], output_dir: str) -> str:
    """`shift_report.json` and `shift_report.md` into `output_dir`; returns the Markdown file's path."""
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, REPORT_JSON), report)
    path = os.path.join(output_dir, REPORT_MD)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_markdown(report))
    return path


def before_text(report: dict[str, Any]) -> str:
    """The shift measured before training, in one sentence (empty when no model was trained)."""
    before = report.get("before")
    if not before:
        return ""
    return (f"Before training (the base's frozen features, {before['num_source']} source and "
            f"{before['num_target']} target examples): proxy A-distance {before['proxy_a_distance']:.3f} "
            f"({before['level']}), probe error {before['probe_error']:.3f}, MMD^2 {before['mmd2']:.4f}.")


def shift_table(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A row per model: the shift after its training, its target accuracy and its difference to the reference."""
    header = ["model", "PAD after", "MMD^2 after", "target accuracy", f"vs {report['reference']}"]
    rows = []
    for name, row in report.get("models", {}).items():
        accuracy, diff = row.get("accuracy"), row.get("accuracy_diff")
        rows.append([
            name, f"{row['after']['proxy_a_distance']:.3f}", f"{row['after']['mmd2']:.4f}",
            f"{accuracy['value']:.3f} [{accuracy['lower']:.3f}, {accuracy['upper']:.3f}]" if accuracy else "-",
            f"{diff['value']:+.3f} [{diff['lower']:+.3f}, {diff['upper']:+.3f}]" if diff else "-",
        ])
    return header, rows


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown page: the shift before, a row per model, the verdict."""
    lines = ["# Domain shift", ""]
    if report.get("before"):
        lines += [before_text(report), ""]
    header, rows = shift_table(report)
    if rows:
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += [report["verdict"], ""]
    return "\n".join(lines)
