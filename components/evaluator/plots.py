"""The report's PNG plots (matplotlib's Agg canvas, no display needed).

Figures are built with `matplotlib.figure.Figure` directly rather than pyplot,
so nothing touches pyplot's global state or needs a GUI backend. Each function
writes one PNG and takes plain data from the evaluation summary.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

ROLE_COLOURS = {"candidate": "#1f77b4", "baseline": "#7f7f7f", "production": "#ff7f0e"}
SERIES_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
DPI = 100


def _save(figure: Figure, path: str) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)


def _error_bars(intervals: list[dict[str, float]]) -> list[list[float]]:
    """matplotlib's asymmetric yerr: distances from the value down to `lower` and up to `upper`."""
    return [[i["value"] - i["lower"] for i in intervals], [i["upper"] - i["value"] for i in intervals]]


def plot_accuracy(path: str, models: dict[str, dict[str, Any]], min_accuracy: float, level: float) -> None:
    """Test accuracy of every model with its confidence interval, coloured by role."""
    names = list(models)
    intervals = [models[name]["accuracy"] for name in names]
    figure = Figure(figsize=(max(4.0, 1.3 * len(names) + 2), 3.6))
    axes = figure.add_subplot()
    for x, (name, interval) in enumerate(zip(names, intervals)):
        axes.errorbar([x], [interval["value"]], yerr=_error_bars([interval]), fmt="o", capsize=6, markersize=8,
                      color=ROLE_COLOURS[models[name]["role"]])
        axes.annotate(f"{interval['value']:.3f}", (x, interval["value"]), textcoords="offset points",
                      xytext=(10, -4), fontsize=8)
    if min_accuracy > 0:
        axes.axhline(min_accuracy, linestyle="--", color="#d62728", linewidth=1, label="min_accuracy")
        axes.legend(loc="lower right", fontsize=8)
    axes.set_xticks(range(len(names)), [f"{name}\n({models[name]['role']})" for name in names], fontsize=8)
    axes.set_xlim(-0.6, len(names) - 0.4)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("test accuracy")
    axes.set_title(f"Test accuracy with {level:.0%} confidence intervals", fontsize=10)
    _save(figure, path)


def plot_per_class(path: str, models: dict[str, dict[str, Any]], label_names: list[str]) -> None:
    """Per-class accuracy (recall) of every model, grouped by class, with intervals."""
    names = list(models)
    width = 0.8 / len(names)
    figure = Figure(figsize=(max(5.0, 0.9 * len(label_names) * max(1, len(names) / 2) + 2), 3.8))
    axes = figure.add_subplot()
    for i, name in enumerate(names):
        intervals = [models[name]["per_class"][label]["accuracy"] for label in label_names]
        positions = [c + (i - (len(names) - 1) / 2) * width for c in range(len(label_names))]
        axes.bar(positions, [iv["value"] for iv in intervals], width, yerr=_error_bars(intervals), capsize=2,
                 label=name, color=SERIES_COLOURS[i % len(SERIES_COLOURS)], alpha=0.85)
    axes.set_xticks(range(len(label_names)), label_names, rotation=30 if len(label_names) > 6 else 0, fontsize=8)
    axes.set_ylim(0, 1.25)
    axes.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    axes.set_ylabel("accuracy on the class")
    axes.set_title("Per-class accuracy (TFMA slices by label)", fontsize=10)
    axes.legend(fontsize=8, ncols=min(4, len(names)), loc="upper center")
    _save(figure, path)


def plot_confusion_matrices(path: str, models: dict[str, dict[str, Any]], label_names: list[str]) -> None:
    """One confusion matrix per model: rows are true classes, columns predicted; cells are counts."""
    names = list(models)
    size = max(2.8, 0.45 * len(label_names) + 1.2)
    figure = Figure(figsize=(size * len(names), size + 0.4))
    for i, name in enumerate(names):
        matrix = models[name]["confusion_matrix"]
        axes = figure.add_subplot(1, len(names), i + 1)
        axes.imshow(matrix, cmap="Blues", vmin=0)
        peak = max(max(row) for row in matrix) or 1
        for r, row in enumerate(matrix):
            for c, count in enumerate(row):
                axes.text(c, r, str(count), ha="center", va="center", fontsize=7,
                          color="white" if count > peak / 2 else "black")
        axes.set_xticks(range(len(label_names)), label_names, rotation=90, fontsize=7)
        axes.set_yticks(range(len(label_names)), label_names if i == 0 else [""] * len(label_names), fontsize=7)
        axes.set_xlabel("predicted", fontsize=8)
        if i == 0:
            axes.set_ylabel("true", fontsize=8)
        axes.set_title(name, fontsize=9)
    _save(figure, path)


def plot_training_curves(path: str, histories: dict[str, dict[str, Any]],
                         phases: dict[str, list[dict[str, Any]]]) -> None:
    """Accuracy and loss (train and eval) against training steps, one column per model, phases marked."""
    names = list(histories)
    figure = Figure(figsize=(3.6 * len(names), 5.6))
    for column, name in enumerate(names):
        entries = histories[name]["entries"]
        steps = [entry["step"] for entry in entries]
        for row, metric in enumerate(("accuracy", "loss")):
            axes = figure.add_subplot(2, len(names), row * len(names) + column + 1)
            for key, style in ((metric, "-"), (f"val_{metric}", "--")):
                values = [entry.get(key) for entry in entries]
                if all(value is not None for value in values):
                    axes.plot(steps, values, style, marker=".", label="eval" if key.startswith("val_") else "train")
            for index, phase in enumerate(phases[name]):
                if index % 2:
                    axes.axvspan(phase["start_step"], phase["end_step"], color="#f0e68c", alpha=0.35)
                if row == 0:
                    axes.text((phase["start_step"] + phase["end_step"]) / 2, 1.02, phase["phase"], fontsize=7,
                              ha="center", transform=axes.get_xaxis_transform())
            axes.set_xlabel("training step", fontsize=8)
            axes.set_ylabel(metric, fontsize=8)
            axes.tick_params(labelsize=7)
            if row == 0:
                axes.set_ylim(0, 1.05)
                axes.set_title(name, fontsize=9, pad=14)
            axes.legend(fontsize=7)
    _save(figure, path)


def plot_convergence(path: str, histories: dict[str, dict[str, Any]], table: dict[str, dict[str, Any]],
                     fraction: float) -> None:
    """Eval accuracy against training steps for every model; the point where each reached its target."""
    figure = Figure(figsize=(6.4, 4.0))
    axes = figure.add_subplot()
    for i, (name, history) in enumerate(histories.items()):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        entries = history["entries"]
        axes.plot([e["step"] for e in entries], [e["val_accuracy"] for e in entries], "-", marker=".",
                  color=colour, label=name)
        reached = table[name]["steps_to_target"]
        if reached is not None:
            accuracy = next(e["val_accuracy"] for e in entries if e["step"] == reached)
            axes.plot([reached], [accuracy], "D", color=colour, markersize=9, markerfacecolor="none")
    axes.set_xlabel("training steps")
    axes.set_ylabel("eval accuracy")
    axes.set_ylim(0, 1.05)
    axes.set_title(f"Convergence (diamond: first epoch at {fraction:.0%} of the final eval accuracy)", fontsize=9)
    axes.legend(fontsize=8)
    _save(figure, path)
